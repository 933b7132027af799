"""The real-model suite: third-party architectures, random weights, small configs and inputs.

Each entry builds a torch module and example inputs with the package's own classes; export.py
exports it with torch.onnx. Runs in the models venv (.venv-models, requirements.lock here), never
in TPAT's own venv. `SMALL` is the subset `make test` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Model:
    name: str
    package: str  # the distribution whose classes build it (its version goes into the meta file)
    what: str  # one line for the results table
    build: Callable[[], tuple[torch.nn.Module, tuple, list[str]]]  # module, inputs, input names
    exporter: str = "torchscript"  # "torchscript" (torch.onnx's tracer) or "dynamo"
    opset: int = 18
    optimize: bool = True  # dynamo only: torch.onnx's onnxscript optimizer
    fold: bool = False  # fold constants with ONNX Runtime afterwards (onnx-graphsurgeon)
    notes: list[str] = field(default_factory=list)


# --- torchvision -------------------------------------------------------------------------------

_TV_OPS: list = []  # the torch.library.Library defining the Python ops, kept alive
_TV: dict = {}


def torchvision_with_python_ops():
    """Import torchvision; when its compiled ops do not load (PyPI's torchvision 0.28 is a CUDA
    build, the torch here is the CPU one), define nms and roi_align in Python first, so the models
    trace to `torchvision::nms` / `torchvision::roi_align` and torchvision's own ONNX symbolics
    (NonMaxSuppression, RoiAlign) apply, as they would with working ops."""
    if "module" in _TV:
        return _TV["module"]
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        raise ImportError("torchvision is not installed")
    has_ops = True
    try:
        torch.ops.load_library(_torchvision_c_path(spec))
    except Exception:  # noqa: BLE001 - any load failure means: no compiled ops
        has_ops = False
    if not has_ops:
        lib = torch.library.Library("torchvision", "DEF")
        _TV_OPS.append(lib)  # keep the library (and its definitions) alive
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define(
            "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
            "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
        )
        lib.impl("nms", _nms, "CompositeExplicitAutograd")
        lib.impl("qnms", _nms, "CompositeExplicitAutograd")
    import sys

    import torchvision
    import torchvision.extension

    tv_roi_align = sys.modules["torchvision.ops.roi_align"]  # the module (torchvision.ops.roi_align is the function)

    if not has_ops:
        lib.impl("roi_align", tv_roi_align._roi_align, "CompositeExplicitAutograd")
        torchvision.extension._has_ops = _has_ops_true
        tv_roi_align._has_ops = _has_ops_true
    _TV["module"] = torchvision
    return torchvision


def _has_ops_true() -> bool:
    # A plain function, not a lambda: torchvision scripts some helpers while tracing.
    return True


def _torchvision_c_path(spec) -> str:
    import glob
    import os

    folder = os.path.dirname(spec.origin)
    found = glob.glob(os.path.join(folder, "_C*.so"))
    if not found:
        raise OSError("no torchvision/_C*.so")
    return found[0]


def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS (torchvision's definition) in plain torch."""
    from torchvision.ops.boxes import box_iou

    order = torch.argsort(scores, descending=True)
    iou = box_iou(dets[order], dets[order])
    removed = torch.zeros(order.numel(), dtype=torch.bool)
    keep = []
    for i in range(order.numel()):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


class _DetectorWrapper(torch.nn.Module):
    """Tensor in, tensors out (torchvision detectors take and return lists/dicts)."""

    def __init__(self, model, keys):
        super().__init__()
        self.model, self.keys = model.eval(), keys

    def forward(self, image):
        out = self.model([image[0]])[0]
        return tuple(out[k] for k in self.keys)


def _image(size=(320, 320)):
    torch.manual_seed(0)
    return torch.rand(1, 3, *size)


def _mobilenet_fpn():
    tv = torchvision_with_python_ops()
    from torchvision.models.detection.backbone_utils import mobilenet_backbone

    return tv, mobilenet_backbone(backbone_name="mobilenet_v3_large", fpn=True, weights=None, trainable_layers=0)


def fasterrcnn():
    tv = torchvision_with_python_ops()
    m = tv.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=5, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50
    )
    return _DetectorWrapper(m, ["boxes", "labels", "scores"]), (_image(),), ["image"]


def ssdlite():
    tv = torchvision_with_python_ops()
    m = tv.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
    return _DetectorWrapper(m, ["boxes", "labels", "scores"]), (_image(),), ["image"]


