"""KernelPlan: read TVM's CUDA kernels and host launch sequence for a one-node ONNX model.

Public entry: handle_plan(request) -> {"ok": True, "plan": {...}} | {"ok": False, "error": {...}}.
Request field "lowering": "tpat" (default; else $TPAT_LOWERING) uses TPAT's own TIR/TE for the ops of
the lowerings registry (lowerings/registry.py) instead of the frontend's legalization; "tvm" keeps TVM's.
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

import os
import threading
import traceback

import tvm
from onnx import numpy_helper

from ..errors import BridgeError, PlanError
from ..lowerings import refusals, registry
from ..lowerings.prelude import with_prelude
from ..lowerings.protocol import PLAN_TARGET, BadValue, attr
from ..node import narrowing_applies
from .expr import to_text
from .interp import WORKSPACE_ALIGNMENT, Interp
from .load import DATA_DEPENDENT_LOWERED, DATA_DEPENDENT_OPS, load_node
from .pipeline import SM_TARGETS, cuda_target, lower_and_capture
from .relax_import import build_relax_module
from .values import bad_value

FORMAT_VERSION = 1
TVM_DEFAULT = "tvm-default"  # the plan's `lowering` when TVM's own legalization made the kernels

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


def _err(code, reason):
    return {"ok": False, "error": {"code": code, "reason": reason}}


_LOCK = threading.Lock()


def run_plan(request: dict) -> dict:
    """Bridge command "plan": the plan, or BridgeError with the plan error's code and reason."""
    answer = handle_plan(request)
    if answer.get("ok"):
        return answer["plan"]
    raise BridgeError(answer["error"]["code"], answer["error"]["reason"])


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


def _shape_items(exprs):
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
# reads (GatherND) outside its tensor. Only TPAT's own lowerings plan them (lowerings/scatter.py:
# wraps negative indices and skips the rest; lowerings/gather.py and indexing.py: the gathers wrap and clamp).
UNCHECKED_INDEX_OPS = {
    "ScatterND": "writes",
    "ScatterElements": "writes",
    "Scatter": "writes",
    "GatherND": "reads",
    "Gather": "reads",
    "GatherElements": "reads",
}


def _bad_value(info):
    """values.bad_value for the loaded node (a model value ONNX does not allow), or None."""
    g = info.model.graph
    node = g.node[0]
    inits = {t.name: t for t in g.initializer}
    shapes = {x["name"]: x["shape"] for x in info.inputs}
    consts, in_shapes = {}, []
    for k, nm in enumerate(node.input):
        if nm in inits:
            consts[k] = numpy_helper.to_array(inits[nm])
            in_shapes.append(list(consts[k].shape))
        else:
            in_shapes.append(shapes.get(nm))
    try:
        attrs = {a.name: attr(node, a.name, None) for a in node.attribute}
    except BadValue as e:
        return e.reason
    return bad_value(node.op_type, attrs, in_shapes, consts)


