"""TPAT benchmark suite: writes one small one-node ONNX model per case into bench/models/ and the
case list bench/cases.json (model file, op, --ops selector, shapes, minimal-traffic formula).

Usage: python bench/suite.py [--out-dir bench/models] [--cases bench/cases.json]

Data, indices, updates, scales and biases are graph INPUTS (so the models stay a few hundred
bytes); only what an op needs as a constant is an initializer: TopK's K, CumSum's axis, OneHot's
depth and values, Resize's scales, the Reduce* axes, DFT's axis. The node is named after the case
(`tpat plan bench/models/<id>.onnx --node <id>`). An op's cases are a table of variants (rows made by
`_row`: only what differs from case to case), turned into cases by `_variants`; a one-off case calls
`Suite.case` itself. New parts go at the end of `build_suite`'s list.

Minimal traffic ("code" in cases.json) is a Python expression over the plugin's canonical tensors:
in0, in1, ... are the node's non-constant inputs in node order, out0, out1, ... its outputs;
B(t) = bytes of tensor t (elements * element size), N(t) = its element count,
S(t) = its shape (a tuple). `traffic_bytes(code, inputs, outputs)` (python/tpat_bridge/tools/bench/cases.py)
evaluates it, here and in the bench.

Each case also says which variant it is, whether it is memory-bound ("bound": "memory", the copy
bandwidth target applies) or why not ("bound_why"), small input shapes ("check_shapes") at which
tests/python/test_bench.py checks its PyTorch baseline against ONNX Runtime, and, for ops whose
lowering has not landed, "requires" (the bench then reports it as not planned and times PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
IR_VERSION = 9  # onnxruntime >= 1.16 and onnx >= 1.15 read it

DTYPES = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "bfloat16": TP.BFLOAT16, "int64": TP.INT64, "bool": TP.BOOL}
import sys  # noqa: E402

sys.path.insert(0, str(ROOT / "python"))
from tpat_bridge.tools.bench import traffic_bytes  # noqa: E402,F401  the formula evaluator bench uses

# --------------------------------------------------------------------------------------------
# building one case
# --------------------------------------------------------------------------------------------

# Memory-bound words, reused: a case is "memory" when its minimal traffic is over ~32 MB and
# streamed, so the copy-bandwidth target (85 %) applies; otherwise the case says why not.
LATENCY = "latency", "moves a few MB or less: launch and tail effects dominate, no copy-bandwidth target"
GATHER = (
    "gather",
    "reads scattered elements or samples: each one pulls a whole 32-byte sector, the formula counts only the bytes used",
)
COMPUTE = "compute", "the work per byte (sorting, selection, transforms) bounds it, not the traffic"
ONCE = "reads the input once, writes the output once", "B(in0) + B(out0)"
EVERY = "every input and output once"


def _vi(name, dtype, shape):
    dims = [d if isinstance(d, str) else int(d) for d in shape] if shape is not None else None
    return helper.make_tensor_value_info(name, DTYPES[dtype], dims)


def _const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(case, node, inputs, outputs, inits=(), opset=18):
    """A one-node model; outputs: [(name, dtype, shape or None)], None = inferred by ONNX."""
    graph = helper.make_graph(
        [node],
        f"tpat_bench_{case}",
        [_vi(*i) for i in inputs],
        [_vi(n, d, s if s is not None else None) for n, d, s in outputs],
        initializer=list(inits),
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tpat-bench-suite")
    m.ir_version = IR_VERSION
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    for o, io in zip(m.graph.output, inferred.graph.output):
        if not o.type.tensor_type.HasField("shape"):
            o.type.tensor_type.shape.CopyFrom(io.type.tensor_type.shape)
    onnx.checker.check_model(m, full_check=True)
    return m


def _dim(d):
    return d.dim_value if d.HasField("dim_value") else d.dim_param or "?"


def _case(id, op, variant, model, words, code, bound=None, check=None, requires=None, notes=""):
    """One cases.json entry; inputs/outputs (canonical order) are read back from the model."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    node = g.node[0]
    types = {vi.name: vi for vi in list(g.input) + list(g.output)}
    name_of = {v: k for k, v in DTYPES.items()}

    def desc(name, canon):
        tt = types[name].type.tensor_type
        return {
            "name": name,
            "canonical": canon,
            "dtype": name_of[tt.elem_type],
            "shape": [_dim(d) for d in tt.shape.dim],
        }

    ins, k = [], 0
    consts = []
    for n in node.input:
        if not n:
            continue
        if n in inits:
            t = next(t for t in g.initializer if t.name == n)
            consts.append({"name": n, "value": numpy_helper.to_array(t).tolist()})
        else:
            ins.append(desc(n, f"in{k}"))
            k += 1
    outs = [desc(n, f"out{j}") for j, n in enumerate(node.output)]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {a: (v.decode() if isinstance(v, bytes) else v) for a, v in attrs.items()}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    entry = {
        "id": id,
        "model": f"{id}.onnx",
        "op": op,
        "select": op,
        "node": node.name,
        "variant": variant,
        "opset": opset,
        "attributes": attrs,
        "constants": consts,
        "inputs": ins,
        "outputs": outs,
        "traffic": {"words": words, "code": code},
    }
    static = all(isinstance(d, int) for t in ins + outs for d in t["shape"])
    entry["traffic"]["bytes"] = (
        traffic_bytes(code, [(i["shape"], i["dtype"]) for i in ins], [(o["shape"], o["dtype"]) for o in outs])
        if static
        else None
    )
    if not static:
        entry["traffic"]["words"] += " (the output size depends on the data: counted at run time)"
    entry["bound"], why = bound or ("memory", None)
    if why:
        entry["bound_why"] = why
    entry["check_shapes"] = {k: list(v) for k, v in (check or {}).items()}
    if requires:
        entry["requires"] = requires
    if notes:
        entry["notes"] = notes
    return entry


