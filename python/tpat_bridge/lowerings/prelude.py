"""The CUDA prelude of TPAT's lowerings: device helpers TVM's source calls through `call_extern`.

The scatter lowerings (scatter.py) do their reductions with `tpat_atomic_<op>_<dtype>(T* addr, T v)`:
add is CUDA atomicAdd, max/min/mul are compare-and-swap loops (16-bit types CAS on unsigned short,
sm_70+). `with_prelude(source)` prepends exactly the helpers a source calls (the plan's
`cuda_source` is then `TPAT prelude + TVM's source`); `install_cuda_postproc` does the same inside
TVM's own CUDA build (`tvm_callback_cuda_postproc`), so TVM's NVRTC/nvcc compile on a GPU machine
sees the helpers too.
"""

from __future__ import annotations

import re

import tvm_ffi

# dtype -> helper suffix, for the reductions (atomics).
ATOMIC_DTYPES = {
    "float32": "f32",
    "float16": "f16",
    "bfloat16": "bf16",
    "float64": "f64",
    "int32": "i32",
    "int64": "i64",
}
PRELUDE_MARK = "// ---- TPAT prelude"

# --------------------------------------------------------------------------------------------
# CUDA prelude: atomic read-modify-write helpers (sm_70+; TPAT targets sm_80..sm_90).

_HELPERS = {}


def _helper(name, code, needs=()):
    _HELPERS[name] = (code.strip("\n"), tuple(needs))


def _cas32_float(op, name, expr, early):
    body = f"""
__device__ __forceinline__ float {name}(float* addr, float v) {{
  unsigned int* a = reinterpret_cast<unsigned int*>(addr);
  unsigned int old = *a, assumed;
  do {{
    assumed = old;
    const float cur = __uint_as_float(assumed);
    {early}
    old = atomicCAS(a, assumed, __float_as_uint({expr}));
  }} while (old != assumed);
  return __uint_as_float(old);
}}"""
    _helper(name, body)


def _cas64_double(name, expr, early):
    body = f"""
__device__ __forceinline__ double {name}(double* addr, double v) {{
  unsigned long long* a = reinterpret_cast<unsigned long long*>(addr);
  unsigned long long old = *a, assumed;
  do {{
    assumed = old;
    const double cur = __longlong_as_double((long long)assumed);
    {early}
    old = atomicCAS(a, assumed, (unsigned long long)__double_as_longlong({expr}));
  }} while (old != assumed);
  return __longlong_as_double((long long)old);
}}"""
    _helper(name, body)


def _cas16(name, ctype, to_f, from_f, as_us, from_us, expr, early, inc):
    body = f"""
__device__ __forceinline__ {ctype} {name}({ctype}* addr, {ctype} v) {{
  unsigned short* a = reinterpret_cast<unsigned short*>(addr);
  const float fv = {to_f}(v);
  unsigned short old = *a, assumed;
  do {{
    assumed = old;
    const float cur = {to_f}({from_us}(assumed));
    {early}
    old = atomicCAS(a, assumed, {as_us}({expr}));
  }} while (old != assumed);
  return {from_us}(old);
}}"""
    _helper(name, body, (inc,))