def make_plan(model_path: str, sm: str, lowering: str = "tpat", database: str | None = None) -> dict:
    info = load_node(model_path)
    for t in info.inputs + info.outputs:
        if t.get("shape") and any(d == 0 for d in t["shape"]):
            # TVM's lowerings of empty tensors break (int32/int64 mismatches, launch plans with
            # undefined symbols); an empty output needs no kernel anyway.
            raise PlanError("zero_size_tensor", f"'{t['name']}' has a zero-size dim {t['shape']}: nothing to compute")
    why = _bad_value(info)
    if why:
        raise PlanError("invalid_value", why)
    target = cuda_target(sm)
    cap = None
    made_by, detail, declined, failure = TVM_DEFAULT, None, [], None
    if lowering == "tpat":
        # TPAT's own TIR for ops whose default legalization is serial (python/tpat_bridge/lowerings/,
        # docs/lowerings.md); any failure falls back to the frontend's lowering below.
        refusals.check(info, "tpat")
        choice = None
        target_token = PLAN_TARGET.set(sm)
        try:
            choice = registry.choose(info)
            declined = choice.declined_json()
            if choice.lowering is not None:
                cap = lower_and_capture(registry.build(info, choice), target, database, narrowing_applies(info))
                made_by, detail = choice.lowering.name, choice.selection.describe()
        except Exception as e:  # noqa: BLE001
            cap = None
            failure = f"tpat lowering failed ({type(e).__name__}: {str(e)[:200]}); TVM's default lowering used"
            if choice is None:  # choosing itself raised: every candidate failed
                failed = registry.candidates(info)
            else:
                failed = [choice.lowering] if choice.lowering is not None else []
            declined += [{"lowering": low.name, "reason": failure} for low in failed]
        finally:
            PLAN_TARGET.reset(target_token)
    if cap is None and info.op_type in DATA_DEPENDENT_LOWERED:
        if lowering != "tpat":
            why = f"does not apply (lowering {lowering!r})"
        else:
            why = f"failed: {failure}" if failure else "does not apply: " + choice.reason
        raise PlanError(
            "data_dependent_shape",
            f"{info.op_type}: {DATA_DEPENDENT_OPS[info.op_type]}; TVM lowers it to runtime builtins "
            f"and TPAT's lowering {why}",
        )
    if cap is None and info.op_type in UNCHECKED_INDEX_OPS:
        if lowering != "tpat":
            why = f"lowering {lowering!r} was asked for"
        else:
            why = failure or "TPAT's lowering does not apply: " + choice.reason

        raise PlanError(
            "unchecked_indices",
            f"TVM's default {info.op_type} lowering {UNCHECKED_INDEX_OPS[info.op_type]} out of bounds "
            f"on out-of-range indices, so TPAT does not use it ({why})",
        )
    if cap is None:
        try:
            refusals.check(info, "tvm")  # attribute values TVM's frontend ignores or gets wrong
            mod = build_relax_module(info)
        except PlanError as e:  # the reason says why TPAT's lowering did not take the node either
            if not declined:
                raise
            why = "; ".join(f"{d['lowering']}: {d['reason']}" for d in declined)
            raise PlanError(e.code, f"{e.reason} (TPAT's lowering declined: {why})"[:2000]) from None
        try:
            cap = lower_and_capture(mod, target, database, narrowing_applies(info))
        except PlanError:
            raise
        except Exception as e:  # noqa: BLE001
            msg = " | ".join(s.strip() for s in str(e).strip().splitlines()[-4:] if s.strip())
            raise PlanError("tvm_error", f"TVM compile failed: {type(e).__name__}: {msg[:1500]}") from None
    # The database names the plan only where a record of it was applied (a database holds the
    # records of every lowering's functions; the other lowering's plan is the untuned one).
    tuned_with = os.path.basename(os.path.normpath(database)) if database and cap.get("tuned_functions") else None
    if tuned_with:
        info.fixups.append(f"MetaSchedule database applied (tpat tune): {tuned_with}")
    it = Interp(info, cap)
    it.run()
    srcs = cap.get("src", [])
    if lowering == "tpat" and srcs:
        srcs = [with_prelude(x) for x in srcs]  # cuda_source = TPAT prelude + TVM's source
    if not it.kernel_order:
        raise PlanError(
            "no_kernel",
            "TVM lowers this node to no CUDA kernel (outputs alias inputs or constants); nothing to generate",
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
                "shape_expr": [{"int": d} if isinstance(d, int) else {"sym": d} for d in inp["shape"]],
            }
        )
    outputs = []
    for k, o in enumerate(info.outputs):
        se = [it.to_json(x) for x in it.out_shapes[k]]
        declared = o.get("shape")
        if declared is not None:
            # The frontend must produce the shape ONNX declares (TVM 0.27's LayerNormalization,
            # for one, returns a scalar placeholder for Mean / InvStdDev; TPAT's lowering writes
            # them, lowerings/layernorm.py, so this is reached only when it declines).
            # A data-dependent dim's expression is its upper bound: any declared value fits.
            dyn = {dd["dim"] for dd in info.data_dependent if dd["output"] == k}
            bad = len(declared) != len(se) or any(
                isinstance(d, int) and "int" in e and e["int"] != d and i not in dyn
                for i, (d, e) in enumerate(zip(declared, se))
            )
            if bad:
                raise PlanError(
                    "frontend_shape_bug",
                    f"output {k} ({o['name']}): TVM's lowering gives shape {_shape_items(se)}, ONNX declares {declared}",
                )
        outputs.append({"name": o["name"], "dtype": o["dtype"], "shape": _shape_items(se), "shape_expr": se})
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
        "lowering": made_by,
        "declined": declined,
        "fixups": list(info.fixups),
    }
    if detail is not None:
        plan["lowering_detail"] = detail
    if tuned_with:
        plan["tuning_database"] = tuned_with
    return plan


def _add_size_outputs(info, it, outputs):
    """Data-dependent outputs (docs/kernel-plan.md): output k's dim d is the value of a 0-D int64
    size output, appended after the ONNX outputs; shape_expr[d] is its upper bound."""
    n = len(info.outputs)
    if not info.data_dependent:
        return
    if len(it.out_shapes) != n + len({d["size_output"] for d in info.data_dependent}):
        raise PlanError("unsupported_lowering", f"the lowering returns {len(it.out_shapes)} tensors for {n} outputs")
    for dd in info.data_dependent:
        k, d, j = dd["output"], dd["dim"], dd["size_output"]
        if not (0 <= k < n and n <= j < len(it.out_shapes) and 0 <= d < len(outputs[k]["shape_expr"])):
            raise PlanError("unsupported_lowering", f"bad data-dependent output {dd}")
        outputs[k]["data_dependent"] = {"dim": d, "size_output": j}
    for j in range(n, len(it.out_shapes)):
        if it.out_shapes[j]:
            raise PlanError("unsupported_lowering", f"size output {j} is not 0-D")
        of = sorted(dd["output"] for dd in info.data_dependent if dd["size_output"] == j)
        outputs.append(
            {
                "name": f"{info.outputs[of[0]]['name']}__tpat_size",
                "dtype": "int64",
                "shape": [],
                "shape_expr": [],
                "size_of": of,
            }
        )


def _target_json(target) -> dict:
    d = {}
    for k in (
        "kind",
        "arch",
        "max_num_threads",
        "max_threads_per_block",
        "max_shared_memory_per_block",
        "thread_warp_size",
    ):
        if k == "kind":
            d[k] = str(target.kind.name)
            continue
        v = target.attrs.get(k) if hasattr(target, "attrs") else None
        if v is not None:
            d[k] = int(v) if not isinstance(v, str) and str(v).lstrip("-").isdigit() else str(v)
    return d