class Suite:
    """Collects (id, model, entry); `case` builds the node (named after the case) and its model."""

    def __init__(self):
        self.out = []

    def case(
        self,
        id,
        op,
        variant,
        inputs,
        outputs,
        *,
        inputs_order=None,
        attrs=None,
        inits=(),
        opset=18,
        traffic=ONCE,
        bound=None,
        check=None,
        requires=None,
        notes="",
    ):
        names = inputs_order if inputs_order is not None else [i[0] for i in inputs] + [t.name for t in inits]
        node = helper.make_node(op, names, [o[0] for o in outputs], name=id, **(attrs or {}))
        model = _model(id, node, inputs, [(o[0], o[1], o[2] if len(o) > 2 else None) for o in outputs], inits, opset)
        self.out.append(
            (id, model, _case(id, op, variant, model, traffic[0], traffic[1], bound, check, requires, notes))
        )


class Row(NamedTuple):
    """One row of an op's variant table (`_row`)."""

    id: str
    variant: str
    dtype: str  # the element type "T" stands for in the op's inputs and outputs
    shapes: tuple  # the op's input shapes, in input order
    check: tuple  # their small check shapes, same order
    kw: dict  # the Suite.case keywords of this row (attrs, inits, bound, traffic, notes, op, outs, ...)


def _row(id, variant, dtype, shapes, check, **kw):
    return Row(id, variant, dtype, shapes, check, kw)


def _variants(s, op, rows, *, ins, outs=(("y", "T"),), **common):
    """One case per row of an op's variant table. ins / outs: the op's inputs and outputs as
    (name, dtype[, shape]), "T" standing for the row's element type; `common`: the Suite.case
    keywords its rows share. A row's own keywords win over them (its own `op` or `outs` too)."""
    names = [n for n, _ in ins]
    for r in rows:
        kw = {**common, **r.kw}
        t = lambda d, r=r: r.dtype if d == "T" else d
        s.case(
            r.id,
            kw.pop("op", op),
            r.variant,
            [(n, t(d), shape) for (n, d), shape in zip(ins, r.shapes, strict=True)],
            [(n, t(d), *shape) for n, d, *shape in kw.pop("outs", outs)],
            check=dict(zip(names, r.check, strict=True)),
            **kw,
        )


