"""Writes bench/models/lowerings_check.onnx: one small model with a node for each of TPAT's own
lowerings (python/tpat_bridge/lowerings/), a symbolic batch dim, odd sizes and ties (LayerNormalization
with Mean/InvStdDev over the last two axes, N = 240 not a multiple of 32 x 4, broadcast B), for
`tpat generate` + `tpat verify --sanitize` on a GPU machine (compute-sanitizer memcheck/racecheck).

    python bench/lowerings_check.py
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h

OUT = Path(__file__).resolve().parent / "models" / "lowerings_check.onnx"


def main():
    nodes = [
        h.make_node("TopK", ["t_x", "t_k"], ["t_v", "t_i"], axis=-1, largest=1, name="topk_largest"),
        h.make_node("TopK", ["t_x2", "t_k2"], ["t_v2", "t_i2"], axis=-1, largest=0, name="topk_smallest"),
        h.make_node("CumSum", ["c_x", "c_axis"], ["c_y"], exclusive=1, reverse=1, name="cumsum_excl_rev"),
        h.make_node("CumSum", ["c_x2", "c_axis"], ["c_y2"], name="cumsum_long_row"),
        h.make_node("Resize", ["r_x", "", "r_scales"], ["r_y"], mode="linear", name="resize_linear"),
        h.make_node(
            "Resize",
            ["r_x2", "", "", "r_sizes"],
            ["r_y2"],
            mode="cubic",
            coordinate_transformation_mode="align_corners",
            name="resize_cubic",
        ),
        h.make_node("LayerNormalization", ["l_x", "l_s", "l_b"], ["l_y"], axis=-1, epsilon=1e-5, name="layernorm_fp16"),
        h.make_node(
            "LayerNormalization",
            ["n_x", "n_s", "n_b"],
            ["n_y", "n_mean", "n_rstd"],
            axis=-2,
            epsilon=1e-3,
            name="layernorm_stats_axis_m2",
        ),
        h.make_node("RMSNormalization", ["q_x", "q_s"], ["q_y"], axis=-1, epsilon=1e-6, name="rmsnorm_fp16"),
        h.make_node("DFT", ["d_x", "", "d_axis"], ["d_y"], onesided=1, name="dft_onesided"),
        h.make_node("DFT", ["d_x2", "d_len", "d_axis"], ["d_y2"], inverse=1, name="dft_inverse_len"),
        h.make_node("ScatterElements", ["s_d", "s_i", "s_u"], ["s_y"], axis=1, reduction="max", name="scatterel_max"),
        h.make_node("GatherND", ["g_d", "g_i"], ["g_y"], batch_dims=0, name="gathernd"),
        h.make_node("OneHot", ["o_i", "o_depth", "o_vals"], ["o_y"], axis=-1, name="onehot"),
        h.make_node("Gelu", ["e_x"], ["e_y"], name="gelu_fp16"),
        # data-dependent outputs (size tensors): several blocks, bool and float with NaN-free data
        h.make_node("NonZero", ["z_x"], ["z_y"], name="nonzero_bool"),
        h.make_node("NonZero", ["z_x2"], ["z_y2"], name="nonzero_f32"),
        h.make_node("Compress", ["k_x", "k_c"], ["k_y"], axis=1, name="compress_axis1"),
        h.make_node("Unique", ["u_x"], ["u_y", "u_i", "u_inv", "u_c"], sorted=0, name="unique_flat_unsorted"),
        h.make_node("Unique", ["v_x"], ["v_y", "v_i", "v_inv", "v_c"], axis=0, name="unique_axis0"),
        # RoiAlign-22: adaptive sample grid per box on the device, half_pixel with a scale (TVM: refused)
        h.make_node(
            "RoiAlign",
            ["a_x", "a_rois", "a_bi"],
            ["a_y"],
            output_height=7,
            output_width=7,
            sampling_ratio=0,
            spatial_scale=0.0625,
            coordinate_transformation_mode="half_pixel",
            name="roialign_adaptive",
        ),
    ]
    f, f16, i64 = TP.FLOAT, TP.FLOAT16, TP.INT64
    vi = h.make_tensor_value_info
    inputs = [
        vi("t_x", f, ["B", 9000]),
        vi("t_x2", f, ["B", 3, 700]),
        vi("c_x", f, ["B", 5001]),
        vi("c_x2", f, [2, 40000]),
        vi("r_x", f, ["B", 3, 13, 17]),
        vi("r_x2", f, [1, 2, 9, 6]),
        vi("l_x", f16, ["B", 7, 512]),
        vi("l_s", f16, [512]),
        vi("l_b", f16, [512]),
        vi("s_d", f, ["B", 300]),
        vi("s_i", i64, ["B", 100]),
        vi("s_u", f, ["B", 100]),
        vi("g_d", f, [6, 7, 33]),
        vi("g_i", i64, ["B", 5, 2]),
        vi("o_i", i64, ["B", 9]),
        vi("e_x", f16, ["B", 4, 1000]),
        vi("n_x", f, ["B", 6, 40]),
        vi("n_s", f, [40]),
        vi("n_b", f, [6, 1]),
        vi("q_x", f16, ["B", 7, 1024]),
        vi("q_s", f16, [1024]),
        vi("d_x", f, ["B", 96, 1]),
        vi("d_x2", f, ["B", 50, 2]),
        vi("z_x", TP.BOOL, ["B", 3, 700]),
        vi("z_x2", f, ["B", 5000]),
        vi("k_x", f, ["B", 3000]),
        vi("k_c", TP.BOOL, [3000]),
        vi("u_x", i64, [3000]),
        vi("v_x", i64, ["B", 3]),
        vi("a_x", f, ["B", 16, 13, 17]),
        vi("a_rois", f, [37, 4]),
        vi("a_bi", i64, [37]),
    ]
    outputs = [
        vi("t_v", f, ["B", 4100]),
        vi("t_i", i64, ["B", 4100]),
        vi("t_v2", f, ["B", 3, 65]),
        vi("t_i2", i64, ["B", 3, 65]),
        vi("c_y", f, ["B", 5001]),
        vi("c_y2", f, [2, 40000]),
        vi("r_y", f, ["B", 3, 26, 51]),
        vi("r_y2", f, [1, 2, 20, 11]),
        vi("l_y", f16, ["B", 7, 512]),
        vi("s_y", f, ["B", 300]),
        vi("g_y", f, ["B", 5, 33]),
        vi("o_y", f, ["B", 9, 50]),
        vi("e_y", f16, ["B", 4, 1000]),
        vi("n_y", f, ["B", 6, 40]),
        vi("n_mean", f, ["B", 1, 1]),
        vi("n_rstd", f, ["B", 1, 1]),
        vi("q_y", f16, ["B", 7, 1024]),
        vi("d_y", f, ["B", 49, 2]),
        vi("d_y2", f, ["B", 64, 2]),
        vi("z_y", i64, [3, "z_n"]),
        vi("z_y2", i64, [2, "z_n2"]),
        vi("k_y", f, ["B", "k_n"]),
        vi("u_y", i64, ["u_n"]),
        vi("u_i", i64, ["u_n"]),
        vi("u_inv", i64, [3000]),
        vi("u_c", i64, ["u_n"]),
        vi("v_y", i64, ["v_n", 3]),
        vi("v_i", i64, ["v_n"]),
        vi("v_inv", i64, ["B"]),
        vi("v_c", i64, ["v_n"]),
        vi("a_y", f, [37, 16, 7, 7]),
    ]
    inits = [
        h.make_tensor("t_k", i64, [1], [4100]),
        h.make_tensor("t_k2", i64, [1], [65]),
        h.make_tensor("c_axis", i64, [], [1]),
        h.make_tensor("r_scales", f, [4], [1, 1, 2, 3]),
        h.make_tensor("r_sizes", i64, [4], [1, 2, 20, 11]),
        h.make_tensor("o_depth", i64, [], [50]),
        h.make_tensor("d_axis", i64, [], [1]),
        h.make_tensor("d_len", i64, [], [64]),
        h.make_tensor("o_vals", f, [2], [0.0, 1.0]),
    ]
    g = h.make_graph(nodes, "tpat_lowerings_check", inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 23)])  # RMSNormalization: 23
    m.ir_version = 10
    onnx.checker.check_model(m, full_check=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(OUT))
    print(OUT)


if __name__ == "__main__":
    np.random.seed(0)
    main()
