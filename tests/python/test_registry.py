"""The lowering registry (python/tpat_bridge/lowerings/registry.py): one table of `Lowering`s, every
lowering declared in the package is in it, and a choice records who declined and why."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import onnx
from onnx import TensorProto as TP
from onnx import helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import tpat_bridge.lowerings as pkg  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.lowerings.protocol import Decline, Lowering, Selection  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402


def test_one_table_of_lowerings_with_unique_names():
    names = [low.name for low in registry.LOWERINGS]
    assert len(names) == len(set(names)) == 25
    for low in registry.LOWERINGS:
        assert isinstance(low, Lowering)
        assert re.fullmatch(r"[a-z0-9_]+", low.name) and low.name != "tvm_default"
        assert low.ops and all(isinstance(op, str) for op in low.ops)
        if low.primfunc is not None:  # a lowering that names its PrimFunc schedules it
            assert type(low).schedule is not Lowering.schedule, low.name
    assert set(registry.TPAT_OPS) == {
        "ScatterND",
        "ScatterElements",
        "TopK",
        "Resize",
        "CumSum",
        "LayerNormalization",
        "RMSNormalization",
        "DFT",
        "STFT",
        "GatherND",
        "Gather",
        "GatherElements",
        "OneHot",
        "GridSample",
        "Gelu",
        "NonZero",
        "Compress",
        "Unique",
        "NonMaxSuppression",
        "Col2Im",
        "CenterCropPad",
        "NegativeLogLikelihoodLoss",
        "SoftmaxCrossEntropyLoss",
        "Attention",
        "ReduceMax",
        "ReduceMin",
        "ReduceSum",
        "ReduceMean",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceSumSquare",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "RoiAlign",
    }


def test_every_lowering_in_the_package_is_registered():
    """A module that declares a lowering and forgets the registry line fails here."""
    declared = []
    for m in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"tpat_bridge.lowerings.{m.name}")
        declared += [v for v in vars(mod).values() if isinstance(v, Lowering)]
    assert {id(v) for v in declared} == {id(v) for v in registry.LOWERINGS}


def _model(tmp_path, node, inputs, outputs, inits=(), opset=20):
    g = helper.make_graph([node], "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    return load_node(str(path))


def test_a_choice_keeps_the_decline_reason(tmp_path):
    # TopK whose K is a runtime input: TPAT's TopK declines, with its reason
    info = _model(
        tmp_path,
        helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1),
        [helper.make_tensor_value_info("x", TP.FLOAT, [4, 8]), helper.make_tensor_value_info("k", TP.INT64, [1])],
        [helper.make_tensor_value_info("v", TP.FLOAT, [4, 2]), helper.make_tensor_value_info("i", TP.INT64, [4, 2])],
        [],
    )
    choice = registry.choose(info)
    assert choice.lowering is None and choice.selection is None
    assert choice.declined == [("topk", "K must be a constant")]
    assert choice.declined_json() == [{"lowering": "topk", "reason": "K must be a constant"}]
    assert choice.reason == "K must be a constant"


def test_a_choice_names_the_lowering_and_its_selection(tmp_path):
    info = _model(
        tmp_path,
        helper.make_node("Gelu", ["x"], ["y"]),
        [helper.make_tensor_value_info("x", TP.FLOAT16, ["n", 64])],
        [helper.make_tensor_value_info("y", TP.FLOAT16, ["n", 64])],
    )
    choice = registry.choose(info)
    assert choice.lowering is registry.BY_NAME["gelu"] and choice.declined == []
    assert isinstance(choice.selection, Selection) and not isinstance(choice.selection, Decline)
    assert choice.selection.vec == 8 and choice.selection.describe() == "gelu (none, 8 element(s) per thread)"


def test_ops_without_a_lowering_have_no_candidates(tmp_path):
    info = _model(
        tmp_path,
        helper.make_node("Relu", ["x"], ["y"]),
        [helper.make_tensor_value_info("x", TP.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TP.FLOAT, [4])],
    )
    choice = registry.choose(info)
    assert choice.lowering is None and choice.declined == [] and choice.reason == "no TPAT lowering for this op"


def test_attention_prefill_of_1024_tokens_is_taken():
    """The size check is per tensor: Q, K and V of a 1024-token GQA prefill (2^22, 2^20, 2^20
    elements) multiplied together reach 2^62 and once declined the bench case."""
    info = load_node(str(ROOT / "bench" / "models" / "attention_gqa_prefill_fp16.onnx"))
    choice = registry.choose(info)
    assert choice.lowering is not None and choice.lowering.name == "attention", choice.declined_json()
