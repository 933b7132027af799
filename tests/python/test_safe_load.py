"""The bridge's model loader (tpat_bridge.safe_load) on hostile external data, and shape
inference on malformed constants (an int64 constant with 0 or 3 bytes segfaults onnx's)."""

import os
import sys
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

from tpat_bridge.errors import BridgeError  # noqa: E402
from tpat_bridge.planning import safe_load  # noqa: E402
from tpat_bridge.planning.shapes import infer_model, infer_shapes  # noqa: E402

SECRET = b"TPAT-PY-SECRET" + b"S" * 100


def topk_model(entries, dims=(1,)):
    k = TensorProto(name="K", data_type=TensorProto.INT64, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for key, value in entries:
        k.external_data.add(key=key, value=value)
    g = helper.make_graph(
        [helper.make_node("TopK", ["x", "K"], ["v", "i"], name="topk")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("i", TensorProto.INT64, None),
        ],
        [k],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.bin").write_bytes(SECRET)
    return tmp_path


def save(scratch, entries, dims=(1,)):
    path = scratch / "model" / "m.onnx"
    onnx.save(topk_model(entries, dims), str(path))
    return str(path)


@pytest.mark.parametrize(
    "location", ["../outside/secret.bin", "/etc/passwd", "sub/../../outside/secret.bin", "..", "a\\..\\x"]
)
def test_paths_outside_the_folder_are_refused(scratch, location):
    with pytest.raises(BridgeError, match="outside the model's folder"):
        safe_load.load_model(save(scratch, [("location", location), ("length", "8")]))


@pytest.mark.parametrize("location", ["data.bin", "sub/secret.bin"])
def test_symbolic_links_are_refused(scratch, location):
    os.symlink(scratch / "outside" / "secret.bin", scratch / "model" / "data.bin")
    os.symlink(scratch / "outside", scratch / "model" / "sub")
    with pytest.raises(BridgeError, match="symbolic link") as e:
        safe_load.load_model(save(scratch, [("location", location), ("length", "8")]))
    assert "TPAT-PY-SECRET" not in str(e.value)


def test_a_fifo_is_refused_without_blocking(scratch):
    os.mkfifo(scratch / "model" / "fifo")
    start = time.monotonic()
    with pytest.raises(BridgeError, match="not a regular file"):
        safe_load.load_model(save(scratch, [("location", "fifo")]))
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    "entries,message",
    [
        ([("location", "k.bin"), ("offset", "4"), ("length", "8")], "past the end"),
        ([("location", "k.bin"), ("offset", "-1")], "not a byte count"),
        ([("location", "k.bin"), ("length", "\u00b2")], "not a byte count"),  # isdigit() but not int()
        ([("location", "k.bin"), ("location", "k.bin")], "given twice"),
        ([("location", "k.bin"), ("length", "4")], "its type and dims need 8"),
    ],
)
def test_bounds(scratch, entries, message):
    (scratch / "model" / "k.bin").write_bytes((5).to_bytes(8, "little"))
    with pytest.raises(BridgeError, match=message):
        safe_load.load_model(save(scratch, entries))


def test_overlapping_tensors_are_refused_and_valid_data_is_read(scratch):
    (scratch / "model" / "k.bin").write_bytes((5).to_bytes(8, "little"))
    m = safe_load.load_model(save(scratch, [("location", "k.bin")]))
    assert onnx.numpy_helper.to_array(m.graph.initializer[0]).tolist() == [5]
    model = topk_model([("location", "k.bin")])
    model.graph.initializer.append(model.graph.initializer[0])
    model.graph.initializer[1].name = "K2"
    path = scratch / "model" / "two.onnx"
    onnx.save(model, str(path))
    with pytest.raises(BridgeError, match="overlapping"):
        safe_load.load_model(str(path))


@pytest.mark.parametrize("nbytes", [0, 3])
def test_malformed_int64_constant_does_not_crash_shape_inference(scratch, nbytes):
    k = TensorProto(name="K", data_type=TensorProto.INT64, dims=[1], raw_data=b"\x01" * nbytes)
    g = helper.make_graph(
        [
            helper.make_node("TopK", ["x", "K"], ["v", "i"], name="topk"),
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
        ],
        [k],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = scratch / "model" / "bad.onnx"
    onnx.save(model, str(path))
    answer = infer_shapes({"model_path": str(path)})  # in process: a segfault would kill pytest
    assert any("left out of shape inference" in w for w in answer["warnings"])
    shapes = {t["name"]: t["shape"] for t in answer["tensors"]}
    assert shapes["r"] == [{"value": 4}, {"value": 8}]  # the rest of the model is still inferred
    _, warnings = infer_model(model)
    assert warnings


@pytest.mark.parametrize("nbytes", [0, 3])
def test_malformed_constant_node_is_left_out_and_the_rest_inferred(nbytes):
    k = TensorProto(name="Kc", data_type=TensorProto.INT64, dims=[1], raw_data=b"\x01" * nbytes)
    g = helper.make_graph(
        [
            helper.make_node("Constant", [], ["K"], value=k, name="c"),
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("TopK", ["x", "K"], ["v", "i"], name="topk"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [
            helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    inferred, warnings = infer_model(model)
    assert any("Constant 'c'" in w for w in warnings)
    assert [n.name for n in inferred.graph.node] == ["relu", "topk"]
    r = next(o for o in inferred.graph.output if o.name == "r")
    assert [d.dim_value for d in r.type.tensor_type.shape.dim] == [4, 8]
    assert [n.name for n in model.graph.node] == ["c", "relu", "topk"]  # the caller's model is untouched
