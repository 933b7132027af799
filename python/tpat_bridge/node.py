"""The one-node ONNX model the planner plans and a lowering lowers (`NodeInfo`), and the int32
indexing rule both apply (`narrowing_applies`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INT32_LIMIT = 2**31 - 1


@dataclass
class NodeInfo:
    op_type: str
    inputs: list  # [{"name","dtype","shape"}] graph inputs (non-initializer), model order
    outputs: list  # [{"name","dtype","shape"(declared or None)}]
    symbols: list  # [{"name","input","dim"}]
    model: object = None
    fixups: list = field(default_factory=list)
    # [{"output", "dim", "size_output"}] set by a TPAT lowering with data-dependent outputs
    # (its Selection's `data_dependent`; docs/kernel-plan.md "Data-dependent outputs")
    data_dependent: list = field(default_factory=list)


def narrowing_applies(info) -> bool:
    """int32 indexing is safe: every node input and output is static, < 2^31 elements."""
    for t in list(info.inputs) + list(info.outputs):
        shape = t.get("shape")
        if shape is None or any(not isinstance(d, int) for d in shape):
            return False
        if math.prod(shape) > INT32_LIMIT:  # exact ints (a float64 product of hostile dims is inf)
            return False
    return True
