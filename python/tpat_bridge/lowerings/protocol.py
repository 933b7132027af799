"""What a TPAT lowering is: the `Lowering` protocol, the node it is offered (`NodeView`, its inputs as
named `Operand`s) and its two possible answers (a `Selection` of its own type, or a `Decline` with
the reason). docs/lowerings.md walks through writing one.

    select(node)              -> Selection | Decline   (pure: reads the node, builds no IR)
    emit(bb, params, sel, mode) -> the Relax value of the node's output(s), emitted into `main`'s
                                 dataflow block (a TE compute, TIR through te.extern or call_tir)
    schedule(sch, block, sel) -> bool                  (optional: a GPU schedule of `primfunc`;
                                                        False leaves it to dlight)

`mode` is "gpu" (the CUDA plan) or "cpu" (the same arithmetic for LLVM, used by the cross-check and
the tests). Lowerings are registered in one table, lowerings/registry.py.
"""

from __future__ import annotations

import contextvars
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from onnx import helper, numpy_helper

from ..dtypes import onnx_dtype
from ..node import NodeInfo

# The CUDA target ("sm_80" .. "sm_90a") the plan being made is for; None outside the planner (the
# CPU twin, tests). A lowering may pick an architecture-specific kernel from it in select().
PLAN_TARGET: contextvars.ContextVar[str | None] = contextvars.ContextVar("tpat_plan_target", default=None)


@dataclass(frozen=True)
class Operand:
    """One input of the node: a graph input (`param`, main's parameter `index`), a constant
    (`const`, an initializer's `value`) or an omitted optional input (`absent`)."""

    kind: str
    index: int | None = None
    value: np.ndarray | None = None
    shape: list | None = None
    dtype: str | None = None

    @property
    def is_param(self) -> bool:
        return self.kind == "param"

    @property
    def is_const(self) -> bool:
        return self.kind == "const"

    @property
    def is_absent(self) -> bool:
        return self.kind == "absent"

    def scalar_int(self, what: str) -> int:
        """The constant's one integer value (K, depth, axis, ...): BadValue when the constant is
        empty, has several values, or holds a non-integer or non-finite number."""
        v = np.asarray(self.value).reshape(-1)
        if v.size != 1:
            raise BadValue(f"{what} has {v.size} values, expected one")
        x = v[0].item()
        if isinstance(x, float):
            if not math.isfinite(x) or x != int(x):
                raise BadValue(f"{what} is {x}, not an integer")
        elif not isinstance(x, int):
            raise BadValue(f"{what} is {type(x).__name__}, not an integer")
        return int(x)


class BadValue(Exception):
    """A model value a lowering cannot even read (an attribute of the wrong type, an empty or
    non-finite constant where one integer is expected). `select` may let it escape: the registry
    (`registry.offer`) turns it into `Decline(f"invalid value: {reason}")`, never a crash."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _typed(name, v, default):
    """`v` checked against the type of `default` (int, float, str, list); BadValue when it differs."""
    if default is None or isinstance(default, bool):
        return v
    if isinstance(default, int) and not isinstance(v, int):
        raise BadValue(f"attribute {name} is {type(v).__name__}, expected an int")
    if isinstance(default, float):
        if not isinstance(v, (int, float)):
            raise BadValue(f"attribute {name} is {type(v).__name__}, expected a float")
        if not math.isfinite(v):
            raise BadValue(f"attribute {name} is {v}")
        return float(v)
    if isinstance(default, str) and not isinstance(v, str):
        raise BadValue(f"attribute {name} is {type(v).__name__}, expected a string")
    if isinstance(default, (list, tuple)) and not isinstance(v, (list, tuple)):
        raise BadValue(f"attribute {name} is {type(v).__name__}, expected a list")
    return v


def attr(node, name, default):
    """The node's attribute `name` (bytes decoded), else `default`. When `default` is an int, float,
    string or list the value must be of that type (a float finite): else BadValue."""
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            if isinstance(v, bytes):
                try:
                    v = v.decode()
                except UnicodeDecodeError:
                    raise BadValue(f"attribute {name} is not UTF-8") from None
            return _typed(name, v, default)
    return default


def node_operands(info: NodeInfo):
    """The node's inputs as operands, or None when one is neither a graph input nor an initializer."""
    g = info.model.graph
    inits = {t.name: t for t in g.initializer}
    by_name = {x["name"]: (k, x) for k, x in enumerate(info.inputs)}
    ops = []
    for nm in g.node[0].input:
        if nm == "":
            ops.append(Operand("absent"))  # an omitted optional input
        elif nm in by_name:
            k, x = by_name[nm]
            ops.append(Operand("param", index=k, shape=list(x["shape"]), dtype=x["dtype"]))
        elif nm in inits:
            arr = numpy_helper.to_array(inits[nm])
            ops.append(
                Operand("const", value=arr, shape=[int(s) for s in arr.shape], dtype=onnx_dtype(inits[nm].data_type))
            )
        else:
            return None
    return ops