def retinanet():
    tv, backbone = _mobilenet_fpn()
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    anchors = AnchorGenerator(sizes=((32,), (64,), (128,)), aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    m = RetinaNet(
        backbone,
        num_classes=5,
        anchor_generator=anchors,
        min_size=320,
        max_size=320,
        topk_candidates=100,
        detections_per_img=50,
    )
    return _DetectorWrapper(m, ["boxes", "labels", "scores"]), (_image(),), ["image"]


def maskrcnn():
    tv, backbone = _mobilenet_fpn()
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    anchors = AnchorGenerator(sizes=((32,), (64,), (128,)), aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    m = MaskRCNN(
        backbone,
        num_classes=5,
        rpn_anchor_generator=anchors,
        min_size=320,
        max_size=320,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
        box_detections_per_img=20,
    )
    return _DetectorWrapper(m, ["boxes", "labels", "scores", "masks"]), (_image(),), ["image"]


class _Raft(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, a, b):
        return self.model(a, b, num_flow_updates=2)[-1]


def raft_small():
    tv = torchvision_with_python_ops()
    m = tv.models.optical_flow.raft_small(weights=None)
    torch.manual_seed(0)
    return _Raft(m), (torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)), ["image1", "image2"]


# --- torch-geometric ---------------------------------------------------------------------------


def _graph(nodes=24, edges=64, features=8):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(nodes, features, generator=g)
    edge_index = torch.randint(0, nodes, (2, edges), generator=g)
    return x, edge_index


class _GNN(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, x, edge_index):
        return self.model(x, edge_index)


def gcn():
    from torch_geometric.nn import GCN

    return _GNN(GCN(in_channels=8, hidden_channels=16, num_layers=2, out_channels=4)), _graph(), ["x", "edge_index"]


def gat():
    from torch_geometric.nn import GAT

    return (
        _GNN(GAT(in_channels=8, hidden_channels=16, num_layers=2, out_channels=4, heads=2)),
        _graph(),
        ["x", "edge_index"],
    )


def graphsage():
    from torch_geometric.nn import GraphSAGE

    return (
        _GNN(GraphSAGE(in_channels=8, hidden_channels=16, num_layers=2, out_channels=4)),
        _graph(),
        ["x", "edge_index"],
    )


# --- MONAI -------------------------------------------------------------------------------------


class _Registration(torch.nn.Module):
    """LocalNet predicts a dense displacement field; Warp resamples the moving image with it."""

    def __init__(self):
        super().__init__()
        from monai.networks.blocks import Warp
        from monai.networks.nets import LocalNet

        self.net = LocalNet(
            spatial_dims=3, in_channels=2, num_channel_initial=4, extract_levels=(0, 1, 2), out_channels=3
        )
        self.warp = Warp(mode="bilinear", padding_mode="border")

    def forward(self, moving, fixed):
        ddf = self.net(torch.cat([moving, fixed], dim=1))
        return self.warp(moving, ddf), ddf


def monai_localnet():
    torch.manual_seed(0)
    return _Registration().eval(), (torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)), ["moving", "fixed"]


# --- transformers ------------------------------------------------------------------------------


class _TimeSeries(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, past_values, past_time_features, past_observed_mask, future_values, future_time_features):
        return self.model(
            past_values=past_values,
            past_time_features=past_time_features,
            past_observed_mask=past_observed_mask,
            future_values=future_values,
            future_time_features=future_time_features,
            use_cache=False,
            return_dict=True,
        ).last_hidden_state


def _ts_inputs(context=16, lags=(1, 2, 3), prediction=4, time_features=1):
    g = torch.Generator().manual_seed(0)
    past = context + max(lags)
    return (
        torch.rand(1, past, generator=g),
        torch.rand(1, past, time_features, generator=g),
        torch.ones(1, past),
        torch.rand(1, prediction, generator=g),
        torch.rand(1, prediction, time_features, generator=g),
    )


_TS_NAMES = ["past_values", "past_time_features", "past_observed_mask", "future_values", "future_time_features"]
_TS_CONFIG = dict(
    prediction_length=4,
    context_length=16,
    lags_sequence=[1, 2, 3],
    num_time_features=1,
    d_model=16,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=16,
    decoder_ffn_dim=16,
)


def autoformer():
    from transformers import AutoformerConfig, AutoformerModel
    from transformers.models.autoformer import modeling_autoformer

    # These fixed windows have no padding, so eager mode uses no attention mask. Under torch.export
    # the mask helper materialises an all-ones mask, which Autoformer's auto-correlation then views
    # with the wrong size (a transformers 5.24 bug): keep eager mode's None.
    modeling_autoformer.create_bidirectional_mask = _no_mask

    torch.manual_seed(0)
    return _TimeSeries(AutoformerModel(AutoformerConfig(**_TS_CONFIG))), _ts_inputs(), _TS_NAMES


