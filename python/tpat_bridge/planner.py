"""KernelPlan: read TVM's CUDA kernels and host launch sequence for a one-node ONNX model.

Public entry: handle_plan(request) -> {"ok": True, "plan": {...}} | {"ok": False, "error": {...}}.
Request field "lowering": "tpat" (default; else $TPAT_LOWERING) uses TPAT's own TIR/TE for the ops of
lowerings.py (ScatterND, ScatterElements, TopK, Resize, CumSum, LayerNormalization, GatherND, OneHot,
Gelu) instead of the frontend's legalization; "tvm" keeps TVM's.
The plan format is described in schemas/kernel-plan.schema.json and docs/kernel-plan.md.

How it works (TVM 0.27):
 1. onnx model -> tvm.relax.frontend.onnx.from_onnx(keep_params_in_input=False)
 2. output dtypes are checked against the ONNX declaration; float64 outputs of the frontend
    (OneHot) are cast back inside the Relax module.
 3. CUDA Relax pipeline: DispatchSampling/SortScan, LegalizeOps, FuseOps/FuseTIR, int32 index
    narrowing (`narrow_index_pass`), dlight default GPU schedules, dataflow lowering. A capture pass keeps `main` at this point: a flat list of
    alloc_tensor / PrimFunc calls / reshape views.
 4. tvm.compile for CUDA with a pass instrument keeping the TIR module right before
    tirx.MakePackedAPI (host functions calling `tirx.call_ffi_kernel`) and a wrapper of
    `target.build.cuda` keeping the device functions (kernel signatures) and the CUDA C source.
 5. main's bindings and every called host PrimFunc are interpreted symbolically into the plan steps.
"""
from __future__ import annotations

import base64
import os
import threading
import traceback
from dataclasses import dataclass, field

import numpy as np

FORMAT_VERSION = 1
WORKSPACE_ALIGNMENT = 256

SM_TARGETS = {
    "sm_80": {"arch": "sm_80", "max_shared_memory_per_block": 49152},
    "sm_86": {"arch": "sm_86", "max_shared_memory_per_block": 49152},
    "sm_89": {"arch": "sm_89", "max_shared_memory_per_block": 49152},
    "sm_90": {"arch": "sm_90", "max_shared_memory_per_block": 49152},
}

# Flags the CUDA C source needs; they mirror tvm/support/nvcc.py (nvcc and NVRTC paths).
COMPILE_FLAGS = [
    "-std=c++17",
    "--use_fast_math",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__",
    "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
    "--expt-relaxed-constexpr",
]

SUPPORTED_DTYPES = {
    "float32": 4, "float16": 2, "bfloat16": 2, "float64": 8,
    "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
    "int64": 8, "uint64": 8, "bool": 1,
}

# ONNX ops whose output shape depends on input values: no static launch plan exists.
DATA_DEPENDENT_OPS = {
    "NonZero": "output shape depends on the number of non-zero elements",
    "Unique": "output shape depends on the number of distinct values",
    "NonMaxSuppression": "output shape depends on the number of selected boxes",
    "Compress": "output shape depends on the condition values",
    "StringNormalizer": "string tensors",
}


# Of those, the ones TPAT lowers itself (a size-tensor output, docs/kernel-plan.md "Data-dependent
# outputs"): planned only through TPAT's lowering, refused when it does not apply.
DATA_DEPENDENT_LOWERED = ("NonZero", "Compress", "Unique")


