#!/usr/bin/env python3
"""Builds the selection fixtures (issue 13) into tests/fixtures/models/ (deterministic, overwriting):

select_shape_feed.onnx   nodes whose outputs reach shape inputs: a CumSum -> Gather -> Range chain and an
                         unsupported BitwiseAnd computing a Reshape's shape (both blocked); an unsupported
                         BitwiseXor on data (a real candidate); a Shape -> Reshape chain (Shape is not blocked)
select_sequence.onnx     SplitToSequence + SequenceAt at constant positions (non-tensor nodes)
select_sequence_keepdims.onnx  the same without `split`, keepdims=0, a negative position and a repeated read
select_subgraph.onnx     an If whose branches hold an unsupported BitwiseAnd on an outer-scope tensor and a TopK
                         whose K is an outer initializer
select_body_convert.onnx nodes to convert inside bodies, reading outer-scope tensors: an If whose then-branch holds
                         a ScatterND with reduction=add (else-branch: a longer Concat, so the If's output has an
                         unknown first dim), a ScatterND with reduction=mul downstream of the If, and a Loop whose
                         body holds a TopK with K=4096 (an outer initializer) on an outer graph input
select_checker.onnx      a model the ONNX checker rejects (unknown attribute on a Relu); inspect goes on
select_trt11.onnx        ops TensorRT 11 imports but the 10.x rules reject: RMSNormalization, CumSum with a
                         computed axis, TopK sorted=0 (10.x: imported by the importer), 1-D MaxPool
select_if_ranks.onnx     an If whose branches give different ranks (then: Unsqueeze to 3-D, else: 2-D), a Cast and an
                         unsupported BitwiseNot after it (unknown rank: blocked) summed to a scalar, and a BitwiseNot on the If's
                         input (known rank: a real candidate)
select_if_fold_scatter.onnx  torch-geometric GAT's pattern: Ifs on Equal(Size(Shape(x)), 0) (rank 0?) whose branches
                         give different ranks, a ScatterElements(add) with updates smaller than the data reading the
                         first If's output; `generate` folds both Ifs (else branches) and converts the ScatterElements
select_if_fold_nonzero.onnx  an If on the same static condition whose else branch holds a NonZero: folded, the NonZero
                         becomes a plugin in the top-level graph
select_probe.onnx        for the whole-model probe: Relu, NonZero (TensorRT-RTX rejects), Col2Im (rejected),
                         nodes after both
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"


def model(nodes, inputs, outputs, inits=(), opset=20, check=True):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="tpat-fixtures")
    m.ir_version = 10
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m


def vi(name, t, shape):
    return h.make_tensor_value_info(name, t, shape)


def shape_feed():
    nodes = [
        h.make_node("CumSum", ["lengths", "axis0"], ["ends"], name="cumsum_ends"),
        h.make_node("Gather", ["ends", "last"], ["total"], name="gather_total", axis=0),
        h.make_node("Range", ["zero", "total", "one"], ["positions"], name="range_positions"),
        h.make_node("BitwiseAnd", ["dims", "mask"], ["dims_masked"], name="band_shape"),
        h.make_node("Reshape", ["x", "dims_masked"], ["x_reshaped"], name="reshape_x"),
        h.make_node("BitwiseXor", ["codes", "key"], ["codes_x"], name="bxor_data"),
        h.make_node("Shape", ["x"], ["x_shape"], name="shape_x"),
        h.make_node("Relu", ["x"], ["x_relu"], name="relu_x"),
        h.make_node("Reshape", ["x_relu", "x_shape"], ["x_again"], name="reshape_again"),
    ]
    inits = [
        nh.from_array(np.array(0, np.int64), "axis0"),
        nh.from_array(np.array(2, np.int64), "last"),
        nh.from_array(np.array(0, np.int64), "zero"),
        nh.from_array(np.array(1, np.int64), "one"),
        nh.from_array(np.array([-1, -1], np.int64), "mask"),
        nh.from_array(np.array([7, 7, 7, 7], np.int32), "key"),
    ]
    return model(
        nodes,
        [vi("lengths", T.INT64, [3]), vi("dims", T.INT64, [2]), vi("x", T.FLOAT, [4, 6]), vi("codes", T.INT32, [4])],
        [
            vi("positions", T.INT64, ["n"]),
            vi("x_reshaped", T.FLOAT, ["r0", "r1"]),
            vi("codes_x", T.INT32, [4]),
            vi("x_again", T.FLOAT, [4, 6]),
        ],
        inits,
        opset=18,
    )


def sequence():
    nodes = [
        h.make_node("SplitToSequence", ["x", "sizes"], ["parts"], name="split_seq", axis=0),
        h.make_node("SequenceAt", ["parts", "p0"], ["first"], name="seq_at_0"),
        h.make_node("SequenceAt", ["parts", "p1"], ["second"], name="seq_at_1"),
        h.make_node("Relu", ["second"], ["second_relu"], name="relu_second"),
    ]
    inits = [
        nh.from_array(np.array([2, 4], np.int64), "sizes"),
        nh.from_array(np.array(0, np.int64), "p0"),
        nh.from_array(np.array(1, np.int64), "p1"),
    ]
    return model(
        nodes, [vi("x", T.FLOAT, [6, 3])], [vi("first", T.FLOAT, [2, 3]), vi("second_relu", T.FLOAT, [4, 3])], inits
    )


def sequence_keepdims():
    nodes = [
        h.make_node("SplitToSequence", ["x"], ["cols"], name="split_cols", axis=1, keepdims=0),
        h.make_node("SequenceAt", ["cols", "last"], ["col_last"], name="at_last"),
        h.make_node("SequenceAt", ["cols", "p0"], ["col0"], name="at_0"),
        h.make_node("SequenceAt", ["cols", "p0"], ["col0_again"], name="at_0_again"),
    ]
    inits = [nh.from_array(np.array(-1, np.int64), "last"), nh.from_array(np.array(0, np.int64), "p0")]
    return model(
        nodes,
        [vi("x", T.FLOAT, [3, 4])],
        [vi("col_last", T.FLOAT, [3]), vi("col0", T.FLOAT, [3]), vi("col0_again", T.FLOAT, [3])],
        inits,
    )


def subgraph():
    # An If whose then-branch holds an unsupported BitwiseAnd on an outer-scope tensor and a TopK
    # whose K is an outer initializer (constant across scopes); the else-branch a plain Relu.
    then_g = h.make_graph(
        [
            h.make_node("BitwiseAnd", ["codes", "mask"], ["masked"], name="band_inner"),
            h.make_node("Cast", ["masked"], ["then_out"], name="cast_inner", to=T.FLOAT),
        ],
        "then_branch",
        [],
        [vi("then_out", T.FLOAT, [8])],
    )
    else_g = h.make_graph(
        [
            h.make_node("TopK", ["scores", "k"], ["top", "top_i"], name="topk_inner"),
            h.make_node("Relu", ["top"], ["else_out"], name="relu_inner"),
        ],
        "else_branch",
        [],
        [vi("else_out", T.FLOAT, [8])],
    )
    nodes = [h.make_node("If", ["flag"], ["y"], name="if_node", then_branch=then_g, else_branch=else_g)]
    inits = [nh.from_array(np.array([3] * 8, np.int32), "mask"), nh.from_array(np.array([8], np.int64), "k")]
    return model(
        nodes,
        [vi("flag", T.BOOL, []), vi("codes", T.INT32, [8]), vi("scores", T.FLOAT, [16])],
        [vi("y", T.FLOAT, [8])],
        inits,
    )


def body_convert():
    then_g = h.make_graph(
        [h.make_node("ScatterND", ["data", "idx", "upd"], ["then_out"], name="scatter_add", reduction="add")],
        "then_branch",
        [],
        [vi("then_out", T.FLOAT, [8, 4])],
    )
    else_g = h.make_graph(
        [h.make_node("Concat", ["data", "data"], ["else_out"], name="twice", axis=0)],
        "else_branch",
        [],
        [vi("else_out", T.FLOAT, [16, 4])],
    )
    body = h.make_graph(
        [
            h.make_node("TopK", ["scores", "k"], ["vals", "inds"], name="topk_big"),
            h.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
        ],
        "loop_body",
        [vi("iter", T.INT64, []), vi("cond_in", T.BOOL, [])],
        [vi("cond_out", T.BOOL, []), vi("vals", T.FLOAT, [4096])],
    )
    nodes = [
        h.make_node("If", ["flag"], ["y"], name="if_node", then_branch=then_g, else_branch=else_g),
        h.make_node("ScatterND", ["y", "idx", "upd"], ["z"], name="scatter_after", reduction="mul"),
        h.make_node("Loop", ["trips", "go"], ["loop_vals"], name="loop", body=body),
    ]
    inits = [
        nh.from_array(np.array([[1], [5]], np.int64), "idx"),
        nh.from_array(np.array([4096], np.int64), "k"),
        nh.from_array(np.array(2, np.int64), "trips"),
        nh.from_array(np.array(True), "go"),
    ]
    return model(
        nodes,
        [
            vi("flag", T.BOOL, []),
            vi("data", T.FLOAT, [8, 4]),
            vi("upd", T.FLOAT, [2, 4]),
            vi("scores", T.FLOAT, [4100]),
        ],
        [vi("z", T.FLOAT, ["n", 4]), vi("loop_vals", T.FLOAT, [2, 4096])],
        inits,
        opset=18,
    )


def checker_rejects():
    relu = h.make_node("Relu", ["x"], ["y"], name="relu_odd", not_an_attribute=3)
    return model(
        [relu, h.make_node("Col2Im", ["y", "img", "blk"], ["z"], name="col2im")],
        [vi("x", T.FLOAT, [1, 8, 16])],
        [vi("z", T.FLOAT, [1, 2, 8, 8])],
        [nh.from_array(np.array([8, 8], np.int64), "img"), nh.from_array(np.array([2, 2], np.int64), "blk")],
        check=False,
    )


def trt11():
    nodes = [
        h.make_node("RMSNormalization", ["x", "scale"], ["normed"], name="rms", axis=-1),
        h.make_node("ReduceMax", ["axis_src"], ["axis_dyn"], name="axis_max", keepdims=0),
        h.make_node("CumSum", ["normed", "axis_dyn"], ["summed"], name="cumsum_dyn_axis"),
        h.make_node("TopK", ["summed", "k"], ["vals", "idx"], name="topk_unsorted", axis=-1, sorted=0),
        h.make_node("MaxPool", ["seq"], ["pooled"], name="maxpool_1d", kernel_shape=[2], strides=[2]),
    ]
    inits = [nh.from_array(np.ones(8, np.float32), "scale"), nh.from_array(np.array([3], np.int64), "k")]
    return model(
        nodes,
        [vi("x", T.FLOAT, [2, 8]), vi("axis_src", T.INT64, [1]), vi("seq", T.FLOAT, [1, 4, 16])],
        [vi("vals", T.FLOAT, [2, 3]), vi("idx", T.INT64, [2, 3]), vi("pooled", T.FLOAT, [1, 4, 8])],
        inits,
        opset=23,
    )


def probe():
    nodes = [
        h.make_node("Relu", ["x"], ["a"], name="relu_in"),
        h.make_node("NonZero", ["a"], ["nz"], name="nonzero"),
        h.make_node("Relu", ["a"], ["b"], name="relu_mid"),
        h.make_node("Col2Im", ["b", "img", "blk"], ["c"], name="col2im"),
        h.make_node("Cast", ["nz"], ["nzf"], name="cast_nz", to=T.FLOAT),
        h.make_node("Relu", ["c"], ["d"], name="relu_out"),
    ]
    inits = [nh.from_array(np.array([4, 4], np.int64), "img"), nh.from_array(np.array([2, 2], np.int64), "blk")]
    return model(
        nodes,
        [vi("x", T.FLOAT, [1, 4, 8])],
        [vi("d", T.FLOAT, [1, 1, 4, 4]), vi("nzf", T.FLOAT, [3, "nnz"])],
        inits,
        opset=18,
    )


def if_ranks():
    then_g = h.make_graph(
        [h.make_node("Unsqueeze", ["codes", "axis0"], ["then_out"], name="lift")],
        "then_branch",
        [],
        [vi("then_out", T.INT32, [1, 2, 3])],
    )
    else_g = h.make_graph(
        [h.make_node("Identity", ["codes"], ["else_out"], name="keep")],
        "else_branch",
        [],
        [vi("else_out", T.INT32, [2, 3])],
    )
    nodes = [
        h.make_node("If", ["flag"], ["picked"], name="if_ranks", then_branch=then_g, else_branch=else_g),
        h.make_node("Cast", ["picked"], ["picked64"], name="cast_picked", to=T.INT64),
        h.make_node("BitwiseNot", ["picked64"], ["flipped"], name="bnot_after_if"),
        h.make_node("ReduceSum", ["flipped"], ["total"], name="sum_all", keepdims=0),
        h.make_node("BitwiseNot", ["codes"], ["codes_not"], name="bnot_codes"),
    ]
    inits = [nh.from_array(np.array([0], np.int64), "axis0")]
    return model(
        nodes,
        [vi("flag", T.BOOL, []), vi("codes", T.INT32, [2, 3])],
        [vi("total", T.INT64, []), vi("codes_not", T.INT32, [2, 3])],
        inits,
    )


FOLD_OPSET = [h.make_opsetid("", 17)]


def _rank_cond(prefix, x):
    """Equal(Size(Shape(x)), 0): "x is a scalar", false for any x of rank >= 1 (torch's `x.dim() == 0`)."""
    return [
        h.make_node("Shape", [x], [f"{prefix}_shape"], name=f"{prefix}/Shape"),
        h.make_node("Size", [f"{prefix}_shape"], [f"{prefix}_rank"], name=f"{prefix}/Size"),
        h.make_node("Equal", [f"{prefix}_rank", "zero"], [f"{prefix}_cond"], name=f"{prefix}/Equal"),
    ]


def if_fold_scatter() -> onnx.ModelProto:
    """data [6, 4] -> If (then: Reshape to 1-D, else: Identity) -> ScatterElements(add) of
    updates [3, 4] at indices [3, 4] (updates smaller than the data), then a second If on the
    rank of the first If's output (typed only once the first is folded) and a Relu."""
    then1 = h.make_graph(
        [h.make_node("Reshape", ["data", "flat"], ["t1"], name="then/Reshape")],
        "then1",
        [],
        [h.make_tensor_value_info("t1", T.FLOAT, None)],
    )
    else1 = h.make_graph(
        [h.make_node("Identity", ["data"], ["e1"], name="else/Identity")],
        "else1",
        [],
        [h.make_tensor_value_info("e1", T.FLOAT, None)],
    )
    # the second If's branches reuse the first's inner names: inlining must rename them
    then2 = h.make_graph(
        [h.make_node("Reshape", ["scattered", "flat"], ["t1"], name="then/Reshape")],
        "then2",
        [],
        [h.make_tensor_value_info("t1", T.FLOAT, None)],
    )
    else2 = h.make_graph(
        [h.make_node("Identity", ["scattered"], ["e1"], name="else/Identity")],
        "else2",
        [],
        [h.make_tensor_value_info("e1", T.FLOAT, None)],
    )
    nodes = (
        _rank_cond("c1", "data")
        + [h.make_node("If", ["c1_cond"], ["if1"], name="If_1", then_branch=then1, else_branch=else1)]
        + [
            h.make_node(
                "ScatterElements", ["if1", "indices", "updates"], ["scattered"], name="Scatter", axis=0, reduction="add"
            )
        ]
        + _rank_cond("c2", "scattered")
        + [
            h.make_node("If", ["c2_cond"], ["if2"], name="If_2", then_branch=then2, else_branch=else2),
            h.make_node("Relu", ["if2"], ["y"], name="Relu"),
        ]
    )
    g = h.make_graph(
        nodes,
        "gat_like",
        [
            h.make_tensor_value_info("data", T.FLOAT, [6, 4]),
            h.make_tensor_value_info("indices", T.INT64, [3, 4]),
            h.make_tensor_value_info("updates", T.FLOAT, [3, 4]),
        ],
        [h.make_tensor_value_info("y", T.FLOAT, [6, 4])],
        initializer=[
            nh.from_array(np.array(0, dtype=np.int64), "zero"),
            nh.from_array(np.array([-1], dtype=np.int64), "flat"),
        ],
    )
    m = h.make_model(g, opset_imports=FOLD_OPSET, producer_name="tpat-fixtures")
    m.ir_version = 8
    return m


def if_fold_nonzero(data_dependent_condition: bool = False) -> onnx.ModelProto:
    """An If whose else branch holds a NonZero. The condition is x's rank == 0 (static: folds),
    or, with `data_dependent_condition`, ReduceSum(x) > 0 (stays)."""
    then_b = h.make_graph(
        [h.make_node("Constant", [], ["empty"], name="then/Empty", value=nh.from_array(np.zeros((1, 0), np.int64)))],
        "then",
        [],
        [h.make_tensor_value_info("empty", T.INT64, None)],
    )
    else_b = h.make_graph(
        [h.make_node("NonZero", ["x"], ["nz"], name="else/NonZero")],
        "else",
        [],
        [h.make_tensor_value_info("nz", T.INT64, None)],
    )
    if data_dependent_condition:
        cond = [
            h.make_node("ReduceSum", ["x"], ["s"], name="Sum", keepdims=0),
            h.make_node("Greater", ["s", "fzero"], ["c1_cond"], name="Greater"),
        ]
    else:
        cond = _rank_cond("c1", "x")
    g = h.make_graph(
        cond + [h.make_node("If", ["c1_cond"], ["idx"], name="If", then_branch=then_b, else_branch=else_b)],
        "if_nonzero",
        [h.make_tensor_value_info("x", T.FLOAT, [16])],
        [h.make_tensor_value_info("idx", T.INT64, [1, "n"])],
        initializer=[
            nh.from_array(np.array(0, dtype=np.int64), "zero"),
            nh.from_array(np.array(0, dtype=np.float32), "fzero"),
        ],
    )
    m = h.make_model(g, opset_imports=FOLD_OPSET, producer_name="tpat-fixtures")
    m.ir_version = 8
    return m


FIXTURES = {
    "select_shape_feed.onnx": shape_feed,
    "select_sequence.onnx": sequence,
    "select_sequence_keepdims.onnx": sequence_keepdims,
    "select_subgraph.onnx": subgraph,
    "select_body_convert.onnx": body_convert,
    "select_checker.onnx": checker_rejects,
    "select_trt11.onnx": trt11,
    "select_probe.onnx": probe,
    "select_if_ranks.onnx": if_ranks,
    "select_if_fold_scatter.onnx": if_fold_scatter,
    "select_if_fold_nonzero.onnx": if_fold_nonzero,
}


def main(argv):
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name, build in FIXTURES.items():
        onnx.save_model(build(), str(out / name))
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