def _no_mask(**_kwargs):
    return None


def informer():
    from transformers import InformerConfig, InformerModel

    torch.manual_seed(0)
    return _TimeSeries(InformerModel(InformerConfig(**_TS_CONFIG))), _ts_inputs(), _TS_NAMES


class _PatchTST(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, past_values):
        return self.model(past_values=past_values, return_dict=True).prediction_outputs


def patchtst():
    from transformers import PatchTSTConfig, PatchTSTForPrediction

    torch.manual_seed(0)
    cfg = PatchTSTConfig(
        num_input_channels=2,
        context_length=32,
        patch_length=8,
        patch_stride=8,
        prediction_length=4,
        d_model=16,
        num_attention_heads=2,
        num_hidden_layers=1,
        ffn_dim=16,
    )
    return _PatchTST(PatchTSTForPrediction(cfg)), (torch.rand(1, 32, 2),), ["past_values"]


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids, attention_mask):
        # an explicit mask: without one transformers looks for packed sequences (torch.diff, no ONNX export)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=True).logits


def mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    cfg = MixtralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=64,
        experts_implementation="eager",
    )  # the per-expert loop: the default grouped_mm has no ONNX export
    ids = torch.randint(0, 64, (1, 8))
    return _Logits(MixtralForCausalLM(cfg)), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"]


class _Switch(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


def switch_transformers():
    from transformers import SwitchTransformersConfig, SwitchTransformersEncoderModel

    torch.manual_seed(0)
    cfg = SwitchTransformersConfig(
        vocab_size=64,
        d_model=16,
        d_kv=8,
        d_ff=16,
        num_layers=2,
        num_sparse_encoder_layers=1,
        num_heads=2,
        num_experts=4,
        expert_capacity=8,
        num_decoder_layers=0,
    )
    ids = torch.randint(0, 64, (1, 8))
    return _Switch(SwitchTransformersEncoderModel(cfg)), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"]


class _Detr(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, pixel_values):
        out = self.model(pixel_values=pixel_values, return_dict=True)
        return out.logits, out.pred_boxes


def deformable_detr():
    from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 32, 64],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    # decoder_layers=2: with one, transformers 5.24 fails to tie bbox_embed's weights at construction
    cfg = DeformableDetrConfig(
        backbone_config=backbone,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=10,
        num_feature_levels=3,
        num_labels=5,
    )
    return _Detr(DeformableDetrForObjectDetection(cfg)), (torch.rand(1, 3, 64, 64),), ["pixel_values"]


MODELS: list[Model] = [
    Model("fasterrcnn_mobilenet_v3_320", "torchvision", "Faster R-CNN, MobileNetV3-Large 320 FPN", fasterrcnn),
    Model("ssdlite320_mobilenet_v3", "torchvision", "SSDlite 320, MobileNetV3-Large", ssdlite),
    Model("retinanet_mobilenet_v3", "torchvision", "RetinaNet, MobileNetV3-Large FPN backbone", retinanet),
    Model("maskrcnn_mobilenet_v3", "torchvision", "Mask R-CNN, MobileNetV3-Large FPN backbone", maskrcnn),
    Model("raft_small", "torchvision", "RAFT small optical flow, 2 flow updates", raft_small),
    Model("gcn", "torch-geometric", "GCN, 2 layers", gcn),
    Model("gat", "torch-geometric", "GAT, 2 layers, 2 heads", gat),
    Model("graphsage", "torch-geometric", "GraphSAGE, 2 layers, mean aggregation", graphsage),
    Model(
        "monai_localnet_warp", "monai", "LocalNet 3-D registration + Warp (5-D GridSample)", monai_localnet, opset=20
    ),
    Model("autoformer", "transformers", "Autoformer (auto-correlation: rfft/irfft)", autoformer, exporter="dynamo"),
    Model("informer", "transformers", "Informer (ProbSparse attention)", informer, exporter="dynamo"),
    Model("patchtst", "transformers", "PatchTST forecasting", patchtst, exporter="dynamo"),
    Model("mixtral_moe", "transformers", "Mixtral MoE, 4 experts, top-2", mixtral),
    Model("switch_transformers", "transformers", "Switch Transformers encoder, 4 experts", switch_transformers),
    Model(
        "deformable_detr",
        "transformers",
        "Deformable DETR (multi-scale deformable attention)",
        deformable_detr,
        exporter="dynamo",
        optimize=False,
        fold=True,
    ),
]

BY_NAME = {m.name: m for m in MODELS}

# The subset `make test` exports and runs: small and quick through the whole pipeline.
SMALL = ["graphsage", "monai_localnet_warp", "patchtst"]
