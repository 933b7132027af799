#!/usr/bin/env python3
"""Build the small ONNX fixture models used by the tests and the `make demo` example.

Writes (deterministically, overwriting):
  tests/fixtures/models/verdicts_basic.onnx
  tests/fixtures/models/verdicts_unsupported_ops.onnx
  tests/fixtures/models/verdicts_dtypes.onnx
  tests/fixtures/models/verdicts_custom_domain.onnx
  tests/fixtures/models/symbolic.onnx
  tests/fixtures/models/external_data.onnx + external_data.bin
  tests/fixtures/models/expected-verdicts.json
  examples/demo.onnx

expected-verdicts.json is written from the INTENT of each fixture, decided by hand
below (the EXPECT tables), never computed by an evaluator:
  unsupported  op unsupported / unknown domain (rule "op"), a listed-type check fails
               (rule "dtype"), or a restriction is violated (rule = restriction id);
  restricted   the op has restrictions (or an input is DOUBLE) and all of them pass (rule null);
  supported    otherwise (rule null).

Every model is checked with onnx.checker (full_check where the domains are known), strict
shape inference, and, unless --skip-ort, one onnxruntime run (skipped for models with a
domain onnxruntime does not know).

Usage: scripts/make_fixtures.py [--out-dir DIR] [--examples-dir DIR] [--skip-ort]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
OPSET = 20
IR_VERSION = 10  # pinned so the bytes do not change with the installed onnx version
PRODUCER = "tpat-make-fixtures"

F = TensorProto.FLOAT
D = TensorProto.DOUBLE
I64 = TensorProto.INT64
I32 = TensorProto.INT32
U8 = TensorProto.UINT8
U32 = TensorProto.UINT32
B = TensorProto.BOOL

S = "supported"
R = "restricted"
U = "unsupported"


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def make_model(graph, opset=OPSET, extra_opsets=()):
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, producer_name=PRODUCER)
    model.ir_version = IR_VERSION
    return model


# ----------------------------------------------------------------------------------------
# verdicts_basic.onnx: the restriction cases (each node reads graph inputs or initializers
# directly so that one node's verdict never depends on another's).
# ----------------------------------------------------------------------------------------
def build_verdicts_basic():
    rng = np.random.default_rng(1)
    nodes, inputs, outputs, inits = [], [], [], []

    inputs += [vi("x", F, [2, 8]), vi("y", F, [2, 8])]
    nodes.append(helper.make_node("Relu", ["x"], ["relu_out"], name="relu_ok"))
    nodes.append(helper.make_node("Add", ["x", "y"], ["add_out"], name="add_ok"))
    outputs += [vi("relu_out", F, [2, 8]), vi("add_out", F, [2, 8])]

    # ScatterND: constant indices, reduction none (passes) vs add (violates).
    inputs += [vi("sc_data", F, [4, 8]), vi("sc_updates", F, [2, 8])]
    inits.append(init("sc_indices", np.array([[1], [3]], dtype=np.int64)))
    nodes.append(
        helper.make_node(
            "ScatterND",
            ["sc_data", "sc_indices", "sc_updates"],
            ["scatternd_none_out"],
            name="scatternd_none",
            reduction="none",
        )
    )
    nodes.append(
        helper.make_node(
            "ScatterND",
            ["sc_data", "sc_indices", "sc_updates"],
            ["scatternd_add_out"],
            name="scatternd_add",
            reduction="add",
        )
    )
    outputs += [vi("scatternd_none_out", F, [4, 8]), vi("scatternd_add_out", F, [4, 8])]

    # TopK: K over the 3840 limit; sorted=0; the passing case.
    inputs += [vi("tk_big", F, [1, 5000]), vi("tk_small", F, [2, 64])]
    inits += [init("k_4096", np.array([4096], dtype=np.int64)), init("k_16", np.array([16], dtype=np.int64))]
    nodes.append(helper.make_node("TopK", ["tk_big", "k_4096"], ["topk_k4096_v", "topk_k4096_i"], name="topk_k4096"))
    nodes.append(
        helper.make_node(
            "TopK", ["tk_small", "k_16"], ["topk_unsorted_v", "topk_unsorted_i"], name="topk_unsorted", sorted=0
        )
    )
    nodes.append(
        helper.make_node("TopK", ["tk_small", "k_16"], ["topk_sorted_v", "topk_sorted_i"], name="topk_sorted", sorted=1)
    )
    outputs += [
        vi("topk_k4096_v", F, [1, 4096]),
        vi("topk_k4096_i", I64, [1, 4096]),
        vi("topk_unsorted_v", F, [2, 16]),
        vi("topk_unsorted_i", I64, [2, 16]),
        vi("topk_sorted_v", F, [2, 16]),
        vi("topk_sorted_i", I64, [2, 16]),
    ]

    # GridSample: 4-D passes, 5-D (allowed by ONNX since opset 20) violates.
    inputs += [
        vi("gs_x4", F, [1, 2, 6, 6]),
        vi("gs_grid4", F, [1, 4, 4, 2]),
        vi("gs_x5", F, [1, 2, 4, 6, 6]),
        vi("gs_grid5", F, [1, 3, 4, 4, 3]),
    ]
    nodes.append(
        helper.make_node(
            "GridSample",
            ["gs_x4", "gs_grid4"],
            ["gridsample_4d_out"],
            name="gridsample_4d",
            mode="linear",
            padding_mode="zeros",
            align_corners=0,
        )
    )
    nodes.append(
        helper.make_node(
            "GridSample",
            ["gs_x5", "gs_grid5"],
            ["gridsample_5d_out"],
            name="gridsample_5d",
            mode="linear",
            padding_mode="zeros",
            align_corners=0,
        )
    )
    outputs += [vi("gridsample_4d_out", F, [1, 2, 4, 4]), vi("gridsample_5d_out", F, [1, 2, 3, 4, 4])]

    # Resize: cubic mode, antialias=1 (opset >= 18), linear (passes).
    inputs += [vi("rs_x", F, [1, 3, 8, 8])]
    inits.append(init("rs_scales_up", np.array([1, 1, 2, 2], dtype=np.float32)))
    inits.append(init("rs_scales_down", np.array([1, 1, 0.5, 0.5], dtype=np.float32)))
    nodes.append(
        helper.make_node(
            "Resize", ["rs_x", "", "rs_scales_up"], ["resize_cubic_out"], name="resize_cubic", mode="cubic"
        )
    )
    nodes.append(
        helper.make_node(
            "Resize",
            ["rs_x", "", "rs_scales_down"],
            ["resize_antialias_out"],
            name="resize_antialias",
            mode="linear",
            antialias=1,
        )
    )
    nodes.append(
        helper.make_node(
            "Resize",
            ["rs_x", "", "rs_scales_up"],
            ["resize_linear_out"],
            name="resize_linear",
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )
    )
    outputs += [
        vi("resize_cubic_out", F, [1, 3, 16, 16]),
        vi("resize_antialias_out", F, [1, 3, 4, 4]),
        vi("resize_linear_out", F, [1, 3, 16, 16]),
    ]

    # CumSum: axis from an initializer, from a Constant node (both pass), from a graph input (violates).
    inputs += [vi("cs_x", F, [3, 5]), vi("cs_axis_in", I64, [])]
    inits.append(init("cs_axis_init", np.array(1, dtype=np.int64)))
    nodes.append(
        helper.make_node(
            "Constant",
            [],
            ["cs_axis_const"],
            name="cumsum_axis_constant",
            value=numpy_helper.from_array(np.array(0, dtype=np.int64)),
        )
    )
    nodes.append(
        helper.make_node("CumSum", ["cs_x", "cs_axis_init"], ["cumsum_init_axis_out"], name="cumsum_init_axis")
    )
    nodes.append(
        helper.make_node("CumSum", ["cs_x", "cs_axis_const"], ["cumsum_const_axis_out"], name="cumsum_const_axis")
    )
    nodes.append(
        helper.make_node("CumSum", ["cs_x", "cs_axis_in"], ["cumsum_input_axis_out"], name="cumsum_input_axis")
    )
    outputs += [
        vi("cumsum_init_axis_out", F, [3, 5]),
        vi("cumsum_const_axis_out", F, [3, 5]),
        vi("cumsum_input_axis_out", F, [3, 5]),
    ]

    # LayerNormalization whose second output (Mean) is produced and used (graph output).
    inputs += [vi("ln_x", F, [2, 4, 16])]
    inits += [
        init("ln_scale", rng.standard_normal(16).astype(np.float32)),
        init("ln_bias", rng.standard_normal(16).astype(np.float32)),
    ]
    nodes.append(
        helper.make_node(
            "LayerNormalization",
            ["ln_x", "ln_scale", "ln_bias"],
            ["ln_y", "ln_mean"],
            name="layernorm_mean",
            axis=-1,
            epsilon=1e-5,
        )
    )
    outputs += [vi("ln_y", F, [2, 4, 16]), vi("ln_mean", F, [2, 4, 1])]

    graph = helper.make_graph(nodes, "verdicts_basic", inputs, outputs, initializer=inits)
    feeds = {
        "x": rng.standard_normal((2, 8)).astype(np.float32),
        "y": rng.standard_normal((2, 8)).astype(np.float32),
        "sc_data": rng.standard_normal((4, 8)).astype(np.float32),
        "sc_updates": rng.standard_normal((2, 8)).astype(np.float32),
        "tk_big": rng.standard_normal((1, 5000)).astype(np.float32),
        "tk_small": rng.standard_normal((2, 64)).astype(np.float32),
        "gs_x4": rng.standard_normal((1, 2, 6, 6)).astype(np.float32),
        "gs_grid4": rng.uniform(-1, 1, (1, 4, 4, 2)).astype(np.float32),
        "gs_x5": rng.standard_normal((1, 2, 4, 6, 6)).astype(np.float32),
        "gs_grid5": rng.uniform(-1, 1, (1, 3, 4, 4, 3)).astype(np.float32),
        "rs_x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32),
        "cs_x": rng.standard_normal((3, 5)).astype(np.float32),
        "cs_axis_in": np.array(1, dtype=np.int64),
        "ln_x": rng.standard_normal((2, 4, 16)).astype(np.float32),
    }
    return make_model(graph), feeds


EXPECT_BASIC = {
    "relu_ok": (S, None),
    "add_ok": (S, None),
    "scatternd_none": (R, None),
    "scatternd_add": (U, "ScatterND.reduction"),
    "topk_k4096": (U, "TopK.K"),
    "topk_unsorted": (R, None),  # the table says sorted must be 1; the importer never reads it
    "topk_sorted": (R, None),
    "gridsample_4d": (R, None),
    "gridsample_5d": (U, "GridSample.rank"),
    "resize_cubic": (U, "Resize.mode"),
    "resize_antialias": (U, "Resize.antialias"),
    "resize_linear": (R, None),
    "cumsum_axis_constant": (R, None),  # the Constant node itself: attributeAbsent rules, all pass
    "cumsum_init_axis": (R, None),
    "cumsum_const_axis": (R, None),
    "cumsum_input_axis": (U, "CumSum.axis"),
    "layernorm_mean": (U, "LayerNormalization.Mean"),
}


# ----------------------------------------------------------------------------------------
# verdicts_unsupported_ops.onnx: ops marked N in the table (rule "op").
# ----------------------------------------------------------------------------------------
def build_verdicts_unsupported_ops():
    rng = np.random.default_rng(2)
    nodes, inputs, outputs, inits = [], [], [], []

    # Col2Im: [N, C*prod(block), L] -> [N, C, H, W]
    inputs.append(vi("c2i_x", F, [1, 8, 16]))
    inits += [
        init("c2i_image_shape", np.array([8, 8], dtype=np.int64)),
        init("c2i_block_shape", np.array([2, 2], dtype=np.int64)),
    ]
    nodes.append(
        helper.make_node(
            "Col2Im", ["c2i_x", "c2i_image_shape", "c2i_block_shape"], ["col2im_out"], name="col2im", strides=[2, 2]
        )
    )
    outputs.append(vi("col2im_out", F, [1, 2, 8, 8]))

    # MaxUnpool
    inputs += [vi("mu_x", F, [1, 1, 2, 2]), vi("mu_idx", I64, [1, 1, 2, 2])]
    nodes.append(
        helper.make_node(
            "MaxUnpool", ["mu_x", "mu_idx"], ["maxunpool_out"], name="maxunpool", kernel_shape=[2, 2], strides=[2, 2]
        )
    )
    outputs.append(vi("maxunpool_out", F, [1, 1, 4, 4]))

    # BitShift (uint32)
    inputs += [vi("bs_x", U32, [4]), vi("bs_y", U32, [4])]
    nodes.append(helper.make_node("BitShift", ["bs_x", "bs_y"], ["bitshift_out"], name="bitshift", direction="LEFT"))
    outputs.append(vi("bitshift_out", U32, [4]))

    # BitwiseAnd (int32: a type the table would accept, so only the op decides)
    inputs += [vi("ba_x", I32, [4]), vi("ba_y", I32, [4])]
    nodes.append(helper.make_node("BitwiseAnd", ["ba_x", "ba_y"], ["bitwiseand_out"], name="bitwiseand"))
    outputs.append(vi("bitwiseand_out", I32, [4]))

    # Unique
    inputs.append(vi("uq_x", F, [6]))
    nodes.append(
        helper.make_node(
            "Unique", ["uq_x"], ["unique_y", "unique_idx", "unique_inv", "unique_cnt"], name="unique", sorted=1
        )
    )
    outputs += [
        vi("unique_y", F, ["n_unique"]),
        vi("unique_idx", I64, ["n_unique"]),
        vi("unique_inv", I64, [6]),
        vi("unique_cnt", I64, ["n_unique"]),
    ]

    # Compress
    inputs += [vi("cp_x", F, [3, 2]), vi("cp_cond", B, [3])]
    nodes.append(helper.make_node("Compress", ["cp_x", "cp_cond"], ["compress_out"], name="compress", axis=0))
    outputs.append(vi("compress_out", F, ["n_kept", 2]))

    # DFT (opset 20: dft_length and axis are inputs)
    inputs.append(vi("dft_x", F, [1, 8, 1]))
    inits.append(init("dft_axis", np.array(1, dtype=np.int64)))
    nodes.append(helper.make_node("DFT", ["dft_x", "", "dft_axis"], ["dft_out"], name="dft"))
    outputs.append(vi("dft_out", F, [1, 8, 2]))

    # Det
    inputs.append(vi("det_x", F, [2, 3, 3]))
    nodes.append(helper.make_node("Det", ["det_x"], ["det_out"], name="det"))
    outputs.append(vi("det_out", F, [2]))

    graph = helper.make_graph(nodes, "verdicts_unsupported_ops", inputs, outputs, initializer=inits)
    feeds = {
        "c2i_x": rng.standard_normal((1, 8, 16)).astype(np.float32),
        "mu_x": rng.standard_normal((1, 1, 2, 2)).astype(np.float32),
        "mu_idx": np.array([[[[0, 3], [8, 15]]]], dtype=np.int64),
        "bs_x": np.array([1, 2, 3, 4], dtype=np.uint32),
        "bs_y": np.array([1, 2, 3, 1], dtype=np.uint32),
        "ba_x": np.array([7, 6, 5, 4], dtype=np.int32),
        "ba_y": np.array([1, 2, 4, 8], dtype=np.int32),
        "uq_x": np.array([2, 1, 1, 3, 4, 3], dtype=np.float32),
        "cp_x": rng.standard_normal((3, 2)).astype(np.float32),
        "cp_cond": np.array([True, False, True]),
        "dft_x": rng.standard_normal((1, 8, 1)).astype(np.float32),
        "det_x": rng.standard_normal((2, 3, 3)).astype(np.float32),
    }
    return make_model(graph), feeds


EXPECT_UNSUPPORTED_OPS = {
    "col2im": (U, "op"),
    "maxunpool": (U, "op"),
    "bitshift": (U, "op"),
    "bitwiseand": (U, "op"),
    "unique": (U, "op"),
    "compress": (U, "op"),
    "dft": (U, "op"),
    "det": (U, "op"),
}


# ----------------------------------------------------------------------------------------
# verdicts_dtypes.onnx: listed-type checks and DOUBLE.
# ----------------------------------------------------------------------------------------
def build_verdicts_dtypes():
    rng = np.random.default_rng(3)
    nodes, inputs, outputs, inits = [], [], [], []

    # Mod on uint8 (Mod lists FP32, FP16, BF16, INT32, INT64).
    inputs += [vi("mod_a", U8, [6]), vi("mod_b", U8, [6])]
    nodes.append(helper.make_node("Mod", ["mod_a", "mod_b"], ["mod_u8_out"], name="mod_uint8"))
    outputs.append(vi("mod_u8_out", U8, [6]))

    # Mod on int32 (listed): supported.
    inputs += [vi("mod_c", I32, [6]), vi("mod_d", I32, [6])]
    nodes.append(helper.make_node("Mod", ["mod_c", "mod_d"], ["mod_i32_out"], name="mod_int32"))
    outputs.append(vi("mod_i32_out", I32, [6]))

    # ScatterElements on bool data (ScatterElements lists no BOOL).
    inputs += [vi("se_data", B, [3, 3]), vi("se_updates", B, [1, 2])]
    inits.append(init("se_indices", np.array([[1, 2]], dtype=np.int64)))
    nodes.append(
        helper.make_node(
            "ScatterElements",
            ["se_data", "se_indices", "se_updates"],
            ["scatterelements_out"],
            name="scatterelements_bool",
            axis=1,
        )
    )
    outputs.append(vi("scatterelements_out", B, [3, 3]))

    # Abs on DOUBLE: TensorRT casts DOUBLE down to FLOAT (FP32 is listed) -> restricted.
    inputs.append(vi("abs_x", D, [5]))
    nodes.append(helper.make_node("Abs", ["abs_x"], ["abs_double_out"], name="abs_double"))
    outputs.append(vi("abs_double_out", D, [5]))

    # Cast checks its output too: FLOAT -> INT8 (INT8 not listed for Cast).
    inputs.append(vi("cast_x", F, [4]))
    nodes.append(helper.make_node("Cast", ["cast_x"], ["cast_int8_out"], name="cast_to_int8", to=TensorProto.INT8))
    nodes.append(helper.make_node("Cast", ["cast_x"], ["cast_int32_out"], name="cast_to_int32", to=I32))
    outputs += [vi("cast_int8_out", TensorProto.INT8, [4]), vi("cast_int32_out", I32, [4])]

    graph = helper.make_graph(nodes, "verdicts_dtypes", inputs, outputs, initializer=inits)
    feeds = {
        "mod_a": np.array([9, 8, 7, 200, 5, 4], dtype=np.uint8),
        "mod_b": np.array([2, 3, 4, 7, 3, 3], dtype=np.uint8),
        "mod_c": np.array([9, 8, 7, 200, 5, 4], dtype=np.int32),
        "mod_d": np.array([2, 3, 4, 7, 3, 3], dtype=np.int32),
        "se_data": np.zeros((3, 3), dtype=bool),
        "se_updates": np.array([[True, True]]),
        "abs_x": rng.standard_normal(5).astype(np.float64),
        "cast_x": np.array([1.5, -2.0, 3.25, 100.0], dtype=np.float32),
    }
    return make_model(graph), feeds


EXPECT_DTYPES = {
    "mod_uint8": (U, "dtype"),
    "mod_int32": (S, None),
    "scatterelements_bool": (U, "dtype"),
    "abs_double": (R, None),
    "cast_to_int8": (U, "dtype"),
    "cast_to_int32": (S, None),
}


# ----------------------------------------------------------------------------------------
# verdicts_custom_domain.onnx: a node of an unknown domain (onnxruntime cannot run it).
# ----------------------------------------------------------------------------------------
def build_verdicts_custom_domain():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu_before"),
        helper.make_node("MyCustomOp", ["r"], ["c"], name="custom_op", domain="com.example", alpha=0.5),
        helper.make_node("Sigmoid", ["c"], ["y"], name="sigmoid_after"),
    ]
    graph = helper.make_graph(
        nodes, "verdicts_custom_domain", [vi("x", F, [2, 4])], [vi("y", F, [2, 4])], value_info=[vi("c", F, [2, 4])]
    )
    return make_model(graph, extra_opsets=[("com.example", 1)]), None


EXPECT_CUSTOM_DOMAIN = {
    "relu_before": (S, None),
    "custom_op": (U, "op"),
    "sigmoid_after": (S, None),
}


# ----------------------------------------------------------------------------------------
# symbolic.onnx: symbolic dims propagated by shape inference, plus a Shape -> Gather ->
# Concat -> Reshape chain whose output shape needs data propagation
# (infer_shapes(data_prop=True) gives ["batch", "seq", 4, 8]; without it only rank 4).
# ----------------------------------------------------------------------------------------
def build_symbolic():
    rng = np.random.default_rng(4)
    inits = [
        init("w_proj", (rng.standard_normal((64, 32)) * 0.1).astype(np.float32)),
        init("b_proj", (rng.standard_normal(32) * 0.1).astype(np.float32)),
        init("gather_idx", np.array([0, 1], dtype=np.int64)),
        init("head_dims", np.array([4, 8], dtype=np.int64)),
        init("scatter_idx", np.array([[0], [1]], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_proj"], ["proj"], name="proj_matmul"),
        helper.make_node("Add", ["proj", "b_proj"], ["proj_b"], name="proj_bias"),
        helper.make_node("Relu", ["proj_b"], ["act"], name="proj_relu"),
        helper.make_node(
            "ScatterND", ["act", "scatter_idx", "upd"], ["scattered"], name="scatter_add", reduction="add"
        ),
        helper.make_node("Shape", ["scattered"], ["act_shape"], name="shape_of_scattered"),
        helper.make_node("Gather", ["act_shape", "gather_idx"], ["batch_seq"], name="gather_batch_seq", axis=0),
        helper.make_node("Concat", ["batch_seq", "head_dims"], ["new_shape"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["scattered", "new_shape"], ["heads"], name="reshape_heads"),
        helper.make_node("Softmax", ["heads"], ["y"], name="softmax_heads", axis=-1),
    ]
    inputs = [vi("x", F, ["batch", "seq", 64]), vi("upd", F, [2, "seq", 32])]
    outputs = [vi("y", F, ["batch", "seq", 4, 8])]
    graph = helper.make_graph(nodes, "symbolic", inputs, outputs, initializer=inits)
    feeds = {
        "x": rng.standard_normal((3, 5, 64)).astype(np.float32),
        "upd": rng.standard_normal((2, 5, 32)).astype(np.float32),
    }
    return make_model(graph), feeds


EXPECT_SYMBOLIC = {
    "proj_matmul": (S, None),
    "proj_bias": (S, None),
    "proj_relu": (S, None),
    "scatter_add": (U, "ScatterND.reduction"),
    "shape_of_scattered": (S, None),
    "gather_batch_seq": (S, None),
    "concat_shape": (S, None),
    "reshape_heads": (S, None),
    "softmax_heads": (S, None),
}


# ----------------------------------------------------------------------------------------
# external_data.onnx + external_data.bin
# ----------------------------------------------------------------------------------------
EXTERNAL_LOCATION = "external_data.bin"


def build_external_data():
    rng = np.random.default_rng(5)
    inits = [
        init("w_fc", (rng.standard_normal((16, 32)) * 0.1).astype(np.float32)),  # 2 KiB
        init("b_fc", (rng.standard_normal(32) * 0.1).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_fc"], ["fc"], name="fc_matmul"),
        helper.make_node("Add", ["fc", "b_fc"], ["fc_b"], name="fc_bias"),
        helper.make_node("Relu", ["fc_b"], ["y"], name="fc_relu"),
    ]
    graph = helper.make_graph(
        nodes, "external_data", [vi("x", F, ["N", 16])], [vi("y", F, ["N", 32])], initializer=inits
    )
    feeds = {"x": rng.standard_normal((2, 16)).astype(np.float32)}
    return make_model(graph), feeds


EXPECT_EXTERNAL_DATA = {
    "fc_matmul": (S, None),
    "fc_bias": (S, None),
    "fc_relu": (S, None),
}


# ----------------------------------------------------------------------------------------
# plugins_symbolic.onnx / plugins_static.onnx: models whose unsupported nodes TVM can all plan,
# so that `tpat generate --auto` converts every one and TensorRT(-RTX) imports the result.
# Together they hold 8 different unsupported op types (ScatterND, TopK, BitwiseAnd, BitwiseXor,
# BitwiseNot, GridSample, Resize, MaxUnpool); plugins_symbolic has symbolic batch and
# sequence dims and two identical BitwiseAnd nodes that share one plugin.
# ----------------------------------------------------------------------------------------
def build_plugins_symbolic():
    rng = np.random.default_rng(8)
    inits = [
        init("ln_scale", (1 + 0.1 * rng.standard_normal(64)).astype(np.float32)),
        init("ln_bias", (0.1 * rng.standard_normal(64)).astype(np.float32)),
        init("rows", np.array([[0], [1]], dtype=np.int64)),
        init("k8", np.array([8], dtype=np.int64)),
        init("mask", np.array(0x0F0F, dtype=np.int32)),
        init("one", np.array(1, dtype=np.int32)),
    ]
    nodes = [
        helper.make_node(
            "LayerNormalization", ["x", "ln_scale", "ln_bias"], ["ln_y"], name="layernorm", axis=-1, epsilon=1e-5
        ),
        helper.make_node("ScatterND", ["ln_y", "rows", "upd"], ["scattered"], name="scatter_rows_add", reduction="add"),
        helper.make_node("TopK", ["scattered", "k8"], ["top_vals", "top_idx"], name="topk_unsorted", axis=-1, sorted=0),
        helper.make_node("Add", ["tokens", "one"], ["tokens_next"], name="tokens_shift"),
        helper.make_node("BitwiseAnd", ["tokens", "mask"], ["band_a_out"], name="band_a"),
        helper.make_node("BitwiseAnd", ["tokens_next", "mask"], ["band_b_out"], name="band_b"),
        helper.make_node("BitwiseXor", ["band_a_out", "band_b_out"], ["token_xor"], name="bxor"),
        helper.make_node("BitwiseNot", ["token_xor"], ["token_bits"], name="bnot"),
    ]
    inputs = [vi("x", F, ["batch", "seq", 64]), vi("upd", F, [2, "seq", 64]), vi("tokens", I32, ["batch", "seq"])]
    outputs = [
        vi("top_vals", F, ["batch", "seq", 8]),
        vi("top_idx", I64, ["batch", "seq", 8]),
        vi("token_bits", I32, ["batch", "seq"]),
    ]
    graph = helper.make_graph(nodes, "plugins_symbolic", inputs, outputs, initializer=inits)
    feeds = {
        "x": rng.standard_normal((3, 5, 64)).astype(np.float32),
        "upd": rng.standard_normal((2, 5, 64)).astype(np.float32),
        "tokens": rng.integers(0, 1 << 20, (3, 5)).astype(np.int32),
    }
    return make_model(graph), feeds


EXPECT_PLUGINS_SYMBOLIC = {
    "layernorm": (R, None),
    "scatter_rows_add": (U, "ScatterND.reduction"),
    "topk_unsorted": (R, None),  # the table says sorted must be 1; the importer never reads it
    "tokens_shift": (S, None),
    "band_a": (U, "op"),
    "band_b": (U, "op"),
    "bxor": (U, "op"),
    "bnot": (U, "op"),
}


def build_plugins_static():
    rng = np.random.default_rng(9)
    inits = [
        init("up_scales", np.array([1, 1, 2, 2], dtype=np.float32)),
        init("k4096", np.array([4096], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node(
            "GridSample",
            ["vol", "grid"],
            ["sampled"],
            name="gridsample_5d",
            mode="linear",
            padding_mode="zeros",
            align_corners=0,
        ),
        helper.make_node("Sigmoid", ["sampled"], ["sampled_act"], name="sampled_sigmoid"),
        helper.make_node("Resize", ["img", "", "up_scales"], ["up"], name="resize_cubic", mode="cubic"),
        helper.make_node("Relu", ["up"], ["up_act"], name="up_relu"),
        helper.make_node(
            "MaxUnpool", ["pooled", "pool_idx"], ["unpooled"], name="maxunpool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("TopK", ["scores", "k4096"], ["best", "best_idx"], name="topk_4096", axis=-1),
    ]
    inputs = [
        vi("vol", F, [1, 4, 6, 8, 8]),
        vi("grid", F, [1, 3, 4, 4, 3]),
        vi("img", F, [1, 3, 8, 8]),
        vi("pooled", F, [1, 2, 4, 4]),
        vi("pool_idx", I64, [1, 2, 4, 4]),
        vi("scores", F, [2, 5000]),
    ]
    outputs = [
        vi("sampled_act", F, [1, 4, 3, 4, 4]),
        vi("up_act", F, [1, 3, 16, 16]),
        vi("unpooled", F, [1, 2, 8, 8]),
        vi("best", F, [2, 4096]),
        vi("best_idx", I64, [2, 4096]),
    ]
    graph = helper.make_graph(nodes, "plugins_static", inputs, outputs, initializer=inits)
    # MaxUnpool indices: one position inside each 2x2 window of the 8x8 plane.
    idx = np.zeros((1, 2, 4, 4), dtype=np.int64)
    for c in range(2):
        for i in range(4):
            for j in range(4):
                di, dj = rng.integers(0, 2, 2)
                idx[0, c, i, j] = (2 * i + di) * 8 + (2 * j + dj)
    feeds = {
        "vol": rng.standard_normal((1, 4, 6, 8, 8)).astype(np.float32),
        "grid": rng.uniform(-1, 1, (1, 3, 4, 4, 3)).astype(np.float32),
        "img": rng.standard_normal((1, 3, 8, 8)).astype(np.float32),
        "pooled": rng.standard_normal((1, 2, 4, 4)).astype(np.float32),
        "pool_idx": idx,
        "scores": rng.standard_normal((2, 5000)).astype(np.float32),
    }
    return make_model(graph), feeds


EXPECT_PLUGINS_STATIC = {
    "gridsample_5d": (U, "GridSample.rank"),
    "sampled_sigmoid": (S, None),
    "resize_cubic": (U, "Resize.mode"),
    "up_relu": (S, None),
    "maxunpool": (U, "op"),
    "topk_4096": (U, "TopK.K"),
}


# ----------------------------------------------------------------------------------------
# examples/demo.onnx: a small image model, symbolic batch "N", with four nodes TensorRT 10
# cannot import (GridSample 5-D, TopK K=4096, ScatterND reduction=add, Resize cubic).
# ----------------------------------------------------------------------------------------
def build_demo():
    rng = np.random.default_rng(6)
    inits = [
        init("conv_w", (rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32)),
        init("conv_b", (rng.standard_normal(8) * 0.1).astype(np.float32)),
        init("unsq_axes", np.array([2], dtype=np.int64)),
        init("reduce_axes", np.array([2], dtype=np.int64)),
        init("topk_k", np.array([4096], dtype=np.int64)),
        init("batch_axis", np.array([0], dtype=np.int64)),
        init("row0", np.array([[0]], dtype=np.int64)),
        init("up_scales", np.array([1, 1, 2, 2], dtype=np.float32)),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["images", "conv_w", "conv_b"], ["conv"], name="stem_conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv"], ["feat"], name="stem_relu"),
        # volumetric warp of the features: [N,8,1,32,32] sampled with a 3-D grid -> [N,8,4,8,8]
        helper.make_node("Unsqueeze", ["feat", "unsq_axes"], ["feat5d"], name="to_volume"),
        helper.make_node(
            "GridSample",
            ["feat5d", "grid3d"],
            ["warped"],
            name="warp_3d",
            mode="linear",
            padding_mode="border",
            align_corners=0,
        ),
        helper.make_node("ReduceMean", ["warped", "reduce_axes"], ["warped_mean"], name="warp_pool", keepdims=0),
        # coarse branch: 2x2 max-pool [N,8,16,16], bicubic upsampling back to [N,8,32,32]
        helper.make_node("MaxPool", ["feat"], ["pooled"], name="coarse_pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["pooled", "", "up_scales"], ["folded"], name="upsample_cubic", mode="cubic"),
        helper.make_node("Add", ["feat", "folded"], ["fused"], name="fuse"),
        # score top-4096 activations per image, then scatter-add the batch mean into row 0
        helper.make_node("Flatten", ["fused"], ["flat"], name="flatten", axis=1),
        helper.make_node("TopK", ["flat", "topk_k"], ["top_vals", "top_idx"], name="top_4096", axis=-1),
        helper.make_node("ReduceMean", ["top_vals", "batch_axis"], ["top_mean"], name="batch_mean", keepdims=1),
        helper.make_node(
            "ScatterND", ["top_vals", "row0", "top_mean"], ["accum"], name="accumulate_row0", reduction="add"
        ),
        helper.make_node("Sigmoid", ["accum"], ["scores"], name="scores_sigmoid"),
    ]
    inputs = [vi("images", F, ["N", 3, 32, 32]), vi("grid3d", F, ["N", 4, 8, 8, 3])]
    outputs = [vi("scores", F, ["N", 4096]), vi("top_idx", I64, ["N", 4096]), vi("warped_mean", F, ["N", 8, 8, 8])]
    graph = helper.make_graph(nodes, "tpat_demo", inputs, outputs, initializer=inits)
    feeds = {
        "images": rng.standard_normal((2, 3, 32, 32)).astype(np.float32),
        "grid3d": rng.uniform(-1, 1, (2, 4, 8, 8, 3)).astype(np.float32),
    }
    return make_model(graph), feeds


# Intent for the demo (not part of expected-verdicts.json, which covers tests/fixtures/models only).
DEMO_UNSUPPORTED = {
    "warp_3d": "GridSample.rank",
    "upsample_cubic": "Resize.mode",
    "top_4096": "TopK.K",
    "accumulate_row0": "ScatterND.reduction",
}


FIXTURES = [
    # (file name, builder, expectations, onnxruntime can run it)
    ("verdicts_basic.onnx", build_verdicts_basic, EXPECT_BASIC, True),
    ("verdicts_unsupported_ops.onnx", build_verdicts_unsupported_ops, EXPECT_UNSUPPORTED_OPS, True),
    ("verdicts_dtypes.onnx", build_verdicts_dtypes, EXPECT_DTYPES, True),
    ("verdicts_custom_domain.onnx", build_verdicts_custom_domain, EXPECT_CUSTOM_DOMAIN, False),
    ("symbolic.onnx", build_symbolic, EXPECT_SYMBOLIC, True),
    ("external_data.onnx", build_external_data, EXPECT_EXTERNAL_DATA, True),
    ("plugins_symbolic.onnx", build_plugins_symbolic, EXPECT_PLUGINS_SYMBOLIC, True),
    ("plugins_static.onnx", build_plugins_static, EXPECT_PLUGINS_STATIC, True),
]


def check(path: Path, model: onnx.ModelProto, known_domains: bool):
    """onnx.checker + strict shape inference on the saved file."""
    onnx.checker.check_model(str(path), full_check=known_domains)
    loaded = onnx.load(str(path))
    if known_domains:
        onnx.shape_inference.infer_shapes(loaded, check_type=True, strict_mode=True, data_prop=True)
    names = [n.name for n in loaded.graph.node]
    assert all(names), f"{path.name}: every node needs a name"
    assert len(set(names)) == len(names), f"{path.name}: duplicate node names"


def run_ort(path: Path, feeds):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    for meta, value in zip(sess.get_outputs(), outs):
        assert value is not None, meta.name


def verdict_entries(expect, model):
    names = [n.name for n in model.graph.node]
    missing = sorted(set(names) - set(expect))
    extra = sorted(set(expect) - set(names))
    assert not missing and not extra, f"{model.graph.name}: expectations out of sync: missing {missing}, extra {extra}"
    out = {}
    for name in names:  # graph order
        verdict, rule = expect[name]
        assert verdict in (S, R, U)
        assert (rule is None) == (verdict != U), (name, verdict, rule)
        out[name] = {"verdict": verdict, "rule": rule}
    return out


def save(model, path: Path, external=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        bin_path = path.parent / EXTERNAL_LOCATION
        if bin_path.exists():
            bin_path.unlink()  # onnx appends to an existing data file
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_LOCATION,
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(path))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, default=REPO / "tests" / "fixtures" / "models")
    ap.add_argument("--examples-dir", type=Path, default=REPO / "examples")
    ap.add_argument("--skip-ort", action="store_true", help="do not run the models through onnxruntime")
    args = ap.parse_args(argv)

    expected = {}
    for fname, builder, expect, ort_ok in FIXTURES:
        model, feeds = builder()
        expected[fname] = verdict_entries(expect, model)
        path = args.out_dir / fname
        save(model, path, external=(fname == "external_data.onnx"))
        check(path, model, known_domains=ort_ok)
        if ort_ok and not args.skip_ort:
            run_ort(path, feeds)
        size = path.stat().st_size
        assert size < 50 * 1024, f"{fname} is {size} bytes"
        print(f"wrote {path} ({size} bytes)")

    bin_path = args.out_dir / EXTERNAL_LOCATION
    assert bin_path.stat().st_size >= 1024
    print(f"wrote {bin_path} ({bin_path.stat().st_size} bytes)")

    exp_path = args.out_dir / "expected-verdicts.json"
    exp_path.write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {exp_path}")

    model, feeds = build_demo()
    names = {n.name for n in model.graph.node}
    assert set(DEMO_UNSUPPORTED) <= names
    demo = args.examples_dir / "demo.onnx"
    save(model, demo)
    check(demo, model, known_domains=True)
    if not args.skip_ort:
        run_ort(demo, feeds)
    assert demo.stat().st_size < 100 * 1024
    print(f"wrote {demo} ({demo.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
