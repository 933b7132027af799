"""The registry of TPAT's own TVM lowerings: ONE table (`LOWERINGS`), and the choice among them.

The planner, `tpat tune` and the cross-check ask `choose(info)`: every lowering registered for the
node's op (default domain) is offered the node in table order; the first `Selection` wins, each
`Decline` is kept with its reason (the plan's `declined`). `build(choice)` then emits the Relax
`main(graph inputs...)` with the chosen lowering's IR, scheduled by the lowering where it has a
schedule. Adding a lowering = one module (a `Lowering`, protocol.py) + one line below
(docs/lowerings.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tvm import relax

from ..node import NodeInfo, narrowing_applies
from .attention import ATTENTION
from .centercroppad import CENTER_CROP_PAD
from .col2im import COL2IM
from .compress import COMPRESS
from .cumsum import CUMSUM
from .dft import DFT, STFT
from .elementwise import GELU
from .gather import GATHER, GATHER_ND
from .gridsample import GRID_SAMPLE
from .indexing import GATHER_ELEMENTS
from .ir import apply_schedule, main_params
from .layernorm import LAYER_NORM
from .losses import LOSS
from .nms import NMS
from .nonzero import NONZERO
from .onehot import ONE_HOT
from .protocol import BadValue, Decline, Lowering, NodeView, Selection, node_operands
from .reduce import REDUCE
from .resize import RESIZE
from .rmsnorm import RMS_NORM
from .roialign import ROI_ALIGN
from .scatter import SCATTER_ELEMENTS, SCATTER_ND
from .topk import TOPK
from .unique import UNIQUE

LOWERINGS: tuple[Lowering, ...] = (
    SCATTER_ND,
    SCATTER_ELEMENTS,
    TOPK,
    RESIZE,
    CUMSUM,
    LAYER_NORM,
    RMS_NORM,
    DFT,
    STFT,
    GATHER_ND,
    GATHER,
    GATHER_ELEMENTS,
    ONE_HOT,
    GRID_SAMPLE,
    GELU,
    NONZERO,
    COMPRESS,
    UNIQUE,
    NMS,
    REDUCE,
    ATTENTION,
    COL2IM,
    CENTER_CROP_PAD,
    LOSS,
    ROI_ALIGN,
)
BY_NAME = {low.name: low for low in LOWERINGS}
TPAT_OPS = tuple(dict.fromkeys(op for low in LOWERINGS for op in low.ops))


@dataclass
class Choice:
    """The outcome of offering a node to the lowerings registered for its op."""

    lowering: Lowering | None = None
    selection: Selection | None = None
    declined: list = field(default_factory=list)  # [(lowering name, reason)]
    reason: str = ""  # why none was chosen

    def declined_json(self) -> list:
        return [{"lowering": name, "reason": reason} for name, reason in self.declined]


def candidates(info: NodeInfo) -> list:
    node = info.model.graph.node[0]
    if node.domain not in ("", "ai.onnx"):
        return []
    return [low for low in LOWERINGS if node.op_type in low.ops]


def offer(low: Lowering, view: NodeView) -> Selection | Decline:
    """`low.select(view)`, with a model value it cannot read (`BadValue`) declined with the reason."""
    try:
        return low.select(view)
    except BadValue as e:
        return Decline(f"invalid value: {e.reason}")


def choose(info: NodeInfo) -> Choice:
    """The first registered lowering whose `select` takes the node, and every decline before it."""
    lows = candidates(info)
    if not lows:
        return Choice(reason="no TPAT lowering for this op")
    node = info.model.graph.node[0]
    if len([o for o in node.output if o]) != len(info.outputs):  # "" = an omitted optional output
        why = "unexpected arity"
    else:
        ops = node_operands(info)
        why = None if ops is not None else "an input is neither a graph input nor an initializer"
    if why is not None:
        return Choice(declined=[(low.name, why) for low in lows], reason=why)
    view = NodeView(node=node, operands=ops, info=info)
    declined = []
    for low in lows:
        sel = offer(low, view)
        if isinstance(sel, Decline):
            declined.append((low.name, sel.reason))
            continue
        return Choice(lowering=low, selection=sel, declined=declined)
    return Choice(declined=declined, reason="; ".join(reason for _, reason in declined))


def build(info: NodeInfo, choice: Choice, mode: str = "gpu"):
    """Relax `main(graph inputs...)` with the chosen lowering's IR (and its GPU schedule). A
    lowering with data-dependent outputs returns their size tensors after the node's outputs;
    `info.data_dependent` records which (the planner's size outputs)."""
    low, sel = choice.lowering, choice.selection
    info.data_dependent = list(sel.data_dependent)
    params, _ = main_params(info)
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = low.emit(bb, params, sel, mode)
            res = bb.emit_output(out)
        bb.emit_func_output(res)
    built = bb.get()
    if mode == "gpu" and low.primfunc is not None:  # a TPAT schedule (else dlight schedules it)
        built = apply_schedule(built, low, sel, narrowing_applies(info))
    return built


def tpat_module(info: NodeInfo, mode: str = "gpu"):
    """(IRModule, chosen Choice) when a TPAT lowering takes the node, else None."""
    choice = choose(info)
    if choice.lowering is None:
        return None
    return build(info, choice, mode), choice
