"""Integer expressions of a KernelPlan: TVM PrimExpr <-> small JSON AST, and the one table of their
operators (`OPS`).

Format (schemas/kernel-plan.schema.json, "$defs/Expr"; docs/kernel-plan.md):

    {"int": 4}                      64-bit signed integer literal
    {"sym": "N"}                    value of a symbol (ONNX dim symbol or loop variable)
    {"op": "<name>", "args": [...]} operator applied to sub-expressions

The operators are the rows of `OPS` (name, TIR node class, arity, meaning): everything in Python
that knows the operator set (serialization, the host-IR interpreter's substitution, the reference
evaluator, the infix rendering, the schema check in tests/python/test_plan_expr.py) reads it from
there. All are evaluated in signed 64-bit integers; comparisons and logic give 0 or 1; floordiv /
floormod round toward -inf (Python), truncdiv / truncmod toward 0 (C); shl / shr are arithmetic
shifts; and / or / not take operands as 0 / nonzero. Casts between integer types and from bool are
dropped (values are assumed to fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tvm
from tvm import tirx
from tvm.sym.analyzer import Analyzer


class ExprError(Exception):
    pass


def _truncdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


@dataclass(frozen=True)
class Op:
    name: str  # the JSON "op"
    tir: type  # the TIR node it comes from (if_then_else calls also give "select")
    arity: int
    fields: tuple  # the TIR node's operand fields, in argument order
    eval: Callable  # reference semantics over Python ints (list of evaluated args -> int)
    infix: str | None = None  # to_text's infix symbol, where one reads naturally


_AB = ("a", "b")
OPS = (
    Op("add", tirx.Add, 2, _AB, lambda a: a[0] + a[1], "+"),
    Op("sub", tirx.Sub, 2, _AB, lambda a: a[0] - a[1], "-"),
    Op("mul", tirx.Mul, 2, _AB, lambda a: a[0] * a[1], "*"),
    Op("floordiv", tirx.FloorDiv, 2, _AB, lambda a: a[0] // a[1], "//"),
    Op("floormod", tirx.FloorMod, 2, _AB, lambda a: a[0] % a[1], "%"),
    Op("truncdiv", tirx.Div, 2, _AB, lambda a: _truncdiv(a[0], a[1])),
    Op("truncmod", tirx.Mod, 2, _AB, lambda a: a[0] - _truncdiv(a[0], a[1]) * a[1]),
    Op("min", tirx.Min, 2, _AB, lambda a: min(a)),
    Op("max", tirx.Max, 2, _AB, lambda a: max(a)),
    Op("shl", tirx.LShift, 2, _AB, lambda a: a[0] << a[1]),
    Op("shr", tirx.RShift, 2, _AB, lambda a: a[0] >> a[1]),
    Op("eq", tirx.EQ, 2, _AB, lambda a: int(a[0] == a[1])),
    Op("ne", tirx.NE, 2, _AB, lambda a: int(a[0] != a[1])),
    Op("lt", tirx.LT, 2, _AB, lambda a: int(a[0] < a[1])),
    Op("le", tirx.LE, 2, _AB, lambda a: int(a[0] <= a[1])),
    Op("gt", tirx.GT, 2, _AB, lambda a: int(a[0] > a[1])),
    Op("ge", tirx.GE, 2, _AB, lambda a: int(a[0] >= a[1])),
    Op("and", tirx.And, 2, _AB, lambda a: int(bool(a[0]) and bool(a[1]))),
    Op("or", tirx.Or, 2, _AB, lambda a: int(bool(a[0]) or bool(a[1]))),
    Op("not", tirx.Not, 1, ("a",), lambda a: int(not a[0])),
    Op("select", tirx.Select, 3, ("condition", "true_value", "false_value"), lambda a: a[1] if a[0] else a[2]),
)
BY_NAME = {op.name: op for op in OPS}
BY_TIR = {op.tir: op for op in OPS}
IF_THEN_ELSE = "tirx.if_then_else"  # a Call that is the "select" operator


def op_of(e):
    """The row of OPS for a TIR node (an if_then_else Call is "select"), or None."""
    for cls in type(e).__mro__:
        if cls in BY_TIR:
            return BY_TIR[cls]
    if isinstance(e, tvm.ir.Call) and getattr(e.op, "name", None) == IF_THEN_ELSE:
        return BY_NAME["select"]
    return None


def operands(e, op: Op) -> list:
    """The TIR node's operands in argument order."""
    if isinstance(e, tvm.ir.Call):
        return list(e.args)
    return [getattr(e, f) for f in op.fields]


def _is_int_dtype(dtype: str) -> bool:
    return dtype.startswith("int") or dtype.startswith("uint") or dtype == "bool"


def to_json(e, var_names: dict) -> dict:
    """Serialize a PrimExpr whose free variables are all in var_names (Var -> plan name)."""
    if isinstance(e, int):
        return {"int": int(e)}
    if isinstance(e, tirx.IntImm):
        return {"int": int(e.value)}
    if isinstance(e, tirx.Var):
        name = var_names.get(e)
        if name is None:
            raise ExprError(f"free variable '{e.name}' is not a plan symbol")
        return {"sym": name}
    if isinstance(e, tirx.Cast):
        if not _is_int_dtype(str(e.ty.dtype)) or not _is_int_dtype(str(e.value.ty.dtype)):
            raise ExprError(f"non-integer cast in launch expression: {e}")
        return to_json(e.value, var_names)
    op = op_of(e)
    if op is not None:
        return {"op": op.name, "args": [to_json(x, var_names) for x in operands(e, op)]}
    raise ExprError(f"unsupported expression node {type(e).__name__}: {e}")


def evaluate(expr: dict, env: dict) -> int:
    """Reference evaluator (used by tests; Swift/C++ mirror this)."""
    if "int" in expr:
        return int(expr["int"])
    if "sym" in expr:
        return int(env[expr["sym"]])
    op = BY_NAME.get(expr["op"])
    if op is None:
        raise ValueError(f"unknown op {expr['op']}")
    return op.eval([evaluate(x, env) for x in expr["args"]])


def to_text(expr: dict) -> str:
    """Human-readable infix rendering (informational only)."""
    if "int" in expr:
        return str(expr["int"])
    if "sym" in expr:
        return expr["sym"]
    op = expr["op"]
    a = [to_text(x) for x in expr["args"]]
    infix = BY_NAME[op].infix if op in BY_NAME else None
    if infix:
        return f"({a[0]} {infix} {a[1]})"
    return f"{op}({', '.join(a)})"


ANALYZER = None


def simplify(e):
    global ANALYZER
    if ANALYZER is None:
        ANALYZER = Analyzer()
    return ANALYZER.simplify(e)