def _build_helpers():
    # ---- float32
    _helper(
        "tpat_atomic_add_f32",
        "__device__ __forceinline__ float tpat_atomic_add_f32(float* a, float v) { return atomicAdd(a, v); }",
    )
    # max/min: a NaN update never replaces, a NaN already there stays (std::max(cur, v) order).
    _cas32_float("max", "tpat_atomic_max_f32", "v", "if (!(v > cur)) break;")
    _cas32_float("min", "tpat_atomic_min_f32", "v", "if (!(v < cur)) break;")
    _cas32_float("mul", "tpat_atomic_mul_f32", "cur * v", "")
    # ---- float64
    _helper(
        "tpat_atomic_add_f64",
        "__device__ __forceinline__ double tpat_atomic_add_f64(double* a, double v) { return atomicAdd(a, v); }",
    )
    _cas64_double("tpat_atomic_max_f64", "v", "if (!(v > cur)) break;")
    _cas64_double("tpat_atomic_min_f64", "v", "if (!(v < cur)) break;")
    _cas64_double("tpat_atomic_mul_f64", "cur * v", "")
    # ---- float16 / bfloat16 (16-bit CAS, sm_70+); arithmetic in float, rounded to nearest
    h = ("__half", "__half2float", "__float2half_rn", "__half_as_ushort", "__ushort_as_half", "#include <cuda_fp16.h>")
    b = (
        "__nv_bfloat16",
        "__bfloat162float",
        "__float2bfloat16_rn",
        "__bfloat16_as_ushort",
        "__ushort_as_bfloat16",
        "#include <cuda_bf16.h>",
    )
    for suf, (ct, to_f, from_f, as_us, from_us, inc) in (("f16", h), ("bf16", b)):
        _helper(
            f"tpat_atomic_add_{suf}",
            f"__device__ __forceinline__ {ct} tpat_atomic_add_{suf}({ct}* a, {ct} v) {{ return atomicAdd(a, v); }}",
            (inc,),
        )
        _cas16(f"tpat_atomic_max_{suf}", ct, to_f, from_f, as_us, from_us, "v", "if (!(fv > cur)) break;", inc)
        _cas16(f"tpat_atomic_min_{suf}", ct, to_f, from_f, as_us, from_us, "v", "if (!(fv < cur)) break;", inc)
        _cas16(f"tpat_atomic_mul_{suf}", ct, to_f, from_f, as_us, from_us, f"{from_f}(cur * fv)", "", inc)
    # ---- int32 (TVM's int32_t is int)
    _helper(
        "tpat_atomic_add_i32",
        "__device__ __forceinline__ int tpat_atomic_add_i32(int* a, int v) { return atomicAdd(a, v); }",
    )
    _helper(
        "tpat_atomic_max_i32",
        "__device__ __forceinline__ int tpat_atomic_max_i32(int* a, int v) { return atomicMax(a, v); }",
    )
    _helper(
        "tpat_atomic_min_i32",
        "__device__ __forceinline__ int tpat_atomic_min_i32(int* a, int v) { return atomicMin(a, v); }",
    )
    _helper(
        "tpat_atomic_mul_i32",
        """
__device__ __forceinline__ int tpat_atomic_mul_i32(int* a, int v) {
  int old = *a, assumed;
  do {
    assumed = old;
    old = atomicCAS(a, assumed, (int)((unsigned int)assumed * (unsigned int)v));
  } while (old != assumed);
  return old;
}""",
    )
    # ---- grid-wide arrival (the "last block" pattern of a kernel that finishes with one block's
    # work over what every block wrote: each writer fences its own stores, then one thread per
    # block counts the block in; the block that sees nblocks - 1 is the last)
    _helper(
        "tpat_atomic_fence_all", "__device__ __forceinline__ int tpat_atomic_fence_all() { __threadfence(); return 0; }"
    )
    _helper(
        "tpat_atomic_arrive_i32",
        "__device__ __forceinline__ int tpat_atomic_arrive_i32(int* a) { __threadfence(); return atomicAdd(a, 1); }",
    )
    # ---- int64: TVM spells it int64_t (long or long long by toolchain): templates over the
    # pointer type, reinterpreted as (unsigned) long long.
    _helper(
        "tpat_atomic_add_i64",
        """
template <typename T>
__device__ __forceinline__ T tpat_atomic_add_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  return (T)atomicAdd(reinterpret_cast<unsigned long long*>(a), (unsigned long long)v);
}""",
    )
    _helper(
        "tpat_atomic_max_i64",
        """
template <typename T>
__device__ __forceinline__ T tpat_atomic_max_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  return (T)atomicMax(reinterpret_cast<long long*>(a), (long long)v);
}""",
    )
    _helper(
        "tpat_atomic_min_i64",
        """
template <typename T>
__device__ __forceinline__ T tpat_atomic_min_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  return (T)atomicMin(reinterpret_cast<long long*>(a), (long long)v);
}""",
    )
    _helper(
        "tpat_atomic_mul_i64",
        """
template <typename T>
__device__ __forceinline__ T tpat_atomic_mul_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  unsigned long long* p = reinterpret_cast<unsigned long long*>(a);
  unsigned long long old = *p, assumed;
  do {
    assumed = old;
    old = atomicCAS(p, assumed, assumed * (unsigned long long)v);
  } while (old != assumed);
  return (T)old;
}""",
    )


_build_helpers()

_HELPER_RE = re.compile(r"\btpat_atomic_[a-z]+_[a-z0-9]+\b")


def prelude_for(source: str) -> str:
    """The prelude defining exactly the helpers `source` calls ('' when it calls none)."""
    names = sorted(set(_HELPER_RE.findall(source)) & set(_HELPERS))
    if not names:
        return ""
    incs = []
    for n in names:
        for inc in _HELPERS[n][1]:
            if inc not in incs:
                incs.append(inc)
    # The path in this banner is part of every generated source that has a prelude: kept as it was
    # (generated sources stay byte-identical across the package split).
    parts = [
        f"{PRELUDE_MARK}: atomic helpers called by TPAT's scatter lowerings (python/tpat_bridge/lowerings.py) ----"
    ]
    parts += incs
    parts += [_HELPERS[n][0] for n in names]
    parts.append("// ---- end of TPAT prelude; TVM's generated source follows ----\n")
    return "\n".join(parts) + "\n"


def with_prelude(source: str) -> str:
    """TPAT prelude + TVM's source (idempotent; unchanged when no helper is called)."""
    if PRELUDE_MARK in source:
        return source
    return prelude_for(source) + source


_POSTPROC_INSTALLED = False


def install_cuda_postproc():
    """Let TVM's own CUDA build (NVRTC/nvcc on a GPU machine) see the helpers too."""
    global _POSTPROC_INSTALLED
    if _POSTPROC_INSTALLED:
        return
    prev = tvm_ffi.get_global_func("tvm_callback_cuda_postproc", allow_missing=True)

    def postproc(code, target=None):
        if prev is not None:
            code = prev(code, target)
        return with_prelude(str(code))

    tvm_ffi.register_global_func("tvm_callback_cuda_postproc", postproc, override=True)
    _POSTPROC_INSTALLED = True
