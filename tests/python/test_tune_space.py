"""What `tune` searches (python/tpat_bridge/tools/tune.py), without searching: symbolic dims bound
to concrete values, each extracted task classified (searchable / skipped with a reason), the
environment knobs parsed, and the keep-only-winners database rewrite. Fast (no MetaSchedule search).

Run: .venv/bin/python -m pytest tests/python/test_tune_space.py -q
"""

import json
import os
import sys

import pytest
import tvm_ffi

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

onnx = pytest.importorskip("onnx")
tvm = pytest.importorskip("tvm")

from onnx import TensorProto, helper  # noqa: E402
from tpat_bridge.errors import BridgeError  # noqa: E402
from tpat_bridge.tools import tune as T  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402


def _model(path, op, shape, out_shape=None):
    node = helper.make_node(op, ["in0"], ["out0"])
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("in0", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out0", TensorProto.FLOAT, out_shape or shape)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


def _dims(path):
    m = onnx.load(path)
    return [
        [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
        for v in m.graph.input
    ]


def test_reference_bindings_and_specialize(tmp_path):
    plug = tmp_path / "Relu_1"
    (plug / "reference").mkdir(parents=True)
    model = _model(plug / "Relu_1.onnx", "Relu", ["s0", 16, "s1"])
    (plug / "reference" / "manifest.json").write_text(
        json.dumps(
            {"cases": [{"bindings": {"s0": 3, "s1": 5}}, {"bindings": {"s0": 7, "s1": 2}}, {"bindings": {"s0": True}}]}
        )
    )
    assert T.reference_bindings(model) == {"s0": 7, "s1": 5}  # the largest per symbol; bools ignored
    out = str(tmp_path / "spec.onnx")
    used, syms = T.specialize_model(model, {"s0": 64, "zz": 9}, out)
    assert syms == ["s0", "s1"] and used == {"s0": 64, "s1": 1}  # unbound symbols get 1, unknown names ignored
    assert _dims(out) == [[64, 16, 1]]
    # a static model needs no copy
    static = _model(tmp_path / "static.onnx", "Relu", [4, 4])
    assert T.specialize_model(static, {"s0": 2}, str(tmp_path / "none.onnx")) is None
    assert not (tmp_path / "none.onnx").exists()
    assert T.reference_bindings(static) == {}


def test_env_knobs(monkeypatch):
    monkeypatch.setenv(T.BINDINGS_ENV, "s0=64, batch=8")
    assert T._env_bindings() == {"s0": 64, "batch": 8}
    for bad in ("s0", "s0=-1", "=4", "s0=x", "s0=0"):
        monkeypatch.setenv(T.BINDINGS_ENV, bad)
        with pytest.raises(BridgeError) as e:
            T._env_bindings()
        assert e.value.code == "invalid_request"
    monkeypatch.delenv(T.POPULATION_ENV, raising=False)
    assert T._search_strategy() == "evolutionary"
    monkeypatch.setenv(T.POPULATION_ENV, "16")
    assert isinstance(T._search_strategy(), ms.search_strategy.EvolutionarySearch)
    monkeypatch.setenv(T.POPULATION_ENV, "2")
    with pytest.raises(BridgeError):
        T._search_strategy()


def test_task_space_classifies(tmp_path):
    """Static function: a design space (searched). Symbolic: skipped (MetaSchedule samples no
    candidate for it; tune() binds the dims first). Hand-scheduled: skipped, with the reason."""
    target = T.tuning_target("llvm")
    sym = _model(tmp_path / "sym.onnx", "Relu", ["s0", 32])
    mod, _info, _note = T.build_fused_module(sym, target, "tvm")
    (task,) = ms.relax_integration.extract_tasks(mod, target)
    kind, reason = T.task_space(task, target)
    assert kind == "skip" and "symbolic shape" in reason and "s0" in reason

    used, _ = T.specialize_model(sym, {"s0": 8}, str(tmp_path / "spec.onnx"))
    assert used == {"s0": 8}
    mod, _info, _note = T.build_fused_module(str(tmp_path / "spec.onnx"), target, "tvm")
    (task,) = ms.relax_integration.extract_tasks(mod, target)
    assert T.task_space(task, target) == ("tune", None)
    assert T._symbolic_vars(task.dispatched[0]["main"]) == []

    scheduled = task.dispatched[0]["main"].with_attr("tirx.is_scheduled", True)
    fake = ms.ExtractedTask(
        task.task_name, tvm.IRModule({"main": scheduled}), target, [tvm.IRModule({"main": scheduled})], 1
    )
    kind, reason = T.task_space(fake, target)
    assert kind == "skip" and reason.startswith("hand-scheduled TPAT lowering")


def test_drop_workloads_moves_records(tmp_path):
    """Losing tasks' records leave the database (rejected_*.json); the winners' stay and apply."""
    target = T.tuning_target("llvm")
    mods = []
    for op in ("Relu", "Sigmoid"):
        mod, _i, _n = T.build_fused_module(_model(tmp_path / f"{op}.onnx", op, [8, 8]), target, "tvm")
        (task,) = ms.relax_integration.extract_tasks(mod, target)
        mods.append(task.dispatched[0])
    wd = str(tmp_path / "db")
    os.makedirs(wd)
    db = T.open_database(wd)
    for m in mods:
        wl = db.commit_workload(m)
        sch = tvm.s_tir.Schedule(m)
        db.commit_tuning_record(
            ms.database.TuningRecord(sch.trace, wl, [1e-6], target, ms.arg_info.ArgInfo.from_prim_func(m["main"]))
        )
    assert T.drop_workloads(wd, [mods[1]]) == 1
    db = T.open_database(wd)
    kept = db.get_all_tuning_records()
    assert len(kept) == 1 and bool(tvm_ffi.structural_equal(kept[0].workload.mod, mods[0]))
    assert not db.has_workload(mods[1])
    assert os.path.isfile(os.path.join(wd, "rejected_tuning_record.json"))
    assert T.drop_workloads(wd, [mods[1]]) == 0  # nothing left to drop