def _i64(name, value):
    """An int64 constant input: a list makes a 1-D tensor, a number a 0-D one."""
    return _const(name, np.array(value, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# the cases, per op: a table of variants, the original case first
# --------------------------------------------------------------------------------------------

ROWS = "reads only the gathered rows (= output bytes) and the indices, writes the output", "B(out0) + B(in1) + B(out0)"
SCATTER = ("data read once and written once, plus indices and updates read once", "B(in0) + B(out0) + B(in1) + B(in2)")
PICKS = ("reads the picked elements and the indices, writes the output", "B(out0) + B(in1) + B(out0)")

GATHER_ND = [
    _row(
        "gathernd",
        "batch_dims=0, 3-tuples into a 4-D f32 table, 224-float rows",
        "float32",
        [(1, 128, 128, 224), (1, 600, 3)],
        [(2, 5, 6, 7), (2, 9, 3)],
        attrs={"batch_dims": 0},
        bound=LATENCY,
    ),
    _row(
        "gathernd_batch1",
        "batch_dims=1, 1-tuples: 2048 rows of 1 KB per batch",
        "float32",
        [(32, 4096, 256), (32, 2048, 1)],
        [(2, 7, 5), (2, 4, 1)],
        attrs={"batch_dims": 1},
    ),
    _row(
        "gathernd_scalars_fp16",
        "fp16, tuples as long as the rank: one scalar per tuple",
        "float16",
        [(4096, 4096), (1048576, 2)],
        [(6, 7), (9, 2)],
        bound=GATHER,
    ),
    _row(
        "gathernd_small_bf16",
        "bf16, small: 256 rows of 64",
        "bfloat16",
        [(64, 64, 64), (256, 2)],
        [(4, 5, 6), (3, 2)],
        bound=LATENCY,
    ),
    _row(
        "gathernd_batch2",
        "batch_dims=2, 1-tuples, fp16: 512 rows of 256 B per (batch, head)",
        "float16",
        [(8, 16, 1024, 128), (8, 16, 512, 1)],
        [(2, 3, 7, 5), (2, 3, 4, 1)],
        attrs={"batch_dims": 2},
    ),
]
GATHER_ = [
    _row(
        "gather_embedding_fp16",
        "axis 0, an fp16 embedding table of 32000 x 4096, 2048 tokens",
        "float16",
        [(32000, 4096), (4, 512)],
        [(9, 5), (2, 3)],
        attrs={"axis": 0},
    ),
    _row(
        "gather_axis1",
        "axis 1 of a 3-D f32 tensor, 512 of 1024 slices",
        "float32",
        [(64, 1024, 128), (512,)],
        [(2, 7, 3), (5,)],
        attrs={"axis": 1},
    ),
    _row(
        "gather_2d_indices",
        "axis 1, 2-D indices (32 x 32) into 2048 slices of 1 KB, f32",
        "float32",
        [(16, 2048, 256), (32, 32)],
        [(2, 7, 3), (2, 3)],
        attrs={"axis": 1},
    ),
]
GATHER_ELEMENTS = [
    _row(
        "gatherelements",
        "axis 1, f32 (4096, 4096), 512 picks per row",
        "float32",
        [(4096, 4096), (4096, 512)],
        [(3, 8), (3, 5)],
        attrs={"axis": 1},
        bound=GATHER,
    ),
    _row(
        "gatherelements_axis0_small",
        "axis 0 (leading), small f32",
        "float32",
        [(64, 256), (32, 256)],
        [(6, 4), (3, 4)],
        attrs={"axis": 0},
        bound=LATENCY,
    ),
]


def _gathers(s):
    io = {"ins": [("data", "T"), ("indices", "int64")]}
    _variants(s, "GatherND", GATHER_ND, traffic=ROWS, **io)
    _variants(s, "Gather", GATHER_, traffic=ROWS, **io)
    _variants(s, "GatherElements", GATHER_ELEMENTS, traffic=PICKS, **io)


SCATTER_ND = [
    _row(
        "scatternd",
        "reduction=none, 3-tuples into (32,128,128,256) f32, 256-float rows",
        "float32",
        [(32, 128, 128, 256), (32, 600, 3), (32, 600, 256)],
        [(3, 4, 5, 6), (3, 7, 3), (3, 7, 6)],
        notes="indices unique (reduction=none)",
    ),
    _row(
        "scatternd_add",
        "reduction=add, 3-tuples into (32,128,128,256) f32, 256-float rows",
        "float32",
        [(32, 128, 128, 256), (32, 600, 3), (32, 600, 256)],
        [(3, 4, 5, 6), (3, 7, 3), (3, 7, 6)],
        attrs={"reduction": "add"},
        traffic=(SCATTER[0] + " (the add's read of the target rows is counted inside the data read)", SCATTER[1]),
        notes="indices with duplicates on purpose",
    ),
    _row(
        "scatternd_rows",
        "whole rows: 1-tuples replace 4096 of 16384 rows of 4 KB",
        "float32",
        [(16384, 1024), (4096, 1), (4096, 1024)],
        [(6, 5), (3, 1), (3, 5)],
        notes="indices unique",
    ),
    _row(
        "scatternd_max_fp16",
        "reduction=max, fp16, 2-tuples, 256-element rows",
        "float16",
        [(256, 256, 256), (16384, 2), (16384, 256)],
        [(3, 4, 5), (6, 2), (6, 5)],
        attrs={"reduction": "max"},
        notes="indices with duplicates on purpose",
    ),
]
SCATTER_ELEMENTS = [
    _row(
        "scatterelements_max",
        "axis 1, reduction=max, f32 (256, 4096)",
        "float32",
        [(256, 4096), (256, 1024), (256, 1024)],
        [(5, 12), (5, 7), (5, 7)],
        attrs={"axis": 1, "reduction": "max"},
        bound=LATENCY,
        notes="indices with duplicates along the axis on purpose",
    ),
    _row(
        "scatterelements_add_axis0",
        "axis 0 (leading), reduction=add: GNN sum aggregation, 250000 edges into 50000 nodes x 64",
        "float32",
        [(50000, 64), (250000, 64), (250000, 64)],
        [(6, 3), (9, 3), (9, 3)],
        attrs={"axis": 0, "reduction": "add"},
    ),
    _row(
        "scatterelements_graphsage",
        "the real-model suite's GraphSAGE aggregation: axis 0, add, 64 edges into 24 nodes x 8",
        "float32",
        [(24, 8), (64, 8), (64, 8)],
        [(5, 2), (7, 2), (7, 2)],
        attrs={"axis": 0, "reduction": "add"},
        bound=LATENCY,
    ),
    _row(
        "scatterelements_none_fp16",
        "axis -1, no reduction, fp16 (4096, 4096)",
        "float16",
        [(4096, 4096), (4096, 256), (4096, 256)],
        [(3, 8), (3, 4), (3, 4)],
        attrs={"axis": -1},
        notes="indices unique along the axis",
    ),
]


def _scatters(s):
    io = {"ins": [("data", "T"), ("indices", "int64"), ("updates", "T")]}
    _variants(s, "ScatterND", SCATTER_ND, traffic=SCATTER, **io)
    _variants(s, "ScatterElements", SCATTER_ELEMENTS, traffic=SCATTER, **io)


def _onehot_consts(depth, dtype):
    return [_i64("depth", depth), _const("values", np.array([0.0, 1.0], dtype=dtype))]


ONE_HOT = [
    _row(
        "onehot",
        "depth 16384, 16 indices, f32",
        "float32",
        [(16,)],
        [(5,)],
        attrs={"axis": -1},
        inits=_onehot_consts(16384, np.float32),
        bound=LATENCY,
    ),
    _row(
        "onehot_vocab",
        "vocabulary-size depth (GPT-2's 50257), 1024 tokens, f32",
        "float32",
        [(4, 256)],
        [(2, 3)],
        attrs={"axis": -1},
        inits=_onehot_consts(50257, np.float32),
    ),
    _row(
        "onehot_axis0_fp16",
        "axis 0 (leading), depth 1000, fp16 output, 32768 indices",
        "float16",
        [(32768,)],
        [(5,)],
        attrs={"axis": 0},
        inits=_onehot_consts(1000, np.float16),
    ),
]


def _onehots(s):
    traffic = ("reads the indices, writes the output once", "B(in0) + B(out0)")
    _variants(s, "OneHot", ONE_HOT, ins=[("indices", "int64")], traffic=traffic)


def _scales(*v):
    return [_const("scales", np.array(v, dtype=np.float32))]


RESIZE = {"ins": [("x", "T")], "inputs_order": ["x", "", "scales"]}
RESIZE_ = [
    _row(
        "resize",
        "linear x4, half_pixel, f32 NCHW",
        "float32",
        [(32, 32, 44, 50)],
        [(2, 3, 5, 7)],
        attrs={"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
        inits=_scales(1, 1, 4, 4),
        traffic=("reads the input once, writes the (16x larger) output once", "B(in0) + B(out0)"),
    ),
    _row(
        "resize_align_corners_fp16",
        "linear x2, align_corners, fp16",
        "float16",
        [(16, 64, 128, 128)],
        [(1, 2, 3, 5)],
        attrs={"mode": "linear", "coordinate_transformation_mode": "align_corners"},
        inits=_scales(1, 1, 2, 2),
    ),
    _row(
        "resize_cubic",
        "cubic x2 (a = -0.75), half_pixel, f32",
        "float32",
        [(8, 32, 128, 128)],
        [(1, 2, 4, 5)],
        attrs={"mode": "cubic", "coordinate_transformation_mode": "half_pixel"},
        inits=_scales(1, 1, 2, 2),
    ),
    _row(
        "resize_down_bf16",
        "linear x0.5 (downsampling, no antialias), half_pixel, bf16",
        "bfloat16",
        [(16, 32, 256, 256)],
        [(1, 2, 6, 8)],
        attrs={"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
        inits=_scales(1, 1, 0.5, 0.5),
    ),
]
GRID_SAMPLE = [
    _row(
        "gridsample",
        "5-D trilinear, zeros, align_corners=0 (opset 20)",
        "float32",
        [(2, 32, 16, 64, 64), (2, 16, 64, 64, 3)],
        [(2, 3, 4, 5, 6), (2, 3, 4, 5, 3)],
        attrs={"mode": "linear", "padding_mode": "zeros", "align_corners": 0},
        traffic=(
            "reads the input volume once (the grid covers it), the grid once, writes the output once",
            "B(in0) + B(in1) + B(out0)",
        ),
    ),
    _row(
        "gridsample_border_align",
        "4-D bilinear, border padding, align_corners=1",
        "float32",
        [(8, 64, 128, 128), (8, 128, 128, 2)],
        [(2, 3, 4, 5), (2, 3, 4, 2)],
        attrs={"mode": "linear", "padding_mode": "border", "align_corners": 1},
    ),
    _row(
        "gridsample_nearest_reflection",
        "4-D nearest, reflection padding, small",
        "float32",
        [(2, 16, 32, 32), (2, 48, 48, 2)],
        [(1, 2, 4, 5), (1, 3, 4, 2)],
        attrs={"mode": "nearest", "padding_mode": "reflection", "align_corners": 0},
        bound=LATENCY,
    ),
    _row(
        "gridsample_cubic",
        "4-D bicubic, zeros, align_corners=0",
        "float32",
        [(4, 32, 64, 64), (4, 64, 64, 2)],
        [(1, 2, 5, 6), (1, 3, 4, 2)],
        attrs={"mode": "cubic", "padding_mode": "zeros", "align_corners": 0},
    ),
]


def _resamplers(s):
    _variants(s, "Resize", RESIZE_, **RESIZE)
    grid = ("reads the input once, the grid once, writes the output once", "B(in0) + B(in1) + B(out0)")
    _variants(s, "GridSample", GRID_SAMPLE, ins=[("x", "T"), ("grid", "T")], opset=20, traffic=grid, bound=GATHER)


def _axes(*a):
    return [_i64("axes", a)]


# the reduce lowering takes all ten Reduce* ops: the table's rows name theirs
REDUCE = [
    _row(
        "reducemax",
        "axis 1 (middle), keepdims, f32 (256, 82, 128)",
        "float32",
        [(256, 82, 128)],
        [(4, 9, 6)],
        attrs={"keepdims": 1},
        inits=_axes(1),
        bound=LATENCY,
    ),
    _row(
        "reducemax_last_fp16",
        "axis -1 (last), keepdims=0, fp16 (8192, 4096)",
        "float16",
        [(8192, 4096)],
        [(3, 7)],
        attrs={"keepdims": 0},
        inits=_axes(-1),
    ),
    _row(
        "reducemax_leading",
        "axis 0 (leading), keepdims, f32 (4096, 8192)",
        "float32",
        [(4096, 8192)],
        [(5, 6)],
        attrs={"keepdims": 1},
        inits=_axes(0),
    ),
    _row(
        "reducemax_two_axes",
        "axes [1, 2] (all but the batch), keepdims, f32 (64, 512, 512)",
        "float32",
        [(64, 512, 512)],
        [(2, 3, 4)],
        attrs={"keepdims": 1},
        inits=_axes(1, 2),
    ),
    _row(
        "reducesum_middle_fp16",
        "axis 1 (middle), keepdims, fp16 (32, 2048, 512): column sums accumulated in float32",
        "float16",
        [(32, 2048, 512)],
        [(2, 5, 6)],
        op="ReduceSum",
        attrs={"keepdims": 1},
        inits=_axes(1),
    ),
    _row(
        "reducemean_last_bf16",
        "axis -1, keepdims, bf16 (16384, 4096): the mean of a decomposed LayerNorm",
        "bfloat16",
        [(16384, 4096)],
        [(3, 8)],
        op="ReduceMean",
        attrs={"keepdims": 1},
        inits=_axes(-1),
    ),
    _row(
        "reducel2_last",
        "axis -1, keepdims, f32 (4096, 4096): row norms",
        "float32",
        [(4096, 4096)],
        [(3, 7)],
        op="ReduceL2",
        attrs={"keepdims": 1},
        inits=_axes(-1),
    ),
    _row(
        "reducelogsumexp_vocab",
        "axis -1, keepdims=0, f32 (1024, 32000): log-partition over a LLaMA vocabulary",
        "float32",
        [(1024, 32000)],
        [(3, 9)],
        op="ReduceLogSumExp",
        attrs={"keepdims": 0},
        inits=_axes(-1),
    ),
    _row(
        "reducesumsquare_axes02",
        "axes [0, 2] (not adjacent), keepdims, f32 (128, 256, 512): two passes",
        "float32",
        [(128, 256, 512)],
        [(2, 3, 4)],
        op="ReduceSumSquare",
        attrs={"keepdims": 1},
        inits=_axes(0, 2),
    ),
    _row(
        "reducesum_small",
        "axis -1, keepdims=0, f32, small (32, 256)",
        "float32",
        [(32, 256)],
        [(3, 5)],
        op="ReduceSum",
        attrs={"keepdims": 0},
        inits=_axes(-1),
        bound=LATENCY,
    ),
]


def _reductions(s):
    _variants(s, "ReduceMax", REDUCE, ins=[("x", "T")])


def _k(n):
    return [_i64("k", [n])]


TOPK = [
    _row(
        "topk",
        "K=4096 of 65536 (1/16 of the row), last axis, largest",
        "float32",
        [(8, 65536)],
        [(2, 5000)],
        attrs={"axis": -1, "largest": 1, "sorted": 1},
        inits=_k(4096),
        bound=COMPUTE,
    ),
    _row(
        "topk_small_k",
        "K=8 of 1024, 16384 rows, largest",
        "float32",
        [(16384, 1024)],
        [(3, 20)],
        attrs={"axis": -1, "largest": 1, "sorted": 1},
        inits=_k(8),
    ),
    _row(
        "topk_k_eq_row",
        "K = row length (256): a full sort of every row, smallest first",
        "float32",
        [(32768, 256)],
        [(3, 256)],
        attrs={"axis": -1, "largest": 0, "sorted": 1},
        inits=_k(256),
        bound=COMPUTE,
    ),
    _row(
        "topk_axis0",
        "axis 0 (leading), K=16 of 4096, smallest",
        "float32",
        [(4096, 2048)],
        [(40, 5)],
        attrs={"axis": 0, "largest": 0, "sorted": 1},
        inits=_k(16),
        bound=COMPUTE,
    ),
    _row(
        "topk_k1_vocab_fp16",
        "K=1 (greedy decoding) over a 50257-word vocabulary, fp16, 512 rows, largest",
        "float16",
        [(512, 50257)],
        [(3, 70)],
        attrs={"axis": -1, "largest": 1, "sorted": 1},
        inits=_k(1),
    ),
]


def _selections(s):
    vi = ("reads the input once, writes values and indices once", "B(in0) + B(out0) + B(out1)")
    outs = [("values", "T"), ("indices", "int64")]
    _variants(s, "TopK", TOPK, ins=[("x", "T")], outs=outs, traffic=vi)


CUMSUM = [
    _row(
        "cumsum",
        "axis 1 (last), f32 (64, 16384)",
        "float32",
        [(64, 16384)],
        [(3, 50)],
        inits=[_i64("axis", 1)],
        bound=LATENCY,
    ),
    _row(
        "cumsum_leading",
        "axis 0 (leading), f32 (16384, 1024)",
        "float32",
        [(16384, 1024)],
        [(40, 3)],
        inits=[_i64("axis", 0)],
    ),
    _row(
        "cumsum_reverse_exclusive",
        "reverse=1, exclusive=1 over long rows, f32 (16, 1048576)",
        "float32",
        [(16, 1048576)],
        [(3, 70)],
        attrs={"reverse": 1, "exclusive": 1},
        inits=[_i64("axis", 1)],
    ),
    _row(
        "cumsum_fp16_short",
        "axis -1 (negative), fp16, short rows (262144, 128)",
        "float16",
        [(262144, 128)],
        [(5, 16)],
        inits=[_i64("axis", -1)],
    ),
    _row(
        "cumsum_bf16_middle",
        "axis 1 (middle) of a 3-D bf16 tensor (32, 4096, 256)",
        "bfloat16",
        [(32, 4096, 256)],
        [(2, 7, 3)],
        inits=[_i64("axis", 1)],
    ),
]


def _scans(s):
    _variants(s, "CumSum", CUMSUM, ins=[("x", "T")])


LAYER_NORM = [
    _row(
        "layernorm",
        "last axis, fp16 (8192, 1024)",
        "float16",
        [(8192, 1024), (1024,), (1024,)],
        [(6, 32), (32,), (32,)],
    ),
    _row(
        "layernorm_stats",
        "last axis, fp16, Mean and InvStdDev outputs used (training graphs)",
        "float16",
        [(8192, 1024), (1024,), (1024,)],
        [(6, 32), (32,), (32,)],
        outs=[("y", "T"), ("mean", "float32"), ("invstd", "float32")],
        traffic=(
            "reads x once, scale and bias once, writes y, mean and invstd once",
            "B(in0) + B(in1) + B(in2) + B(out0) + B(out1) + B(out2)",
        ),
    ),
    _row(
        "layernorm_axis1_f32",
        "axis 1 of a 3-D f32 tensor: normalizes 128 x 768 per row",
        "float32",
        [(256, 128, 768), (128, 768), (128, 768)],
        [(2, 3, 4), (3, 4), (3, 4)],
        attrs={"axis": 1, "epsilon": 1e-5},
    ),
    _row(
        "layernorm_small_bf16",
        "last axis, bf16, small (128 tokens x 768)",
        "bfloat16",
        [(128, 768), (768,), (768,)],
        [(4, 16), (16,), (16,)],
        bound=LATENCY,
    ),
]
RMS_NORM = [
    _row(
        "rmsnorm",
        "last axis, fp16 (8192, 4096), LLaMA-style decoders",
        "float16",
        [(8192, 4096), (4096,)],
        [(6, 40), (40,)],
    ),
    _row("rmsnorm_bf16", "last axis, bf16 (16384, 2048)", "bfloat16", [(16384, 2048), (2048,)], [(4, 24), (24,)]),
    _row(
        "rmsnorm_small_f32",
        "last axis, f32, small (32, 512)",
        "float32",
        [(32, 512), (512,)],
        [(3, 12), (12,)],
        bound=LATENCY,
    ),
]


def _norms(s):
    ln = (
        "reads x once, scale and bias once, writes y once (one pass; mean/variance stay on chip)",
        "B(in0) + B(in1) + B(in2) + B(out0)",
    )
    ins = [("x", "T"), ("scale", "T"), ("bias", "T")]
    _variants(s, "LayerNormalization", LAYER_NORM, ins=ins, attrs={"axis": -1, "epsilon": 1e-5}, traffic=ln)
    rms = ("reads x once, scale once, writes y once", "B(in0) + B(in1) + B(out0)")
    attrs = {"axis": -1, "epsilon": 1e-6}
    _variants(s, "RMSNormalization", RMS_NORM, ins=ins[:2], attrs=attrs, opset=23, traffic=rms)


def _axis(a):
    return [_i64("axis", a)]


DFT = [
    _row(
        "dft",
        "real input, onesided, 720 steps (Autoformer's auto-correlation window), 512 series",
        "float32",
        [(512, 720, 1)],
        [(3, 20, 1)],
        attrs={"onesided": 1},
        inits=_axis(1),
    ),
    _row(
        "dft_complex",
        "complex input, full spectrum, n = 1024 (a power of two)",
        "float32",
        [(256, 1024, 2)],
        [(2, 16, 2)],
        inits=_axis(1),
    ),
    _row(
        "dft_inverse",
        "inverse, complex, n = 96",
        "float32",
        [(128, 96, 2)],
        [(3, 12, 2)],
        attrs={"inverse": 1},
        inits=_axis(1),
    ),
    _row(
        "dft_autoformer",
        "the real-model suite's Autoformer rfft: (1, 2, 8, 16) along the last axis",
        "float32",
        [(1, 2, 8, 16, 1)],
        [(1, 2, 3, 10, 1)],
        attrs={"onesided": 1},
        inits=_axis(3),
        bound=LATENCY,
    ),
    _row(
        "dft_axis_columns",
        "complex, n = 256 along axis 1 of (32, 256, 64, 2): a non-last axis, 64 strided columns per batch",
        "float32",
        [(32, 256, 64, 2)],
        [(2, 16, 3, 2)],
        inits=_axis(1),
    ),
    _row(
        "dft_pad",
        "real, onesided, 1000 samples zero-padded to dft_length 1024, 256 series",
        "float32",
        [(256, 1000, 1)],
        [(2, 10, 1)],
        inputs_order=["x", "n", "axis"],
        attrs={"onesided": 1},
        inits=[_i64("n", 1024)] + _axis(1),
    ),
    _row(
        "dft_long",
        "real, onesided, n = 16384 (its 8192-point half-length FFT split over 2 blocks per series), 64 series",
        "float32",
        [(64, 16384, 1)],
        [(2, 16, 1)],
        attrs={"onesided": 1},
        inits=_axis(1),
    ),
    _row(
        "dft_fp16",
        "fp16 real, onesided, n = 1024, 1024 series (computed in fp32)",
        "float16",
        [(1024, 1024, 1)],
        [(2, 16, 1)],
        attrs={"onesided": 1},
        inits=_axis(1),
    ),
    _row(
        "dft_short_batch",
        "complex, n = 16, 65536 short transforms (several per thread block)",
        "float32",
        [(65536, 16, 2)],
        [(3, 16, 2)],
        inits=_axis(1),
    ),
    _row(
        "dft_prime",
        "complex, n = 1009 (a prime: Bluestein through a 2048-point FFT), 256 series",
        "float32",
        [(256, 1009, 2)],
        [(2, 13, 2)],
        inits=_axis(1),
    ),
]
GELU = [
    _row(
        "gelu",
        "erf form (approximate='none'), fp16 (8192, 4096)",
        "float16",
        [(8192, 4096)],
        [(5, 9)],
        attrs={"approximate": "none"},
    ),
    _row(
        "gelu_tanh_bf16",
        "tanh form, bf16 (8192, 4096)",
        "bfloat16",
        [(8192, 4096)],
        [(5, 9)],
        attrs={"approximate": "tanh"},
    ),
    _row(
        "gelu_small_f32",
        "erf form, f32, small (128, 768)",
        "float32",
        [(128, 768)],
        [(5, 9)],
        attrs={"approximate": "none"},
        bound=LATENCY,
    ),
]


def _transforms(s):
    x = [("x", "T")]
    _variants(s, "DFT", DFT, ins=x, inputs_order=["x", "", "axis"], opset=20, bound=COMPUTE)
    s.case(
        "stft",
        "STFT",
        "Whisper's log-mel front end: 30 s at 16 kHz, n_fft 400, hop 160, Hann window (an input), 8 signals",
        [("x", "float32", (8, 480000, 1)), ("w", "float32", (400,))],
        [("y", "float32")],
        inputs_order=["x", "step", "w", "flen"],
        attrs={"onesided": 1},  # explicit: ONNX's shape inference reads an absent onesided as 0
        inits=[_i64("step", 160), _i64("flen", 400)],
        opset=17,
        traffic=("reads the signal and window once, writes the output once", "B(in0) + B(in1) + B(out0)"),
        bound=COMPUTE,
        check={"x": (2, 1200, 1), "w": (400,)},
    )
    _variants(s, "Gelu", GELU, ins=x, opset=20)


def _data_dependent(s):
    # TPAT's own lowerings with a size-tensor output (lowerings/nonzero.py, compress.py, unique.py)
    s.case(
        "nonzero",
        "NonZero",
        "bool mask (4096, 4096), about half set",
        [("x", "bool", (4096, 4096))],
        [("y", "int64", (2, "n"))],
        traffic=ONCE,
        bound=("compute", "a count then a compaction: two passes over the input"),
        check={"x": (5, 7)},
    )
    s.case(
        "unique",
        "Unique",
        "sorted, flattened, int64 (1048576) with values in [-10, 10]",
        [("x", "int64", (1048576,))],
        [("y", "int64", ("n",))],
        attrs={"sorted": 1},
        traffic=ONCE,
        bound=COMPUTE,
        check={"x": (20,)},
    )
    s.case(
        "compress",
        "Compress",
        "axis 0, f32 (65536, 256) rows kept by a bool condition",
        [("data", "float32", (65536, 256)), ("condition", "bool", (65536,))],
        [("y", "float32", ("n", 256))],
        attrs={"axis": 0},
        traffic=("reads the kept rows and the condition, writes the output", "B(out0) + B(in1) + B(out0)"),
        check={"data": (6, 3), "condition": (6,)},
    )


COL2IM = [
    _row(
        "col2im",
        "3x3 blocks, stride 1, pads 1 (F.fold of a 3x3 unfold), f32 (8, 64 x 9, 64 x 64) -> (8, 64, 64, 64)",
        "float32",
        [(8, 64 * 9, 64 * 64)],
        [(2, 2 * 9, 64 * 64)],
        attrs={"pads": [1, 1, 1, 1]},
        inits=[_i64("image_shape", [64, 64]), _i64("block_shape", [3, 3])],
    ),
    _row(
        "col2im_patches",
        "non-overlapping 16x16 patches (stride 16: a ViT patch embedding undone), f32 (64, 3 x 256, 196) -> "
        "(64, 3, 224, 224)",
        "float32",
        [(64, 3 * 256, 196)],
        [(2, 3 * 256, 196)],
        attrs={"strides": [16, 16]},
        inits=[_i64("image_shape", [224, 224]), _i64("block_shape", [16, 16])],
    ),
]
RESIZE_ANTIALIAS = [
    _row(
        "resize_antialias",
        "linear x0.5 with antialias (exclude_outside=1, F.interpolate(antialias=True)'s semantics), f32 "
        "(16, 3, 512, 512)",
        "float32",
        [(16, 3, 512, 512)],
        [(1, 2, 12, 10)],
        attrs={"mode": "linear", "antialias": 1, "exclude_outside": 1},
        inits=_scales(1, 1, 0.5, 0.5),
    ),
    _row(
        "resize_antialias_cubic",
        "cubic x0.25 with antialias (a = -0.5, exclude_outside=1: PIL's and torch's bicubic), f32 (8, 3, 512, 512)",
        "float32",
        [(8, 3, 512, 512)],
        [(1, 2, 16, 12)],
        attrs={"mode": "cubic", "antialias": 1, "exclude_outside": 1, "cubic_coeff_a": -0.5},
        inits=_scales(1, 1, 0.25, 0.25),
        traffic=("reads the input once, writes the (16x smaller) output once", "B(in0) + B(out0)"),
    ),
]
CENTER_CROP_PAD = [
    _row(
        "centercroppad",
        "crop (64, 3, 256, 256) to 224 x 224 (image preprocessing), f32",
        "float32",
        [(64, 3, 256, 256)],
        [(2, 3, 9, 7)],
        attrs={"axes": [2, 3]},
        inits=[_i64("shape", [224, 224])],
    ),
    _row(
        "centercroppad_mixed_fp16",
        "crop and pad in one: (16, 200, 300, 64) -> (16, 256, 256, 64) HWC, fp16",
        "float16",
        [(16, 200, 300, 64)],
        [(2, 5, 9, 8)],
        attrs={"axes": [1, 2]},
        inits=[_i64("shape", [256, 256])],
    ),
]


def _new_ops(s):
    """Ops TVM 0.27 cannot import (Col2Im, CenterCropPad) and Resize antialias=1 (issue 14), appended
    at the end of the suite."""
    x = [("x", "T")]
    traffic = ("reads every column once, writes the image once", "B(in0) + B(out0)")
    _variants(s, "Col2Im", COL2IM, ins=x, inputs_order=["x", "image_shape", "block_shape"], traffic=traffic)
    _variants(s, "Resize", RESIZE_ANTIALIAS, **RESIZE)
    traffic = ("reads the kept window once, writes the output once", "B(out0) + B(out0)")
    _variants(s, "CenterCropPad", CENTER_CROP_PAD, ins=x, inputs_order=["x", "shape"], traffic=traffic)


def _losses(s):
    """The loss ops (TVM 0.27 has no importer), appended after _new_ops."""
    s.case(
        "softmax_cross_entropy",
        "SoftmaxCrossEntropyLoss",
        "mean over 4096 tokens of a 32000-word vocabulary (an LLM's training loss), ignore_index -100, f32",
        [("scores", "float32", (4096, 32000)), ("labels", "int64", (4096,))],
        [("loss", "float32", ())],
        attrs={"reduction": "mean", "ignore_index": -100},
        opset=13,
        traffic=("reads the scores once and the labels, writes a scalar", "B(in0) + B(in1)"),
        bound=COMPUTE,
        check={"scores": (6, 11), "labels": (6,)},
    )
    s.case(
        "nll_loss_weighted_none",
        "NegativeLogLikelihoodLoss",
        "reduction none, class weights, (64, 21, 128, 128) log-probabilities (segmentation), f32",
        [("x", "float32", (64, 21, 128, 128)), ("target", "int64", (64, 128, 128)), ("weight", "float32", (21,))],
        [("loss", "float32", (64, 128, 128))],
        attrs={"reduction": "none"},
        opset=13,
        traffic=(
            "reads one log-probability per pixel (a 32-byte sector each), the targets, writes the loss",
            "B(in1) + B(out0) * 2",
        ),
        bound=GATHER,
        check={"x": (2, 21, 3, 4), "target": (2, 3, 4), "weight": (21,)},
    )


def _attention(s):
    # TPAT's own Attention lowering (lowerings/attention.py, the fused kernel); appended last
    qkv = ("reads Q, K and V once, writes Y once", "B(in0) + B(in1) + B(in2) + B(out0)")
    s.case(
        "attention_gqa_prefill_fp16",
        "Attention",
        "GQA prefill, causal, fp16: 32 q heads / 8 kv heads, 1024 tokens, head 128 (opset 23, 4-D)",
        [
            ("q", "float16", (1, 32, 1024, 128)),
            ("k", "float16", (1, 8, 1024, 128)),
            ("v", "float16", (1, 8, 1024, 128)),
        ],
        [("y", "float16", (1, 32, 1024, 128))],
        attrs={"is_causal": 1},
        opset=23,
        traffic=qkv,
        bound=("compute", "O(L x T x head) multiply-adds: attention is compute-bound at this length"),
        check={"q": (1, 4, 5, 16), "k": (1, 2, 5, 16), "v": (1, 2, 5, 16)},
    )
    s.case(
        "attention_decode_past_fp16",
        "Attention",
        "decode step with a KV cache, fp16: batch 4, 32 q / 8 kv heads, 1 new token after 1023, present outputs",
        [
            ("q", "float16", (4, 32, 1, 128)),
            ("k", "float16", (4, 8, 1, 128)),
            ("v", "float16", (4, 8, 1, 128)),
            ("past_key", "float16", (4, 8, 1023, 128)),
            ("past_value", "float16", (4, 8, 1023, 128)),
        ],
        [
            ("y", "float16", (4, 32, 1, 128)),
            ("present_key", "float16", (4, 8, 1024, 128)),
            ("present_value", "float16", (4, 8, 1024, 128)),
        ],
        inputs_order=["q", "k", "v", "", "past_key", "past_value"],
        opset=23,
        traffic=(
            "reads Q, K, V and the past once, writes Y and the present once (the present is re-read: not counted)",
            "B(in0) + B(in1) + B(in2) + B(in3) + B(in4) + B(out0) + B(out1) + B(out2)",
        ),
        check={
            "q": (2, 4, 1, 16),
            "k": (2, 2, 1, 16),
            "v": (2, 2, 1, 16),
            "past_key": (2, 2, 5, 16),
            "past_value": (2, 2, 5, 16),
        },
    )


def _roi_align(s):
    # last: RoiAlign (lowerings/roialign.py), a Mask R-CNN box head on the P4-like level
    s.case(
        "roialign",
        "RoiAlign",
        "Mask R-CNN-like: 1000 boxes, 256 channels, 7x7, a 50x68 feature map (1/16), sampling_ratio 2, "
        "half_pixel, fp32",
        [("x", "float32", (1, 256, 50, 68)), ("rois", "float32", (1000, 4)), ("bi", "int64", (1000,))],
        [("y", "float32", (1000, 256, 7, 7))],
        attrs={
            "output_height": 7,
            "output_width": 7,
            "sampling_ratio": 2,
            "spatial_scale": 0.0625,
            "coordinate_transformation_mode": "half_pixel",
        },
        opset=16,
        traffic=(
            "reads the feature map, the boxes and their batch indices once, writes the output",
            "B(in0) + B(in1) + B(in2) + B(out0)",
        ),
        bound=GATHER,
        check={"x": (2, 3, 10, 12), "rois": (5, 4), "bi": (5,)},
    )


def _nms(s):
    # last: NonMaxSuppression (lowerings/nms.py), a detector's post-processing
    s.case(
        "nms",
        "NonMaxSuppression",
        "detector: 1 batch, 80 classes, 3000 boxes, at most 100 per class, IoU 0.5, score threshold 0.05",
        [("boxes", "float32", (1, 3000, 4)), ("scores", "float32", (1, 80, 3000))],
        [("selected", "int64", ("n", 3))],
        inits=[
            numpy_helper.from_array(np.array([100], np.int64), "max_out"),
            numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
            numpy_helper.from_array(np.array([0.05], np.float32), "score_thr"),
        ],
        opset=11,
        traffic=("reads the boxes and the scores once, writes the selected rows", "B(in0) + B(in1) + B(out0)"),
        bound=("compute", "a sort per class, an IoU bitmask and a greedy sweep"),
        check={"boxes": (1, 40, 4), "scores": (1, 3, 40)},
    )


def build_suite():
    """Returns [(case id, ModelProto, cases.json entry)]."""
    s = Suite()
    for part in (
        _gathers,
        _scatters,
        _onehots,
        _resamplers,
        _reductions,
        _selections,
        _scans,
        _norms,
        _transforms,
        _data_dependent,
        _new_ops,
        _losses,
        _attention,
        _roi_align,
        _nms,
    ):
        part(s)
    return s.out


def write_suite(out_dir=ROOT / "bench" / "models", cases_path=ROOT / "bench" / "cases.json"):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for id, model, entry in build_suite():
        onnx.save(model, str(out_dir / f"{id}.onnx"))
        entries.append(entry)
    doc = {
        "format": 1,
        "about": "TPAT benchmark suite (bench/suite.py). traffic.code is a Python expression over "
        "the plugin's canonical tensors in0.. (non-constant node inputs) and out0..; "
        "B(t) = bytes, N(t) = elements, S(t) = shape. traffic.bytes is its value for the "
        "case's shapes.",
        "models_dir": os.path.relpath(out_dir, Path(cases_path).parent),
        "cases": entries,
    }
    Path(cases_path).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "models"))
    ap.add_argument("--cases", default=str(ROOT / "bench" / "cases.json"))
    a = ap.parse_args(argv)
    doc = write_suite(a.out_dir, a.cases)
    for c in doc["cases"]:
        mb = f"{c['traffic']['bytes'] / 1e6:10.2f} MB" if c['traffic']['bytes'] is not None else "  (data-dependent)"
        print(
            f"{c['id']:30s} {c['op']:20s} {mb}  {c['model']}"
            + (f"  requires {c['requires']}" if c.get('requires') else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