@dataclass(frozen=True)
class NodeView:
    """The node a lowering is offered: the ONNX node, its inputs as operands, its graph (`info`)."""

    node: object  # onnx.NodeProto
    operands: list
    info: NodeInfo

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def outputs(self) -> list:
        """The node's outputs as the graph declares them: [{"name", "dtype", "shape"}]."""
        return self.info.outputs

    def attr(self, name, default):
        return attr(self.node, name, default)

    def opset(self, default: int) -> int:
        """The model's default-domain opset version (`default` when it has none)."""
        return next((o.version for o in self.info.model.opset_import if o.domain in ("", "ai.onnx")), default)


@dataclass(frozen=True)
class Decline:
    """A lowering does not take the node; `reason` says why (the plan's `declined`)."""

    reason: str


class Selection:
    """Base of every lowering's selection: the named choices emit and schedule work from.
    `describe()` is the one-line summary the plan carries as `lowering_detail`; `data_dependent`
    lists the outputs whose dim is the value of a size output the lowering appends (NonZero,
    Compress, Unique; docs/kernel-plan.md "Data-dependent outputs")."""

    def describe(self) -> str:
        raise NotImplementedError

    @property
    def data_dependent(self) -> list:
        """[{"output": k, "dim": d, "size_output": j}]: output k's dim d is the value of the 0-D
        int64 tensor j (j >= the node's output count) that emit returns after the outputs."""
        return []


class Lowering(ABC):
    """A TPAT lowering (see the module docstring). Subclasses set `name` (the plan's `lowering`,
    [a-z0-9_]+), `ops` (the ONNX op types of the default domain it may take) and implement
    `select` and `emit`; `primfunc` + `schedule` when it schedules its PrimFunc itself."""

    name: ClassVar[str]
    ops: ClassVar[tuple]
    primfunc: ClassVar[str | None] = None  # the PrimFunc `schedule` schedules

    @abstractmethod
    def select(self, node: NodeView) -> Selection | Decline:
        """The lowering's choices for the node, or why it does not take it. Builds no IR."""

    @abstractmethod
    def emit(self, bb, params, sel, mode: str = "gpu"):
        """The node's output(s), emitted into main's dataflow block (`params`: main's parameters)."""

    def schedule(self, sch, block, sel) -> bool:
        """A GPU schedule of `primfunc` (block: its main block); False leaves it to dlight."""
        return False


class FunctionLowering(Lowering):
    """A lowering made of its module's functions: `select(node)`, `emit(bb, params, sel, mode)` and,
    where it schedules the PrimFunc `primfunc` itself, `schedule(sch, block, sel)`."""

    def __init__(self, name, ops, select, emit, schedule=None, primfunc=None):
        self.name, self.ops, self.primfunc = name, tuple(ops), primfunc
        self._select, self._emit, self._schedule = select, emit, schedule

    def select(self, node):
        return self._select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return self._emit(bb, params, sel, mode)

    def schedule(self, sch, block, sel):
        return self._schedule(sch, block, sel) if self._schedule is not None else False
