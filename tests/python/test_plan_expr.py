"""The one table of plan-expression operators (python/tpat_bridge/planning/expr.py `OPS`) and the one
dtype table (python/tpat_bridge/dtypes.py `DTYPES`): everything else in Python that knows either set
reads it from there, and what cannot import it (the schema, the plugin runtime's Python plugin that
ships without TVM) is checked against it here."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from tvm import tirx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "plugin-runtime" / "python"))

import tpat_trt_plugin as tp  # noqa: E402
from tpat_bridge import dtypes  # noqa: E402
from tpat_bridge.planning import expr, interp  # noqa: E402

NAMES = [op.name for op in expr.OPS]


def test_the_schema_lists_exactly_the_table():
    schema = json.loads((ROOT / "schemas/kernel-plan.schema.json").read_text())
    enum = next(v["enum"] for v in _walk(schema["$defs"]["Expr"]) if isinstance(v, dict) and "enum" in v)
    assert sorted(enum) == sorted(NAMES)


def _walk(o):
    yield o
    if isinstance(o, dict):
        for v in o.values():
            yield from _walk(v)
    elif isinstance(o, list):
        for v in o:
            yield from _walk(v)


def test_names_arity_and_tir_classes_are_unique():
    assert len(set(NAMES)) == len(NAMES) == 21
    assert len(expr.BY_TIR) == len(expr.OPS)
    for op in expr.OPS:
        assert op.arity == len(op.fields)


VALUES = [-7, -2, -1, 0, 1, 2, 3, 7]


def _cases(op):
    for args in itertools.product(VALUES, repeat=op.arity):
        if op.name in ("floordiv", "floormod", "truncdiv", "truncmod") and args[1] == 0:
            continue
        if op.name in ("shl", "shr") and not 0 <= args[1] < 8:
            continue
        yield list(args)


@pytest.mark.parametrize("name", NAMES)
def test_reference_semantics(name):
    op = expr.BY_NAME[name]
    c_like = {
        "truncdiv": lambda a: int(a[0] / a[1]),
        "truncmod": lambda a: int(np.fmod(a[0], a[1])),
        "floordiv": lambda a: int(np.floor_divide(a[0], a[1])),
        "floormod": lambda a: int(np.mod(a[0], a[1])),
    }
    for args in _cases(op):
        got = expr.evaluate({"op": name, "args": [{"int": a} for a in args]}, {})
        assert got == op.eval(args)
        if name in c_like:
            assert got == c_like[name](args), (name, args)


@pytest.mark.parametrize("name", NAMES)
def test_the_plugin_runtime_folds_like_the_table(name):
    """plugin-runtime/python/tpat_trt_plugin.py ships into OUT without TVM, so it keeps its own
    folding table: the same operators, the same values."""
    assert set(tp._FOLD) == set(NAMES)
    op = expr.BY_NAME[name]
    for args in _cases(op):
        assert tp._FOLD[name](args) == op.eval(args), (name, args)


@pytest.mark.parametrize("name", NAMES)
def test_tir_nodes_serialize_and_substitute_through_the_table(name):
    op = expr.BY_NAME[name]
    n = tirx.Var("n", "int64")
    args = [n, tirx.IntImm("int64", 3), tirx.IntImm("int64", 5)][: op.arity]
    if name in ("and", "or", "not"):
        args = [a > 1 for a in args]  # boolean operands
    if name == "select":
        args = [n > 1] + args[1:]
    node = op.tir(*args)
    assert expr.op_of(node) is op
    js = expr.to_json(node, {n: "n"})
    assert js["op"] == name and len(js["args"]) == op.arity
    # The host-IR interpreter substitutes every operator of the table
    assert interp._handler(interp._SUBST, node) is not None


def test_dtype_table_matches_onnx_and_numpy():
    names = {"float32": "FLOAT", "float64": "DOUBLE"}
    for d in dtypes.DTYPES.values():
        assert getattr(onnx.TensorProto, names.get(d.name, d.name.upper())) == d.onnx, d
        assert np.dtype(d.numpy).itemsize == d.size, d
        assert dtypes.from_onnx(d.onnx) == d.name
    assert dtypes.from_onnx(onnx.TensorProto.STRING) is None
    assert dtypes.sizes(*dtypes.FLOATS) == {"float32": 4, "float16": 2, "bfloat16": 2}