class PlanError(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def _err(code, reason):
    return {"ok": False, "error": {"code": code, "reason": reason}}


_LOCK = threading.Lock()


def handle_plan(request: dict) -> dict:
    """Bridge command "plan". Never raises."""
    try:
        if not isinstance(request, dict):
            raise PlanError("invalid_request", "request must be a JSON object")
        model_path = request.get("model_path")
        if not isinstance(model_path, str) or not model_path:
            raise PlanError("invalid_request", "model_path (string) is required")
        target = request.get("target", "sm_90")
        if target not in SM_TARGETS:
            raise PlanError(
                "invalid_request",
                f"unsupported target '{target}'; expected one of {sorted(SM_TARGETS)}",
            )
        lowering = request.get("lowering", os.environ.get("TPAT_LOWERING") or "tpat")
        if lowering not in ("tpat", "tvm"):
            raise PlanError("invalid_request", f"lowering must be 'tpat' or 'tvm', not {lowering!r}")
        with _LOCK:
            database = request.get("database")
            if database is not None and not os.path.isfile(os.path.join(str(database), "database_workload.json")):
                raise PlanError("invalid_request", f"no MetaSchedule database in {database!r} (run tpat tune)")
            plan = make_plan(model_path, target, lowering, database)
        return {"ok": True, "plan": plan}
    except PlanError as e:
        return _err(e.code, e.reason)
    except Exception as e:  # noqa: BLE001 - failures are answers
        if os.environ.get("TPAT_PLAN_DEBUG"):
            traceback.print_exc()
        msg = str(e).strip().splitlines()
        short = " | ".join(line.strip() for line in msg[-6:] if line.strip())[:2000]
        return _err("tvm_error", f"{type(e).__name__}: {short}")


# --------------------------------------------------------------------------------------------
# ONNX side


@dataclass
class NodeInfo:
    op_type: str
    inputs: list  # [{"name","dtype","shape"}] graph inputs (non-initializer), model order
    outputs: list  # [{"name","dtype","shape"(declared or None)}]
    symbols: list  # [{"name","input","dim"}]
    model: object = None
    fixups: list = field(default_factory=list)
    # [{"output", "dim", "size_output"}] set by a TPAT lowering with data-dependent outputs
    data_dependent: list = field(default_factory=list)


_ONNX_TO_DTYPE = None


def _onnx_dtype(elem_type: int) -> str:
    global _ONNX_TO_DTYPE
    if _ONNX_TO_DTYPE is None:
        from onnx import TensorProto as TP

        _ONNX_TO_DTYPE = {
            TP.FLOAT: "float32", TP.FLOAT16: "float16", TP.BFLOAT16: "bfloat16",
            TP.DOUBLE: "float64", TP.INT8: "int8", TP.UINT8: "uint8", TP.INT16: "int16",
            TP.UINT16: "uint16", TP.INT32: "int32", TP.UINT32: "uint32", TP.INT64: "int64",
            TP.UINT64: "uint64", TP.BOOL: "bool",
        }
    d = _ONNX_TO_DTYPE.get(elem_type)
    if d is None:
        raise PlanError("unsupported_dtype", f"ONNX element type {elem_type} is not supported")
    return d


def load_node(model_path: str) -> NodeInfo:
    import onnx

    try:
        model = onnx.load(model_path, load_external_data=False)  # TPAT writes node models inline
    except Exception as e:  # noqa: BLE001
        raise PlanError("model_load_failed", f"cannot read ONNX model '{model_path}': {e}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PlanError("invalid_model", f"ONNX checker rejected the model: {first}") from None
    g = model.graph
    if len(g.node) != 1:
        raise PlanError("not_single_node", f"expected exactly one node, found {len(g.node)}")
    node = g.node[0]
    if node.op_type in DATA_DEPENDENT_OPS and node.domain in ("", "ai.onnx") \
            and node.op_type not in DATA_DEPENDENT_LOWERED:
        raise PlanError(
            "data_dependent_shape",
            f"{node.op_type}: {DATA_DEPENDENT_OPS[node.op_type]}; TVM lowers it to runtime "
            "builtins, not to kernels with a static launch plan",
        )
    init_names = {t.name for t in g.initializer}
    inputs, symbols, seen = [], [], set()
    changed = False
    for gi in g.input:
        if gi.name in init_names:
            continue
        tt = gi.type.tensor_type
        if not gi.type.HasField("tensor_type"):
            raise PlanError("unsupported_model", f"input '{gi.name}' is not a tensor")
        dtype = _onnx_dtype(tt.elem_type)
        shape = []
        if not tt.HasField("shape"):
            raise PlanError("unsupported_model", f"input '{gi.name}' has no rank")
        for d, dim in enumerate(tt.shape.dim):
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            else:
                name = dim.dim_param if dim.HasField("dim_param") and dim.dim_param else None
                if name is None:
                    name = f"{gi.name}_dim{d}"
                    dim.dim_param = name
                    changed = True
                shape.append(name)
                if name not in seen:
                    seen.add(name)
                    symbols.append({"name": name, "input": len(inputs), "dim": d})
        inputs.append({"name": gi.name, "dtype": dtype, "shape": shape})
    outputs = []
    for go in g.output:
        tt = go.type.tensor_type
        dtype = _onnx_dtype(tt.elem_type)
        shape = None
        if tt.HasField("shape"):
            shape = [
                int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
                for d in tt.shape.dim
            ]
        outputs.append({"name": go.name, "dtype": dtype, "shape": shape})
    info = NodeInfo(node.op_type, inputs, outputs, symbols, model)
    if changed:
        info.fixups.append("unnamed input dims were given symbol names <input>_dim<d>")
    if node.op_type == "TopK":
        # sorted=0 leaves the output order unspecified, so the sorted result is a valid answer;
        # TVM's frontend only implements sorted=1.
        for a in node.attribute:
            if a.name == "sorted" and a.i == 0:
                a.i = 1
                info.fixups.append("TopK sorted=0 planned as sorted=1 (a sorted result is a valid unsorted one)")
    return info


# --------------------------------------------------------------------------------------------
# Relax module


def cuda_target(sm: str):
    import tvm

    t = SM_TARGETS[sm]
    return tvm.target.Target(
        {
            "kind": "cuda",
            "arch": t["arch"],
            "max_num_threads": 1024,
            "max_threads_per_block": 1024,
            "max_shared_memory_per_block": t["max_shared_memory_per_block"],
            "thread_warp_size": 32,
        }
    )


def build_relax_module(info: NodeInfo):
    """ONNX -> Relax IRModule with output dtypes matching the ONNX declaration."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    try:
        mod = from_onnx(info.model, keep_params_in_input=False)
    except Exception as e:  # noqa: BLE001
        msg = " | ".join(s.strip() for s in str(e).strip().splitlines()[-4:] if s.strip())
        low = msg.lower()
        if "nonzero" in low or "unique" in low or "data-dependent" in low:
            raise PlanError("data_dependent_shape", f"frontend: {msg[:1500]}") from None
        raise PlanError(
            "frontend_import_failed", f"{info.op_type}: {type(e).__name__}: {msg[:1500]}"
        ) from None
    main = mod["main"]
    ret = main.ret_ty
    outs = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    if len(outs) != len(info.outputs):
        raise PlanError(
            "frontend_type_bug",
            f"frontend produced {len(outs)} outputs, ONNX declares {len(info.outputs)}",
        )
    casts = []
    for k, (si, decl) in enumerate(zip(outs, info.outputs)):
        if not isinstance(si, relax.TensorType):
            raise PlanError("unsupported_lowering", f"output {k} is not a tensor")
        got = str(si.dtype)
        if got != decl["dtype"]:
            ok = (got == "float64" and decl["dtype"] in ("float32", "float16", "bfloat16")) or (
                got in ("int64", "int32") and decl["dtype"] in ("int64", "int32")
            )
            if not ok:
                raise PlanError(
                    "frontend_type_bug",
                    f"output {k} ('{decl['name']}'): frontend gives {got}, ONNX declares "
                    f"{decl['dtype']}; no safe cast",
                )
            casts.append((k, decl["dtype"]))
            info.fixups.append(
                f"output {k} ('{decl['name']}'): frontend produced {got}, cast to "
                f"{decl['dtype']} inside the Relax module (ONNX declared type)"
            )
    if casts:
        mod = _cast_outputs(mod, dict(casts), isinstance(ret, relax.TupleType), len(outs))
    return mod


def _cast_outputs(mod, casts: dict, is_tuple: bool, n: int):
    """Append `astype` bindings after main's body so outputs carry the ONNX-declared dtype."""
    from tvm import relax

    main = mod["main"]
    bb = relax.BlockBuilder(mod)
    body = main.body
    ret = body.body
    bindings = []
    items = []
    for k in range(n):
        item = relax.TupleGetItem(ret, k) if is_tuple else ret
        if k in casts:
            call = bb.normalize(relax.op.astype(item, casts[k]))
            v = relax.Var(f"tpat_cast{k}", call.ty)
            bindings.append(relax.VarBinding(v, call))
            item = v
        elif is_tuple:
            item = bb.normalize(item)
            v = relax.Var(f"tpat_item{k}", item.ty)
            bindings.append(relax.VarBinding(v, item))
            item = v
        items.append(item)
    new_ret = relax.Tuple(items) if is_tuple else items[0]
    blocks = list(body.blocks)
    if blocks and isinstance(blocks[-1], relax.DataflowBlock):
        # same dataflow block, so FuseOps can fuse the cast into the producer kernel
        blocks[-1] = relax.DataflowBlock(list(blocks[-1].bindings) + bindings)
    else:
        blocks.append(relax.BindingBlock(bindings))
    new_body = relax.SeqExpr(blocks, new_ret)
    ret_ty = relax.TupleType([x.ty for x in items]) if is_tuple else items[0].ty
    new_main = relax.Function(main.params, new_body, ret_ty, main.is_pure, main.attrs)
    mod = mod.clone() if hasattr(mod, "clone") else mod
    mod["main"] = new_main
    return relax.transform.Normalize()(mod)


# --------------------------------------------------------------------------------------------
# TVM compile with capture


_CAPTURE = threading.local()
_WRAPPED = False


def _install_build_wrapper():
    global _WRAPPED
    if _WRAPPED:
        return
    import tvm_ffi

    orig = tvm_ffi.get_global_func("target.build.cuda")

    def wrapped(m, t):
        res = orig(m, t)
        cap = getattr(_CAPTURE, "cap", None)
        if cap is not None:
            cap.setdefault("dev", []).append(m)
            try:
                cap.setdefault("src", []).append(res.inspect_source("cuda"))
            except Exception:  # noqa: BLE001
                cap.setdefault("src", []).append(res.inspect_source())
        return res

    tvm_ffi.register_global_func("target.build.cuda", wrapped, override=True)
    _WRAPPED = True


INT32_LIMIT = 2**31 - 1


def narrowing_applies(info) -> bool:
    """int32 indexing is safe: every node input and output is static, < 2^31 elements."""
    for t in list(info.inputs) + list(info.outputs):
        shape = t.get("shape")
        if shape is None or any(not isinstance(d, int) for d in shape):
            return False
        if int(np.prod(shape, dtype=np.float64)) > INT32_LIMIT:
            return False
    return True


def narrow_index_pass():
    """Index arithmetic in int32 for PrimFuncs whose buffers are static and < 2^31 elements.

    TVM's legalizations index in int64; on NVIDIA GPUs 64-bit integer division and modulo are
    emulated (tens of instructions each), which made e.g. Resize and GridSample compute-bound.
    `tirx.transform.ForceNarrowIndexToInt32` rewrites the indices; it refuses functions with
    int64 data buffers (indices of GatherND, TopK...), which keep int64, and functions with static
    extents beyond int32. Only used when `narrowing_applies(info)`: with symbolic shapes a
    dimension may exceed 2^31 at run time. Runs after FuseTIR, before dlight and the tuning
    database, in the planner and in `tpat tune` alike.
    """
    import tvm
    from tvm import tirx

    @tvm.transform.module_pass(opt_level=0, name="TPATNarrowIndexToInt32")
    def _narrow(m, _ctx):
        updates = {}
        for gv, f in m.functions.items():
            if not isinstance(f, tirx.PrimFunc):
                continue
            if f.attrs is not None and "tirx.is_scheduled" in f.attrs and int(f.attrs["tirx.is_scheduled"]):
                continue  # hand-scheduled TPAT lowerings pick their own index types
            try:
                one = tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({gv: f}))
                updates[gv] = one[gv]
            except Exception:  # noqa: BLE001 - e.g. int64 data buffers: keep int64
                continue
        for gv, f in updates.items():
            m[gv] = f
        return m

    return _narrow


def default_schedule_pass():
    """dlight's default GPU schedules (the rules of TVM's CUDA pipeline), each rule guarded: a
    rule whose analysis asserts on the function (dlight's Reduction rule asserts that every access
    region has extent 1, which RoiAlign's data-dependent bilinear reads break: the empty-message
    `AssertionError` of `tvm_error`) counts as not applying, so the next rule (GeneralReduction,
    Fallback) schedules it. Functions no rule asserts on are scheduled exactly as before."""
    from tvm.s_tir import dlight as dl

    def guarded(rule):
        class Guarded(type(rule)):
            def apply(self, func, target, tunable):
                try:
                    return super().apply(func, target, tunable)
                except AssertionError:
                    return None

        return Guarded()

    return dl.ApplyDefaultSchedule(*[guarded(r) for r in (
        dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback())])


def pre_schedule_passes(target, narrow=False):
    """The CUDA pipeline up to (not including) dlight's default schedules: library dispatch,
    LegalizeOps .. FuseTIR and, with `narrow`, int32 index narrowing. `tpat tune` searches the
    module these passes produce, so its records match the planner's functions."""
    from tvm.relax.backend.cuda import pipeline as cp

    legal = cp.legalize_passes(target)
    # legalize_passes = LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR, dlight
    return cp.library_dispatch_passes(target) + legal[:-1] + ([narrow_index_pass()] if narrow else [])


def lower_and_capture(mod, target, database=None, narrow=False):
    import tvm
    from tvm import relax
    from tvm.relax.backend.cuda import pipeline as cp

    _install_build_wrapper()
    cap = {}

    @tvm.transform.module_pass(opt_level=0, name="TPATCaptureRelax")
    def capture_relax(m, _ctx):
        cap["relax"] = m
        cap.pop("dev", None)  # drop builds done by constant folding
        cap.pop("src", None)
        return m

    @tvm.transform.module_pass(opt_level=0, name="TPATPipeline")
    def pipeline(m, _ctx):
        with target:
            passes = pre_schedule_passes(target, narrow)
            if database:
                # Tuned schedules (tpat tune) go in before dlight, which schedules the rest.
                from .tune import database_pass

                passes.append(database_pass(target, database))
            seq = tvm.transform.Sequential(
                passes
                + [default_schedule_pass()]  # dlight's default GPU schedules
                + cp.dataflow_lower_passes(target)
                + [capture_relax]
                + cp.finalize_passes(target)
            )
            return seq(m)

    @tvm.instrument.pass_instrument
    class Cap:
        def run_before_pass(self, m, info):
            if info.name.endswith("MakePackedAPI") and "relax" in cap:
                funcs = cap.setdefault("host_funcs", {})
                for gv, f in m.functions.items():
                    funcs[gv.name_hint] = f
                cap["host"] = funcs

    _CAPTURE.cap = cap
    try:
        with tvm.transform.PassContext(opt_level=3, instruments=[Cap()]):
            tvm.compile(mod, target=target, relax_pipeline=pipeline)
    finally:
        _CAPTURE.cap = None
    if "relax" not in cap:
        raise PlanError("tvm_error", "pipeline did not reach the Relax capture point")
    cap.setdefault("host", {})  # no TIR at all (e.g. Identity): interpreted as copies
    return cap


# --------------------------------------------------------------------------------------------
# Symbolic interpretation


def _dtype_bytes(dtype: str) -> int:
    if dtype not in SUPPORTED_DTYPES:
        raise PlanError("unsupported_dtype", f"dtype {dtype} is not supported in plans")
    return SUPPORTED_DTYPES[dtype]


class Interp:
    def __init__(self, info: NodeInfo, cap: dict):
        import tvm
        from tvm import tirx

        self.tvm, self.tirx = tvm, tirx
        self.info = info
        self.cap = cap
        self.host = cap["host"]
        self.sym_names = {}  # tir Var -> plan symbol name
        self.buffers = []  # [{"id","dtype","shape":[PrimExpr]}]
        self.constants = []
        self.const_ids = {}
        self.steps = []
        self.kernel_sigs = {}
        self.kernel_order = []
        self.loop_count = 0
        dev_funcs = {}
        for dm in cap.get("dev", []):
            for gv, f in dm.functions.items():
                dev_funcs[gv.name_hint] = f
        self.dev_funcs = dev_funcs

    # ---------------- expressions
    def simplify(self, e):
        from .plan_expr import simplify

        return simplify(e)

    def subst(self, e, env):
        """Rebuild a PrimExpr replacing vars with env values (PrimExprs over symbols/loop vars)."""
        tirx = self.tirx
        import tvm

        if isinstance(e, (int,)):
            return tirx.IntImm("int64", e)
        if isinstance(e, tirx.IntImm):
            return e
        if isinstance(e, tvm.ir.Var):
            if e in env:
                return env[e]
            if e in self.sym_names:
                return e
            raise PlanError("unsupported_lowering", f"unbound variable '{e.name}' in host code")
        if isinstance(e, tirx.Cast):
            return tirx.Cast(str(e.ty.dtype), self.subst(e.value, env))
        for cls in (
            tirx.Add, tirx.Sub, tirx.Mul, tirx.FloorDiv, tirx.FloorMod, tirx.Div, tirx.Mod,
            tirx.Min, tirx.Max, tirx.EQ, tirx.NE, tirx.LT, tirx.LE, tirx.GT, tirx.GE,
            tirx.And, tirx.Or, tirx.LShift, tirx.RShift,
        ):
            if isinstance(e, cls):
                a, b = self.subst(e.a, env), self.subst(e.b, env)
                return cls(a, b)
        if isinstance(e, tirx.Not):
            return tirx.Not(self.subst(e.a, env))
        if isinstance(e, tirx.Select):
            return tirx.Select(
                self.subst(e.condition, env),
                self.subst(e.true_value, env),
                self.subst(e.false_value, env),
            )
        if isinstance(e, tvm.ir.Call) and getattr(e.op, "name", "") == "tirx.if_then_else":
            return tirx.Select(*[self.subst(a, env) for a in e.args])
        if isinstance(e, tirx.FloatImm):
            return e
        raise PlanError("unsupported_lowering", f"unsupported host expression: {e}")

    def to_json(self, e):
        from .plan_expr import ExprError, to_json

        if isinstance(e, int):
            return {"int": e}
        try:
            return to_json(self.simplify(e), self.sym_names)
        except ExprError as ex:
            raise PlanError("unsupported_lowering", str(ex)) from None

    # ---------------- relax main
    def run(self):
        import tvm
        from tvm import relax

        main = self.cap["relax"]["main"]
        env = {}
        # Symbols: relax param shape vars
        for k, p in enumerate(main.params):
            si = p.ty
            if not isinstance(si, relax.TensorType) or si.shape is None:
                raise PlanError("unsupported_lowering", f"parameter {k} is not a shaped tensor")
            inp = self.info.inputs[k]
            for d, dim in enumerate(si.shape.values):
                if isinstance(dim, tvm.ir.Var):
                    want = inp["shape"][d]
                    self.sym_names[dim] = want if isinstance(want, str) else dim.name
            env[p] = {"kind": "input", "index": k}
        for blk in main.body.blocks:
            for b in blk.bindings:
                self.binding(b, env)
        out_val = self.resolve(main.body.body, env)
        outs = out_val if isinstance(out_val, list) else [out_val]
        self.finish_outputs(outs, main)

    def resolve(self, e, env):
        import tvm
        from tvm import relax

        if isinstance(e, tvm.ir.Var) and isinstance(e.ty, tvm.ir.PrimType) and e not in env:
            return {"kind": "prim", "value": e}
        if isinstance(e, (self.tirx.IntImm, self.tirx.FloatImm)) or (
            isinstance(e.ty, tvm.ir.PrimType) if hasattr(e, "ty") and not isinstance(e, tvm.ir.Var)
            and not isinstance(e, tvm.ir.Constant) else False
        ):
            return {"kind": "prim", "value": e}
        if isinstance(e, tvm.ir.Constant):
            return self.constant(e)
        if isinstance(e, tvm.ir.Var):
            if e not in env:
                raise PlanError("unsupported_lowering", f"unknown relax var {e.name}")
            return env[e]
        if isinstance(e, relax.Tuple):
            return [self.resolve(x, env) for x in e.fields]
        if isinstance(e, relax.TupleGetItem):
            t = self.resolve(e.tuple_value, env)
            return t[e.index]
        if isinstance(e, relax.ShapeExpr):
            return {"kind": "shape", "values": list(e.values)}
        raise PlanError("unsupported_lowering", f"unsupported relax expression {type(e).__name__}")

    def constant(self, c):
        key = c
        if key in self.const_ids:
            return {"kind": "constant", "id": self.const_ids[key]}
        if not hasattr(c, "value") or not hasattr(c.value, "numpy"):
            raise PlanError("unsupported_lowering", f"unsupported relax constant {c}")
        arr = c.value.numpy()
        dtype = str(c.value.dtype)
        _dtype_bytes(dtype)
        cid = len(self.constants)
        if dtype == "bool":
            raw = arr.astype(np.uint8).tobytes()
        elif dtype == "bfloat16":
            raw = np.ascontiguousarray(arr).view(np.uint16).astype("<u2").tobytes()
        else:
            raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        self.constants.append(
            {
                "id": cid,
                "dtype": dtype,
                "shape": [int(x) for x in arr.shape],
                "data": base64.b64encode(raw).decode("ascii"),
            }
        )
        self.const_ids[key] = cid
        return {"kind": "constant", "id": cid}

    def binding(self, b, env):
        import tvm
        from tvm import relax

        if isinstance(b, relax.MatchCast):
            v = self.resolve(b.value, env)
            si = b.var.ty
            if isinstance(si, relax.TensorType) and si.shape is not None:
                for dim in si.shape.values:
                    if isinstance(dim, tvm.ir.Var) and dim not in self.sym_names:
                        raise PlanError(
                            "data_dependent_shape",
                            f"shape variable '{dim.name}' is only known at run time",
                        )
            env[b.var] = v
            return
        val = b.value
        if isinstance(val, relax.Call):
            op = val.op
            if isinstance(op, tvm.ir.Op) and op.name == "relax.builtin.alloc_tensor":
                shape = list(val.args[0].values)
                dtype = str(val.args[1].value)
                env[b.var] = self.new_buffer(dtype, shape)
                return
            if isinstance(op, tvm.ir.GlobalVar):
                self.call_primfunc(op, val.args, env)
                env[b.var] = None
                return
            if isinstance(op, relax.ExternFunc):
                name = op.global_symbol
                if name in ("vm.builtin.reshape",):
                    src = self.resolve(val.args[0], env)
                    env[b.var] = src
                    return
                low = name.lower()
                if "nonzero" in low or "unique" in low:
                    raise PlanError("data_dependent_shape", f"runtime builtin {name}")
                raise PlanError("unsupported_lowering", f"runtime builtin call {name}")
            if isinstance(op, tvm.ir.Op) and op.name == "relax.reshape":
                env[b.var] = self.resolve(val.args[0], env)  # a view: same memory
                return
            if isinstance(op, tvm.ir.Op) and op.name in ("relax.null_value",):
                env[b.var] = None
                return
            name = getattr(op, "name", None) or getattr(op, "name_hint", None) or str(op)
            low = str(name).lower()
            if name in ("relax.tensor_to_shape", "relax.shape_to_tensor") or "nonzero" in low \
                    or "unique" in low:
                raise PlanError(
                    "data_dependent_shape",
                    f"{self.info.op_type}: TVM computes a shape from tensor values ({name}); "
                    "no static launch plan exists",
                )
            raise PlanError("unsupported_lowering", f"relax call to {name} is not a kernel")
        env[b.var] = self.resolve(val, env)

    def new_buffer(self, dtype, shape):
        _dtype_bytes(dtype)
        bid = len(self.buffers)
        self.buffers.append({"id": bid, "dtype": dtype, "shape": shape, "output": None})
        return {"kind": "buffer", "id": bid}

    def relax_shape_of(self, arg):
        from tvm import relax

        si = arg.ty
        if isinstance(si, relax.TensorType) and si.shape is not None:
            return list(si.shape.values)
        return None

    # ---------------- host PrimFunc
    def call_primfunc(self, gv, args, env):
        import tvm
        from tvm import relax
        from tvm.tirx import buffer as tbuf

        name = gv.name_hint
        try:
            f = self.host[name]
        except KeyError:  # noqa: BLE001
            raise PlanError("unsupported_lowering", f"no TIR function {name}") from None
        # flatten relax args to PrimFunc params
        flat = []
        for a in args:
            v = self.resolve(a, env)
            if isinstance(v, dict) and v.get("kind") == "shape":
                for x in v["values"]:
                    flat.append(("scalar", x))
            elif isinstance(v, dict) and v.get("kind") == "prim":
                flat.append(("scalar", v["value"]))
            elif isinstance(v, dict):
                flat.append(("tensor", v, self.relax_shape_of(a)))
            else:
                raise PlanError("unsupported_lowering", f"argument of {name} is not a tensor")
        if len(flat) != len(f.params):
            raise PlanError(
                "unsupported_lowering",
                f"{name}: {len(flat)} relax args for {len(f.params)} TIR params",
            )
        scal = {}
        bufs = {}
        for p, a in zip(f.params, flat):
            if tbuf.is_buffer_var(p):
                if a[0] != "tensor":
                    raise PlanError("unsupported_lowering", f"{name}: scalar passed for buffer")
                bufs[p] = a[1]
                ty = p.ty
                rshape = a[2]
                if ty.shape is not None and rshape is not None:
                    for dim, rdim in zip(ty.shape, rshape):
                        if isinstance(dim, tvm.ir.Var) and dim not in scal:
                            scal[dim] = self.subst(rdim, {})
                eo = ty.elem_offset
                if isinstance(eo, tvm.ir.Var) and eo not in scal:
                    scal[eo] = self.tirx.IntImm("int64", 0)
                if ty.strides:
                    for s in ty.strides:
                        if isinstance(s, tvm.ir.Var):
                            raise PlanError("unsupported_lowering", f"{name}: symbolic strides")
            else:
                if a[0] != "scalar":
                    raise PlanError("unsupported_lowering", f"{name}: tensor passed for scalar")
                scal[p] = self.subst(a[1], {})
        self.env_s = scal
        self.env_b = bufs
        self.steps.extend(self.stmt(f.body, name))

    def ptr(self, e, fname):
        import tvm

        if isinstance(e, tvm.ir.Call) and getattr(e.op, "name", "") == "tirx.buffer_data":
            bv = e.args[0]
            if bv in self.env_b:
                return self.env_b[bv]
        if isinstance(e, tvm.ir.Var) and e in self.env_b:
            return self.env_b[e]
        raise PlanError("unsupported_lowering", f"{fname}: unsupported pointer argument {e}")

    def stmt(self, s, fname):
        tirx = self.tirx
        import tvm

        out = []
        if isinstance(s, tirx.SeqStmt):
            for x in s.seq:
                out.extend(self.stmt(x, fname))
            return out
        if isinstance(s, tirx.Bind):
            v = s.value
            if isinstance(v, tvm.ir.Call) and getattr(v.op, "name", "") == "tirx.buffer_data":
                self.env_b[s.var] = self.ptr(v, fname)
            else:
                self.env_s[s.var] = self.subst(v, self.env_s)
            return out
        if isinstance(s, tirx.DeclBuffer):
            self.env_b[s.buffer] = self.ptr(s.data, fname)
            return out
        if isinstance(s, tirx.AllocBuffer):
            ty = s.buffer.ty
            scope = str(ty.storage_scope)
            if scope not in ("global", ""):
                raise PlanError("unsupported_lowering", f"{fname}: host allocation in {scope}")
            shape = [self.subst(x, self.env_s) for x in ty.shape]
            self.env_b[s.buffer] = self.new_buffer(str(ty.dtype), shape)
            return out
        if isinstance(s, tirx.AttrStmt):
            return self.stmt(s.body, fname)
        if isinstance(s, tirx.AssertStmt):
            return out
        if isinstance(s, tirx.For):
            step = getattr(s, "step", None)
            if step is not None and not (isinstance(step, tirx.IntImm) and step.value == 1):
                raise PlanError("unsupported_lowering", f"{fname}: host loop with step {step}")
            used = {x["name"] for x in self.info.symbols}
            lname = f"loop{self.loop_count}"
            while lname in used:
                lname = "_" + lname
            lv = tirx.Var(lname, "int64")
            self.loop_count += 1
            self.sym_names[lv] = lv.name
            begin = self.subst(s.min, self.env_s)
            self.env_s[s.loop_var] = tirx.Cast(str(s.loop_var.ty.dtype), lv) if str(
                s.loop_var.ty.dtype) != "int64" else lv
            body = self.stmt(s.body, fname)
            ext = self.subst(s.extent, self.env_s)
            return [
                {
                    "kind": "loop",
                    "var": lv.name,
                    "begin": self.to_json(begin),
                    "extent": self.to_json(ext),
                    "body": body,
                }
            ]
        if isinstance(s, tirx.Evaluate):
            v = s.value
            if isinstance(v, tirx.IntImm):
                return out
            if isinstance(v, tvm.ir.Call) and getattr(v.op, "name", "") == "tirx.call_ffi_kernel":
                return [self.launch(v, fname)]
            raise PlanError("unsupported_lowering", f"{fname}: host call {v}")
        if isinstance(s, tirx.IfThenElse):
            raise PlanError("unsupported_lowering", f"{fname}: host-side condition {s.condition}")
        raise PlanError("unsupported_lowering", f"{fname}: host statement {type(s).__name__}")

    def launch(self, call, fname):
        import tvm

        kname = str(call.args[0].value)
        tags = [str(t) for t in call.attrs.launch_params]
        consuming = [t for t in tags if t.startswith("blockIdx.") or t.startswith("threadIdx.")
                     or t == "tirx.use_dyn_shared_memory"]
        for t in tags:
            if t not in consuming:
                raise PlanError("unsupported_lowering", f"{kname}: launch flag {t}")
        nl = len(consuming)
        kargs = list(call.args[1: len(call.args) - nl])
        lvals = list(call.args[len(call.args) - nl:])
        dev = self.dev_funcs.get(kname)
        if dev is None:
            raise PlanError("unsupported_lowering", f"kernel {kname} not in the device module")
        if len(dev.params) != len(kargs):
            raise PlanError(
                "unsupported_lowering",
                f"{kname}: {len(kargs)} call args for {len(dev.params)} kernel params",
            )
        sig = []
        args = []
        for p, a in zip(dev.params, kargs):
            ty = p.ty
            if isinstance(ty, tvm.ir.PointerType):
                elem = ty.element_type
                pdt = str(elem.dtype) if hasattr(elem, "dtype") else "void"
                sig.append({"name": p.name, "type": "ptr", "dtype": pdt})
                args.append(self.ptr(a, fname))
            else:
                dt = str(ty.dtype)
                if not (dt.startswith("int") or dt.startswith("uint")):
                    raise PlanError("unsupported_lowering", f"{kname}: scalar param of type {dt}")
                sig.append({"name": p.name, "type": dt, "dtype": dt})
                args.append({"kind": "scalar", "expr": self.to_json(self.subst(a, self.env_s))})
        if kname not in self.kernel_sigs:
            self.kernel_sigs[kname] = sig
            self.kernel_order.append(kname)
        grid = [{"int": 1}, {"int": 1}, {"int": 1}]
        block = [{"int": 1}, {"int": 1}, {"int": 1}]
        smem = {"int": 0}
        for t, v in zip(consuming, lvals):
            ej = self.to_json(self.subst(v, self.env_s))
            if t == "tirx.use_dyn_shared_memory":
                smem = ej
            else:
                axis = "xyz".index(t[-1])
                (grid if t.startswith("blockIdx") else block)[axis] = ej
        return {
            "kind": "launch",
            "kernel": kname,
            "args": args,
            "grid": grid,
            "block": block,
            "dynamic_shared_memory_bytes": smem,
        }

    # ---------------- outputs and workspace
    def finish_outputs(self, outs, main):
        from tvm import relax

        ret = main.ret_ty
        rets = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
        self.out_shapes = []
        for si in rets:
            self.out_shapes.append([self.subst(x, {}) for x in si.shape.values])
        renames = {}
        copies = []
        for k, v in enumerate(outs):
            if not isinstance(v, dict):
                raise PlanError("unsupported_lowering", f"output {k} is not a tensor value")
            if v["kind"] == "buffer" and self.buffers[v["id"]]["output"] is None:
                self.buffers[v["id"]]["output"] = k
                renames[v["id"]] = {"kind": "output", "index": k}
            else:
                copies.append((k, v))
        for k, v in copies:
            src = renames.get(v.get("id")) if v["kind"] == "buffer" else v
            if src is None:
                src = v
            nbytes = self.nbytes_expr(self.info.outputs[k]["dtype"], self.out_shapes[k])
            self.steps.append(
                {
                    "kind": "copy",
                    "src": src,
                    "dst": {"kind": "output", "index": k},
                    "bytes": self.to_json(nbytes),
                }
            )

        def fix(binding):
            if binding.get("kind") == "buffer" and binding["id"] in renames:
                return renames[binding["id"]]
            return binding

        def walk(steps):
            for st in steps:
                if st["kind"] == "launch":
                    st["args"] = [fix(a) for a in st["args"]]
                elif st["kind"] == "loop":
                    walk(st["body"])

        walk(self.steps)
        # renumber remaining buffers densely
        keep = [b for b in self.buffers if b["output"] is None]
        newid = {b["id"]: i for i, b in enumerate(keep)}

        def fix2(binding):
            if binding.get("kind") == "buffer":
                return {"kind": "buffer", "id": newid[binding["id"]]}
            return binding

        def walk2(steps):
            for st in steps:
                if st["kind"] == "launch":
                    st["args"] = [fix2(a) for a in st["args"]]
                elif st["kind"] == "loop":
                    walk2(st["body"])
                elif st["kind"] == "copy":
                    st["src"] = fix2(st["src"])

        walk2(self.steps)
        tirx = self.tirx
        offset = tirx.IntImm("int64", 0)
        bufs = []
        for b in keep:
            shape = [self.subst(x, {}) for x in b["shape"]]
            nbytes = self.nbytes_expr(b["dtype"], shape)
            bufs.append(
                {
                    "id": newid[b["id"]],
                    "dtype": b["dtype"],
                    "shape": [self.to_json(x) for x in shape],
                    "bytes": self.to_json(nbytes),
                    "offset": self.to_json(offset),
                }
            )
            a = WORKSPACE_ALIGNMENT
            offset = offset + tirx.FloorDiv(nbytes + (a - 1), tirx.IntImm("int64", a)) * a
        self.out_buffers = bufs
        self.workspace = self.to_json(offset)

    def nbytes_expr(self, dtype, shape):
        tirx = self.tirx
        n = tirx.IntImm("int64", _dtype_bytes(dtype))
        for x in shape:
            x = x if not isinstance(x, int) else tirx.IntImm("int64", x)
            if str(x.ty.dtype) != "int64":
                x = tirx.Cast("int64", x)
            n = n * x
        return n


def _shape_items(exprs):
    from .plan_expr import to_text

    out = []
    for e in exprs:
        if "int" in e:
            out.append(int(e["int"]))
        elif "sym" in e:
            out.append(e["sym"])
        else:
            out.append(to_text(e))
    return out


# ONNX ops whose TVM 0.27 default legalization (topi scatter_nd / scatter_elements / gather_nd)
# uses index data as an offset with no bounds check: an out-of-range index writes (scatter) or
# reads (GatherND) outside its tensor. Only TPAT's own lowerings plan them (lowerings.py: scatter
# wraps negative indices and skips the rest; lowering_indexing.py: the gathers wrap and clamp).
UNCHECKED_INDEX_OPS = {"ScatterND": "writes", "ScatterElements": "writes", "Scatter": "writes",
                       "GatherND": "reads", "Gather": "reads", "GatherElements": "reads"}


def make_plan(model_path: str, sm: str, lowering: str = "tpat", database: str | None = None) -> dict:
    import tvm

    info = load_node(model_path)
    for t in info.inputs + info.outputs:
        if t.get("shape") and any(d == 0 for d in t["shape"]):
            # TVM's lowerings of empty tensors break (int32/int64 mismatches, launch plans with
            # undefined symbols); an empty output needs no kernel anyway.
            raise PlanError("zero_size_tensor", f"'{t['name']}' has a zero-size dim {t['shape']}: nothing to compute")
    target = cuda_target(sm)
    cap = None
    if lowering == "tpat":
        # TPAT's own TIR for ops whose default legalization is serial (python/tpat_bridge/lowerings.py,
        # docs/lowerings.md); any failure falls back to the frontend's lowering below.
        from . import lowerings, refusals

        refusals.check(info, "tpat")
        try:
            tl = lowerings.tpat_module(info)
            if tl is not None:
                cap = lower_and_capture(tl[0], target, database, narrowing_applies(info))
                info.fixups.append(f"tpat lowering: {tl[1]}")
        except Exception as e:  # noqa: BLE001
            cap = None
            info.fixups.append(f"tpat lowering failed ({type(e).__name__}: {str(e)[:200]}); "
                               "TVM's default lowering used")
    if cap is None and info.op_type in DATA_DEPENDENT_LOWERED:
        why = next((f for f in info.fixups if f.startswith("tpat lowering failed")), None)
        raise PlanError("data_dependent_shape",
                        f"{info.op_type}: {DATA_DEPENDENT_OPS[info.op_type]}; TVM lowers it to runtime builtins "
                        f"and TPAT's lowering " + (f"failed: {why}" if why else
                                                   f"does not apply (lowering {lowering!r})" if lowering != "tpat" else
                                                   "does not apply"))
    if cap is None and info.op_type in UNCHECKED_INDEX_OPS:
        if lowering != "tpat":
            why = f"lowering {lowering!r} was asked for"
        else:
            from . import lowerings

            why = next((f for f in info.fixups if f.startswith("tpat lowering failed")), None)
            if why is None:
                try:
                    why = "TPAT's lowering does not apply: " + str(lowerings.select(info)[1])
                except Exception as e:  # noqa: BLE001
                    why = f"TPAT's lowering does not apply: {type(e).__name__}"

        raise PlanError("unchecked_indices",
                        f"TVM's default {info.op_type} lowering {UNCHECKED_INDEX_OPS[info.op_type]} out of bounds "
                        f"on out-of-range indices, so TPAT does not use it ({why})")
    if cap is None:
        from . import refusals

        refusals.check(info, "tvm")  # attribute values TVM's frontend ignores or gets wrong
        mod = build_relax_module(info)
        try:
            cap = lower_and_capture(mod, target, database, narrowing_applies(info))
        except PlanError:
            raise
        except Exception as e:  # noqa: BLE001
            msg = " | ".join(s.strip() for s in str(e).strip().splitlines()[-4:] if s.strip())
            raise PlanError("tvm_error", f"TVM compile failed: {type(e).__name__}: {msg[:1500]}") from None
    if database:
        info.fixups.append(f"MetaSchedule database applied (tpat tune): {os.path.basename(os.path.normpath(database))}")
    it = Interp(info, cap)
    it.run()
    srcs = cap.get("src", [])
    if lowering == "tpat" and srcs:
        from .lowerings import with_prelude  # cuda_source = TPAT prelude + TVM's source

        srcs = [with_prelude(x) for x in srcs]
    if not it.kernel_order:
        raise PlanError(
            "no_kernel",
            "TVM lowers this node to no CUDA kernel (outputs alias inputs or constants); "
            "nothing to generate",
        )
    if len(srcs) != 1:
        raise PlanError("unsupported_lowering", f"expected one CUDA module, got {len(srcs)}")
    inputs = []
    for k, inp in enumerate(info.inputs):
        inputs.append(
            {
                "name": inp["name"],
                "dtype": inp["dtype"],
                "shape": inp["shape"],
                "shape_expr": [
                    {"int": d} if isinstance(d, int) else {"sym": d} for d in inp["shape"]
                ],
            }
        )
    outputs = []
    for k, o in enumerate(info.outputs):
        se = [it.to_json(x) for x in it.out_shapes[k]]
        declared = o.get("shape")
        if declared is not None:
            # The frontend must produce the shape ONNX declares (TVM 0.27's LayerNormalization,
            # for one, returns a scalar placeholder for Mean / InvStdDev; TPAT's lowering writes
            # them, lowering_layernorm.py, so this is reached only when it declines).
            # a data-dependent dim's expression is its upper bound: any declared value fits
            dyn = {dd["dim"] for dd in info.data_dependent if dd["output"] == k}
            bad = len(declared) != len(se) or any(
                isinstance(d, int) and "int" in e and e["int"] != d and i not in dyn
                for i, (d, e) in enumerate(zip(declared, se)))
            if bad:
                raise PlanError(
                    "frontend_shape_bug",
                    f"output {k} ({o['name']}): TVM's lowering gives shape {_shape_items(se)}, ONNX declares {declared}",
                )
        outputs.append(
            {"name": o["name"], "dtype": o["dtype"], "shape": _shape_items(se), "shape_expr": se}
        )
    _add_size_outputs(info, it, outputs)
    plan = {
        "format_version": FORMAT_VERSION,
        "tvm_version": tvm.__version__,
        "target": {"sm": sm, "tvm_target": _target_json(target)},
        "op_type": info.op_type,
        "inputs": inputs,
        "outputs": outputs,
        "symbols": info.symbols,
        "cuda_source": srcs[0],
        "compile_flags": list(COMPILE_FLAGS),
        "kernels": [{"name": n, "params": it.kernel_sigs[n]} for n in it.kernel_order],
        "steps": it.steps,
        "buffers": it.out_buffers,
        "workspace_alignment": WORKSPACE_ALIGNMENT,
        "workspace_bytes": it.workspace,
        "constants": it.constants,
        "fixups": list(info.fixups),
    }
    return plan


def _add_size_outputs(info, it, outputs):
    """Data-dependent outputs (docs/kernel-plan.md): output k's dim d is the value of a 0-D int64
    size output, appended after the ONNX outputs; shape_expr[d] is its upper bound."""
    n = len(info.outputs)
    if not info.data_dependent:
        return
    if len(it.out_shapes) != n + len({d["size_output"] for d in info.data_dependent}):
        raise PlanError("unsupported_lowering",
                        f"the lowering returns {len(it.out_shapes)} tensors for {n} outputs")
    for dd in info.data_dependent:
        k, d, j = dd["output"], dd["dim"], dd["size_output"]
        if not (0 <= k < n and n <= j < len(it.out_shapes) and 0 <= d < len(outputs[k]["shape_expr"])):
            raise PlanError("unsupported_lowering", f"bad data-dependent output {dd}")
        outputs[k]["data_dependent"] = {"dim": d, "size_output": j}
    for j in range(n, len(it.out_shapes)):
        if it.out_shapes[j]:
            raise PlanError("unsupported_lowering", f"size output {j} is not 0-D")
        of = sorted(dd["output"] for dd in info.data_dependent if dd["size_output"] == j)
        outputs.append({"name": f"{info.outputs[of[0]]['name']}__tpat_size", "dtype": "int64", "shape": [],
                        "shape_expr": [], "size_of": of})


def _target_json(target) -> dict:
    d = {}
    for k in ("kind", "arch", "max_num_threads", "max_threads_per_block",
              "max_shared_memory_per_block", "thread_warp_size"):
        if k == "kind":
            d[k] = str(target.kind.name)
            continue
        v = target.attrs.get(k) if hasattr(target, "attrs") else None
        if v is not None:
            d[k] = int(v) if not isinstance(v, str) and str(v).lstrip("-").isdigit() else str(v)
    return d
