"""TPAT's own TVM lowerings, used by the planner instead of the ONNX frontend's legalization: the
registry (one table, op -> lowering module) and the entry points the planner, `tpat tune` and the
cross-check call (docs/lowerings.md).

Entry point for the planner: `tpat_module(info)` -> (IRModule, lowering name) or None.
"""
from __future__ import annotations

from tvm import relax

from ..node import narrowing_applies
from . import cumsum, dft, elementwise, indexing, layernorm, prelude, resize, rmsnorm, scatter, topk
from .ir import apply_schedule, main_params
from .operands import attr, node_operands

# op -> module with select(node, ops, info, attr) and emit(bb, params, det), emitting into Relax:
# Resize is a TE compute left unscheduled (dlight / MetaSchedule schedule it); TopK is TIR written
# with TVM's IR builder in te.extern stages (like topi.gpu.sort), CumSum and LayerNormalization likewise.
TE_LOWERINGS = {"Resize": resize, "TopK": topk, "CumSum": cumsum,
                "LayerNormalization": layernorm, "GatherND": indexing.GATHER_ND, "OneHot": indexing.ONE_HOT,
                "Gelu": elementwise, "Gather": indexing.GATHER, "GatherElements": indexing.GATHER_ELEMENTS,
                "RMSNormalization": rmsnorm, "DFT": dft}
TPAT_OPS = ("ScatterND", "ScatterElements") + tuple(TE_LOWERINGS)


def select(info):
    """(lowering name, details) when a TPAT lowering applies to the node, else (None, reason)."""
    g = info.model.graph
    node = g.node[0]
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or op not in TPAT_OPS:
        return None, "no TPAT lowering for this op"
    if op in TE_LOWERINGS:
        if len(node.output) != len(info.outputs):
            return None, "unexpected arity"
        ops = node_operands(info)
        if ops is None:
            return None, "an input is neither a graph input nor an initializer"
        return TE_LOWERINGS[op].select(node, ops, info, attr)
    if len(node.input) != 3 or len(node.output) != 1:
        return None, "unexpected arity"
    ops = node_operands(info)
    if ops is None:
        return None, "an input is neither a graph input nor an initializer"
    return scatter.select(node, ops, info, attr)


def _te_module(info, det, mode="gpu"):
    """Relax `main(graph inputs...)` = emit_te(TPAT's TE compute) for the TE-based lowerings."""
    params, _ = main_params(info)
    mod = TE_LOWERINGS[det["op"]]
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = mod.emit(bb, params, det, mode)
            res = bb.emit_output(out)
        bb.emit_func_output(res)
    built = bb.get()
    if mode == "gpu" and hasattr(mod, "schedule"):  # a TPAT schedule (else dlight schedules it)
        built = apply_schedule(built, mod, det, narrowing_applies(info))
    return built


def tpat_module(info, mode="gpu"):
    """(IRModule, lowering name) when a TPAT lowering applies to the node, else None."""
    name, det = select(info)
    if name is None:
        return None
    if det["op"] in TE_LOWERINGS:
        return _te_module(info, det, mode), name
    mod = scatter.build_module(info, det, mode)
    if mode == "gpu":
        prelude.install_cuda_postproc()
    return mod, name
