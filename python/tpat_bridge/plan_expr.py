"""Integer expressions of a KernelPlan: TVM PrimExpr <-> small JSON AST.

Format (documented in schemas/kernel-plan.schema.json, "$defs/Expr"):

    {"int": 4}                      64-bit signed integer literal
    {"sym": "N"}                    value of a symbol (ONNX dim symbol or loop variable)
    {"op": "<name>", "args": [...]} operator applied to sub-expressions

Operators (all evaluated in signed 64-bit integers; comparisons and logic give 0 or 1):
    add sub mul (2 args)
    floordiv floormod   (rounding toward -inf, Python semantics; divisor never 0 in plans)
    truncdiv truncmod   (C semantics)
    min max             (2 args)
    shl shr             (arithmetic shifts)
    eq ne lt le gt ge   (2 args -> 0/1)
    and or (2 args), not (1 arg)   (logical, operands are 0/nonzero)
    select              (3 args: cond, then, else)
Casts between integer types and from bool are dropped (values are assumed to fit).
"""
from __future__ import annotations

import tvm
from tvm.sym.analyzer import Analyzer
from tvm import tirx


class ExprError(Exception):
    pass


_BIN = {
    tirx.Add: "add",
    tirx.Sub: "sub",
    tirx.Mul: "mul",
    tirx.FloorDiv: "floordiv",
    tirx.FloorMod: "floormod",
    tirx.Div: "truncdiv",
    tirx.Mod: "truncmod",
    tirx.Min: "min",
    tirx.Max: "max",
    tirx.LShift: "shl",
    tirx.RShift: "shr",
    tirx.EQ: "eq",
    tirx.NE: "ne",
    tirx.LT: "lt",
    tirx.LE: "le",
    tirx.GT: "gt",
    tirx.GE: "ge",
    tirx.And: "and",
    tirx.Or: "or",
}


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
    for cls, name in _BIN.items():
        if isinstance(e, cls):
            return {"op": name, "args": [to_json(e.a, var_names), to_json(e.b, var_names)]}
    if isinstance(e, tirx.Not):
        return {"op": "not", "args": [to_json(e.a, var_names)]}
    if isinstance(e, tirx.Select):
        return {
            "op": "select",
            "args": [
                to_json(e.condition, var_names),
                to_json(e.true_value, var_names),
                to_json(e.false_value, var_names),
            ],
        }
    if isinstance(e, tirx.Call) and hasattr(e.op, "name") and e.op.name == "tirx.if_then_else":
        return {"op": "select", "args": [to_json(a, var_names) for a in e.args]}
    raise ExprError(f"unsupported expression node {type(e).__name__}: {e}")


def _floordiv(a, b):
    return a // b


def _truncdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def evaluate(expr: dict, env: dict) -> int:
    """Reference evaluator (used by tests; Swift/C++ mirror this)."""
    if "int" in expr:
        return int(expr["int"])
    if "sym" in expr:
        return int(env[expr["sym"]])
    op = expr["op"]
    a = [evaluate(x, env) for x in expr["args"]]
    if op == "add":
        return a[0] + a[1]
    if op == "sub":
        return a[0] - a[1]
    if op == "mul":
        return a[0] * a[1]
    if op == "floordiv":
        return a[0] // a[1]
    if op == "floormod":
        return a[0] % a[1]
    if op == "truncdiv":
        return _truncdiv(a[0], a[1])
    if op == "truncmod":
        return a[0] - _truncdiv(a[0], a[1]) * a[1]
    if op == "min":
        return min(a)
    if op == "max":
        return max(a)
    if op == "shl":
        return a[0] << a[1]
    if op == "shr":
        return a[0] >> a[1]
    if op == "eq":
        return int(a[0] == a[1])
    if op == "ne":
        return int(a[0] != a[1])
    if op == "lt":
        return int(a[0] < a[1])
    if op == "le":
        return int(a[0] <= a[1])
    if op == "gt":
        return int(a[0] > a[1])
    if op == "ge":
        return int(a[0] >= a[1])
    if op == "and":
        return int(bool(a[0]) and bool(a[1]))
    if op == "or":
        return int(bool(a[0]) or bool(a[1]))
    if op == "not":
        return int(not a[0])
    if op == "select":
        return a[1] if a[0] else a[2]
    raise ValueError(f"unknown op {op}")


def to_text(expr: dict) -> str:
    """Human-readable infix rendering (informational only)."""
    if "int" in expr:
        return str(expr["int"])
    if "sym" in expr:
        return expr["sym"]
    op = expr["op"]
    a = [to_text(x) for x in expr["args"]]
    infix = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "floormod": "%"}
    if op in infix:
        return f"({a[0]} {infix[op]} {a[1]})"
    return f"{op}({', '.join(a)})"


ANALYZER = None


def simplify(e):
    global ANALYZER
    if ANALYZER is None:
        ANALYZER = Analyzer()
    return ANALYZER.simplify(e)
