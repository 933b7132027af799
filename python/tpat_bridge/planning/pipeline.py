"""TVM's CUDA pipeline as the planner runs it, with capture points for the interpreter.

`lower_and_capture(mod, target)` compiles a Relax module for CUDA: library dispatch, LegalizeOps ..
FuseTIR, int32 index narrowing (`narrow_index_pass`), a MetaSchedule database when `tpat tune` made
one (`database_pass`), dlight's default schedules (`default_schedule_pass`), dataflow lowering; a
capture pass keeps Relax `main` there, a pass instrument the host TIR right before MakePackedAPI,
and a wrapper of `target.build.cuda` the device functions and the CUDA C source. `tpat tune` uses
`pre_schedule_passes` so its records match the planner's functions, and `compile_fused` builds
such a fused module as this pipeline would (scripts/device/tune_compare.py).
"""

from __future__ import annotations

import os
import threading

import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.relax.backend.cuda import pipeline as cp
from tvm.s_tir import dlight as dl
from tvm.s_tir import meta_schedule as ms

from ..errors import BridgeError, PlanError

SM_TARGETS = {
    "sm_80": {"arch": "sm_80", "max_shared_memory_per_block": 49152},
    "sm_86": {"arch": "sm_86", "max_shared_memory_per_block": 49152},
    "sm_89": {"arch": "sm_89", "max_shared_memory_per_block": 49152},
    "sm_90": {"arch": "sm_90", "max_shared_memory_per_block": 49152},
    # Hopper's architecture-specific features (wgmma): kernels planned for it build only for 90a
    "sm_90a": {"arch": "sm_90a", "max_shared_memory_per_block": 49152},
}


def cuda_target(sm: str):
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


_CAPTURE = threading.local()
_WRAPPED = False


def _install_build_wrapper():
    global _WRAPPED
    if _WRAPPED:
        return
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


def default_schedule_rules():
    """dlight's default GPU schedule rules (those of TVM's CUDA pipeline), each rule guarded: a
    rule whose analysis asserts on the function (dlight's Reduction rule asserts that every access
    region has extent 1, which RoiAlign's data-dependent bilinear reads break: the empty-message
    `AssertionError` of `tvm_error`) counts as not applying, so the next rule (GeneralReduction,
    Fallback) schedules it. Functions no rule asserts on are scheduled exactly as before. `tpat
    tune` applies them itself (tune.default_schedule) to get the default schedule's trace."""

    def guarded(rule):
        class Guarded(type(rule)):
            def apply(self, func, target, tunable):
                try:
                    return super().apply(func, target, tunable)
                except AssertionError:
                    return None

        return Guarded()

    return [
        guarded(r)
        for r in (dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback())
    ]


def default_schedule_pass():
    """dlight's default GPU schedules: ApplyDefaultSchedule with default_schedule_rules()."""
    return dl.ApplyDefaultSchedule(*default_schedule_rules())


def pre_schedule_passes(target, narrow=False):
    """The CUDA pipeline up to (not including) dlight's default schedules: library dispatch,
    LegalizeOps .. FuseTIR and, with `narrow`, int32 index narrowing. `tpat tune` searches the
    module these passes produce, so its records match the planner's functions."""
    legal = cp.legalize_passes(target)
    # legalize_passes = LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR, dlight
    return cp.library_dispatch_passes(target) + legal[:-1] + ([narrow_index_pass()] if narrow else [])


def compile_fused(mod, target):
    """Compiles a fused module (the output of `pre_schedule_passes`, a database possibly applied)
    the way the planner's pipeline goes on from there: on CUDA dlight's guarded default schedules
    (`default_schedule_pass`), then dataflow lowering and finalization (CPU: the last two only).
    Not `tvm.compile`'s default pipeline: it would run LegalizeOps .. FuseTIR again over functions
    already fused, which fuses e.g. an int64-indexed one-hot with its int32-narrowed cast
    (FuseTIR's "Inconsistent buffers ... mapped to the same relax var"), and dlight's unguarded
    rules (GEMV's empty-message AssertionError on a fused subtract-exp-sum)."""
    if isinstance(target, str):
        target = tuning_target(target)
    if target.kind.name == "cuda":
        passes = [default_schedule_pass()] + cp.dataflow_lower_passes(target) + cp.finalize_passes(target)
    else:
        # lazy: only the CPU (llvm) builds of the scripts' own tests need the generic CPU pipeline
        from tvm.relax.backend.cpu_generic import pipeline as cpu

        passes = cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target)

    @tvm.transform.module_pass(opt_level=0, name="TPATAfterFuse")
    def after_fuse(m, _ctx):
        with target:
            return tvm.transform.Sequential(passes)(m)

    return tvm.compile(mod, target=target, relax_pipeline=after_fuse)


def lower_and_capture(mod, target, database=None, narrow=False):
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
                passes.append(database_pass(target, database, cap))
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


def tuning_target(name: str):
    """TVM target for a request's "target": "sm_80".."sm_90a" (the planner's CUDA target, with an
    LLVM host) or "llvm" (this machine's CPU, for tests)."""
    if name == "llvm":
        return tvm.target.Target({"kind": "llvm", "num-cores": max(1, os.cpu_count() or 1)})
    if name in SM_TARGETS:
        t = cuda_target(name)
        return tvm.target.Target(t, host=tvm.target.Target({"kind": "llvm"}))
    raise BridgeError(
        "invalid_request",
        f"unsupported target '{name}'; expected one of {sorted(SM_TARGETS) + ['llvm']}",
    )


# --------------------------------------------------------------------------------------------
# MetaSchedule database (`tpat tune` writes it, the planner applies it)


def open_database(work_dir: str):
    return ms.database.JSONDatabase(work_dir=work_dir, module_equality="structural")


def apply_database(mod, target, work_dir: str):
    """Apply the best tuned schedules of the JSON database in `work_dir` to a fused module.

    `mod`: the Relax IRModule after FuseTIR (the planner's pipeline right before dlight).
    `target`: a tvm.target.Target (the planner's CUDA target) or a request target name.
    PrimFuncs with a record get the best record's trace replayed and `tirx.is_scheduled`; the
    others are returned unchanged (unscheduled), for dlight to schedule next.
    """
    if isinstance(target, str):
        target = tuning_target(target)
    if not os.path.isfile(os.path.join(work_dir, "database_workload.json")):
        raise BridgeError("invalid_request", f"no tuning database in '{work_dir}'")
    db = open_database(work_dir)
    with target, db, tvm.transform.PassContext(opt_level=3):
        return relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)


def scheduled_functions(mod) -> int:
    """The PrimFuncs of `mod` marked `tirx.is_scheduled` (hand-scheduled, or a tuned record applied)."""
    return sum(
        1
        for _, f in mod.functions.items()
        if isinstance(f, tvm.tirx.PrimFunc)
        and f.attrs is not None
        and "tirx.is_scheduled" in f.attrs
        and int(f.attrs["tirx.is_scheduled"])
    )


def database_pass(target, work_dir: str, applied: dict | None = None):
    """apply_database as a module pass, to sit between FuseTIR and dlight in a Sequential.
    `applied` (optional): gets "tuned_functions", the number of functions a record was applied to."""

    @tvm.transform.module_pass(opt_level=0, name="TPATApplyTuningDatabase")
    def _apply(m, _ctx):
        out = apply_database(m, target, work_dir)
        if applied is not None:
            applied["tuned_functions"] = scheduled_functions(out) - scheduled_functions(m)
        return out

    return _apply
