"""Writes bench/models/lowerings_check.onnx: one small model with a node for each of TPAT's own
lowerings (python/tpat_bridge/lowerings/; Attention twice: fused and composition), a symbolic batch dim, odd sizes and ties (LayerNormalization
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
        h.make_node("DFT", ["d_x3", "", "d_axis"], ["d_y3"], name="dft_prime_bluestein4"),
        h.make_node("DFT", ["d_x4", "", "d_axis"], ["d_y4"], onesided=1, name="dft_fourstep_columns"),
        h.make_node("DFT", ["d_x5", "", "d_axis"], ["d_y5"], inverse=1, name="dft_prime_bluestein"),
        h.make_node("STFT", ["w_x", "w_step", "w_w", "w_len"], ["w_y"], onesided=1, name="stft_window_input"),
        h.make_node("ScatterElements", ["s_d", "s_i", "s_u"], ["s_y"], axis=1, reduction="max", name="scatterel_max"),
        h.make_node("GatherND", ["g_d", "g_i"], ["g_y"], batch_dims=0, name="gathernd"),
        h.make_node("OneHot", ["o_i", "o_depth", "o_vals"], ["o_y"], axis=-1, name="onehot"),
        # gather.py (axis 1, 2-D indices, fp16 16-byte slices) and gridsample.py (4-D bilinear border,
        # 5-D nearest reflection)
        h.make_node("Gather", ["ga_d", "ga_i"], ["ga_y"], axis=1, name="gather_axis1_fp16"),
        h.make_node(
            "GridSample", ["gs_x", "gs_g"], ["gs_y"], mode="linear", padding_mode="border", name="gridsample_2d"
        ),
        h.make_node(
            "GridSample",
            ["gs_x2", "gs_g2"],
            ["gs_y2"],
            mode="nearest",
            padding_mode="reflection",
            align_corners=1,
            name="gridsample_3d_nearest",
        ),
        h.make_node("Gelu", ["e_x"], ["e_y"], name="gelu_fp16"),
        # data-dependent outputs (size tensors): several blocks, bool and float with NaN-free data
        h.make_node("NonZero", ["z_x"], ["z_y"], name="nonzero_bool"),
        h.make_node("NonZero", ["z_x2"], ["z_y2"], name="nonzero_f32"),
        h.make_node("Compress", ["k_x", "k_c"], ["k_y"], axis=1, name="compress_axis1"),
        h.make_node("Unique", ["u_x"], ["u_y", "u_i", "u_inv", "u_c"], sorted=0, name="unique_flat_unsorted"),
        h.make_node("Unique", ["v_x"], ["v_y", "v_i", "v_inv", "v_c"], axis=0, name="unique_axis0"),
        # reduce.py: rows split in segments (two passes), columns split, sub-warp rows, axes [0, 2]
        # (two passes), a symbolic R under columns (int32), noop_with_empty_axes (elementwise)
        h.make_node("ReduceSum", ["rd_x1", "rd_a1"], ["rd_y1"], keepdims=0, name="reducesum_split_row"),
        h.make_node("ReduceLogSumExp", ["rd_x2", "rd_a1"], ["rd_y2"], keepdims=1, name="reducelse_split_cols"),
        h.make_node("ReduceMean", ["rd_x3", "rd_am1"], ["rd_y3"], keepdims=1, name="reducemean_fp16"),
        h.make_node("ReduceL1", ["rd_x4", "rd_a02"], ["rd_y4"], keepdims=0, name="reducel1_axes02"),
        h.make_node("ReduceMin", ["rd_x5", "rd_a0"], ["rd_y5"], keepdims=1, name="reducemin_int32_axis0"),
        h.make_node("ReduceSumSquare", ["rd_x6"], ["rd_y6"], noop_with_empty_axes=1, name="reducesumsquare_noop"),
        # ops TVM 0.27 cannot import, and Resize antialias (issue 14)
        h.make_node(
            "Col2Im",
            ["p_x", "p_img", "p_blk"],
            ["p_y"],
            strides=[2, 1],
            pads=[1, 0, 1, 2],
            dilations=[1, 2],
            name="col2im_2d",
        ),
        h.make_node("Col2Im", ["p_x2", "p_img2", "p_blk2"], ["p_y2"], name="col2im_3d"),
        h.make_node(
            "Resize", ["a_x", "", "a_scales"], ["a_y"], mode="linear", antialias=1, name="resize_antialias_linear"
        ),
        h.make_node(
            "Resize",
            ["a_x2", "", "a_scales2"],
            ["a_y2"],
            mode="cubic",
            antialias=1,
            exclude_outside=1,
            name="resize_antialias_cubic_reduction",
        ),
        h.make_node("CenterCropPad", ["cc_x", "cc_shape"], ["cc_y"], axes=[1, 2], name="centercroppad_fp16"),
        # Attention (opset 23): the fused kernel (4-D fp16, GQA, causal with a float mask, 3 key tiles;
        # 4-D because ONNX Runtime 1.24's fp16 3-D GQA is wrong) and the composition (qk output,
        # past / present, V head size != Q head size)
        h.make_node(
            "Attention", ["at_q", "at_k", "at_v", "at_m"], ["at_y"], is_causal=1, name="attention_fused_gqa_causal"
        ),
        h.make_node(
            "Attention",
            ["b_q", "b_k", "b_v", "", "b_pk", "b_pv"],
            ["b_y", "b_pko", "b_pvo", "b_qk"],
            qk_matmul_output_mode=3,
            softcap=5.0,
            name="attention_past_qk",
        ),
        # RoiAlign-22: adaptive sample grid per box on the device, half_pixel with a scale (TVM: refused)
        h.make_node(
            "RoiAlign",
            ["ra_x", "ra_rois", "ra_bi"],
            ["ra_y"],
            output_height=7,
            output_width=7,
            sampling_ratio=0,
            spatial_scale=0.0625,
            coordinate_transformation_mode="half_pixel",
            name="roialign_adaptive",
        ),
        # NonMaxSuppression (size tensor): 200 boxes (4 sweep chunks) in shared memory with a score
        # threshold; 4500 centre-format boxes sorted in the global workspace, no score threshold
        h.make_node("NonMaxSuppression", ["x_b", "x_s", "x_max", "x_iou", "x_st"], ["x_y"], name="nms_shared_sort"),
        h.make_node(
            "NonMaxSuppression", ["y_b", "y_s", "y_max", "y_iou"], ["y_y"], center_point_box=1, name="nms_global_sort"
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
        vi("ga_d", f16, ["B", 37, 24]),
        vi("ga_i", i64, [5, 3]),
        vi("gs_x", f, ["B", 3, 13, 17]),
        vi("gs_g", f, ["B", 9, 11, 2]),
        vi("gs_x2", f, ["B", 2, 5, 6, 7]),
        vi("gs_g2", f, ["B", 4, 5, 6, 3]),
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
        vi("d_x3", f, ["B", 8191, 2]),
        vi("d_x4", f, [2, 16384, 3, 1]),
        vi("d_x5", f, ["B", 97, 2]),
        vi("w_x", f, ["B", 2000, 1]),
        vi("w_w", f, [400]),
        vi("z_x", TP.BOOL, ["B", 3, 700]),
        vi("z_x2", f, ["B", 5000]),
        vi("k_x", f, ["B", 3000]),
        vi("k_c", TP.BOOL, [3000]),
        vi("u_x", i64, [3000]),
        vi("v_x", i64, ["B", 3]),
        vi("rd_x1", f, ["B", 70000]),
        vi("rd_x2", f, ["B", 6000, 64]),
        vi("rd_x3", f16, ["B", 7, 1000]),
        vi("rd_x4", f, [4, "B", 40]),
        vi("rd_x5", TP.INT32, ["B", 33]),
        vi("rd_x6", f, ["B", 10]),
        vi("p_x", f, ["B", 2 * 9, 66]),
        vi("p_x2", f, [1, 8, 60]),
        vi("a_x", f, ["B", 3, 40, 30]),
        vi("a_x2", f, [1, 2, 64, 48]),
        vi("cc_x", f16, ["B", 37, 20, 8]),
        vi("at_q", f16, ["B", 8, 37, 16]),
        vi("at_k", f16, ["B", 2, 70, 16]),
        vi("at_v", f16, ["B", 2, 70, 16]),
        vi("at_m", f16, [37, 70]),
        vi("b_q", f, ["B", 2, 5, 8]),
        vi("b_k", f, ["B", 2, 5, 8]),
        vi("b_v", f, ["B", 2, 5, 12]),
        vi("b_pk", f, ["B", 2, 7, 8]),
        vi("b_pv", f, ["B", 2, 7, 12]),
        vi("ra_x", f, ["B", 16, 13, 17]),
        vi("ra_rois", f, [37, 4]),
        vi("ra_bi", i64, [37]),
        vi("x_b", f, ["B", 200, 4]),
        vi("x_s", f, ["B", 5, 200]),
        vi("y_b", f, [1, 4500, 4]),
        vi("y_s", f, [1, 2, 4500]),
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
        vi("ga_y", f16, ["B", 5, 3, 24]),
        vi("gs_y", f, ["B", 3, 9, 11]),
        vi("gs_y2", f, ["B", 2, 4, 5, 6]),
        vi("o_y", f, ["B", 9, 50]),
        vi("e_y", f16, ["B", 4, 1000]),
        vi("n_y", f, ["B", 6, 40]),
        vi("n_mean", f, ["B", 1, 1]),
        vi("n_rstd", f, ["B", 1, 1]),
        vi("q_y", f16, ["B", 7, 1024]),
        vi("d_y", f, ["B", 49, 2]),
        vi("d_y2", f, ["B", 64, 2]),
        vi("d_y3", f, ["B", 8191, 2]),
        vi("d_y4", f, [2, 8193, 3, 2]),
        vi("d_y5", f, ["B", 97, 2]),
        vi("w_y", f, ["B", 11, 201, 2]),
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
        vi("rd_y1", f, ["B"]),
        vi("rd_y2", f, ["B", 1, 64]),
        vi("rd_y3", f16, ["B", 7, 1]),
        vi("rd_y4", f, ["B"]),
        vi("rd_y5", TP.INT32, [1, 33]),
        vi("rd_y6", f, ["B", 10]),
        vi("p_y", f, ["B", 2, 11, 13]),
        vi("p_y2", f, [1, 1, 4, 5, 6]),
        vi("a_y", f, ["B", 3, 12, 15]),
        vi("a_y2", f, [1, 2, 12, 12]),
        vi("cc_y", f16, ["B", 24, 29, 8]),
        vi("at_y", f16, ["B", 8, 37, 16]),
        vi("b_y", f, ["B", 2, 5, 12]),
        vi("b_pko", f, ["B", 2, 12, 8]),
        vi("b_pvo", f, ["B", 2, 12, 12]),
        vi("b_qk", f, ["B", 2, 5, 12]),
        vi("ra_y", f, [37, 16, 7, 7]),
        vi("x_y", i64, ["x_n", 3]),
        vi("y_y", i64, ["y_n", 3]),
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
        h.make_tensor("w_step", i64, [], [160]),
        h.make_tensor("w_len", i64, [], [400]),
        h.make_tensor("o_vals", f, [2], [0.0, 1.0]),
        h.make_tensor("rd_a0", i64, [1], [0]),
        h.make_tensor("rd_a1", i64, [1], [1]),
        h.make_tensor("rd_am1", i64, [1], [-1]),
        h.make_tensor("rd_a02", i64, [2], [0, 2]),
        h.make_tensor("p_img", i64, [2], [11, 13]),
        h.make_tensor("p_blk", i64, [2], [3, 3]),
        h.make_tensor("p_img2", i64, [3], [4, 5, 6]),
        h.make_tensor("p_blk2", i64, [3], [2, 2, 2]),
        h.make_tensor("a_scales", f, [4], [1, 1, 0.3, 0.5]),
        h.make_tensor("a_scales2", f, [4], [1, 1, 0.2, 0.25]),
        h.make_tensor("cc_shape", i64, [2], [24, 29]),
        h.make_tensor("x_max", i64, [1], [20]),
        h.make_tensor("x_iou", f, [1], [0.5]),
        h.make_tensor("x_st", f, [1], [0.1]),
        h.make_tensor("y_max", i64, [1], [50]),
        h.make_tensor("y_iou", f, [1], [0.4]),
    ]
    g = h.make_graph(nodes, "tpat_lowerings_check", inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 23)])  # RMSNormalization, Attention: 23
    m.ir_version = 10
    onnx.checker.check_model(m, full_check=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(OUT))
    print(OUT)


if __name__ == "__main__":
    np.random.seed(0)
    main()
