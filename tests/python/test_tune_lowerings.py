"""`tune` over every lowering a plugin has tactics of, the re-plan per lowering, and the tune
suite's keep/drop (scripts/device/tune_suite.py, tune_compare.py). No GPU: CUDA candidates are
built (CUDA C source, no nvcc) and given fake times; the suite runs on the llvm target.

Run: .venv/bin/python -m pytest tests/python/test_tune_lowerings.py -q
"""

import json
import os
import sys
from types import SimpleNamespace

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "device"))

onnx = pytest.importorskip("onnx")
tvm = pytest.importorskip("tvm")

import fake_tuning  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from tpat_bridge.errors import BridgeError  # noqa: E402
from tpat_bridge.tools import tune as T  # noqa: E402


def _reduce_max(path, shape=(64, 256)):
    """ReduceMax over the last axis: TPAT's reduce lowering (one-point space) and TVM's (2 x 2)."""
    g = helper.make_graph(
        [helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0, axes=[1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0]])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


def _workloads(work_dir):
    with open(os.path.join(work_dir, "database_workload.json")) as f:
        return [line for line in f if line.strip()]


def test_lowering_request_values(monkeypatch):
    monkeypatch.delenv("TPAT_LOWERING", raising=False)
    assert T._lowerings(None) == ["tpat", "tvm"]  # what the planner makes
    assert T._lowerings("both") == ["tpat", "tvm"]
    assert T._lowerings(["tvm", "tpat", "tvm"]) == ["tpat", "tvm"]  # planner order, once each
    assert T._lowerings("tvm") == ["tvm"] and T._lowerings(["tpat"]) == ["tpat"]
    monkeypatch.setenv("TPAT_LOWERING", "tvm")  # the planner makes TVM's tactics only
    assert T._lowerings(None) == ["tvm"]
    for bad in ("fast", [], ["tpat", "x"], 3, {"tpat": 1}):
        with pytest.raises(BridgeError) as e:
            T._lowerings(bad)
        assert e.value.code == "invalid_request"


def test_tvm_lowering_the_planner_refuses_is_not_searched(tmp_path):
    """GatherND: the planner never uses TVM's lowering (no bounds check), so neither does tune."""
    g = helper.make_graph(
        [helper.make_node("GatherND", ["data", "idx"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, [64, 32]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, [16, 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 32])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "gnd.onnx"))
    target = T.tuning_target("sm_90")
    mods, note = T.fused_modules(str(tmp_path / "gnd.onnx"), target, ["tpat", "tvm"])
    assert [m for m, _ in mods] == ["tpat"] and note.startswith("tpat lowering:")
    with pytest.raises(BridgeError) as e:
        T.fused_modules(str(tmp_path / "gnd.onnx"), target, ["tvm"])
    assert e.value.code == "unchecked_indices"


def test_both_lowerings_searched_then_replan_per_lowering(tmp_path, monkeypatch):
    """sm_90 without a GPU: tune looks at TPAT's and TVM's functions. TPAT's reduce is skipped:
    its CUDA design space has no schedule instruction (the function as written), a record
    MetaSchedule never applies. TVM's max is searched with all the trials (fake times: candidates
    10-20 us, the default schedule 1 ms, so it is kept). Re-planned with the database, TVM's plan
    names it and has MetaSchedule's kernel; TPAT's plan does not name it and is the untuned one."""
    from tpat_bridge.planning.plan import make_plan
    from tvm.s_tir import meta_schedule as ms

    fake_tuning.install(monkeypatch.setattr)
    monkeypatch.setenv("TPAT_TUNE_MEASURER", "inprocess")
    monkeypatch.delenv("TPAT_LOWERING", raising=False)
    model = _reduce_max(tmp_path / "rmax.onnx")
    wd = str(tmp_path / "db")
    ans = T.tune({"command": "tune", "model_path": model, "target": "sm_90", "work_dir": wd, "trials": 6})
    assert ans["lowering"] == ["tpat", "tvm"]
    by = {t["lowering"]: t for t in ans["tasks"]}
    assert set(by) == {"tpat", "tvm"}, ans["tasks"]
    assert by["tpat"]["name"] == "tpat_reduce" and by["tpat"]["skipped"].startswith("no schedule instruction")
    tvm_task = by["tvm"]
    assert tvm_task["name"] == "max" and tvm_task["kept"] is True and tvm_task["default_us"] == pytest.approx(1000.0)
    assert tvm_task["trials"] == 6 or (1 < tvm_task["trials"] < 6 and tvm_task.get("exhausted"))
    assert 10.0 <= tvm_task["best_us"] < 20.0 and tvm_task["records"] == tvm_task["trials"] + 1  # + the default
    assert len(_workloads(wd)) == 1

    untuned = {low: make_plan(model, "sm_90", low) for low in ("tpat", "tvm")}
    tuned = {low: make_plan(model, "sm_90", low, wd) for low in ("tpat", "tvm")}
    assert untuned["tpat"]["lowering"] == "reduce" and untuned["tvm"]["lowering"] == "tvm-default"
    assert tuned["tpat"]["lowering"] == "reduce" and tuned["tvm"]["lowering"] == "tvm-default"
    assert tuned["tvm"]["tuning_database"] == "db" and "tuning_database" not in untuned["tvm"]
    # TVM's tuned max is one of MetaSchedule's schedules (the default is recorded 100x slower)
    assert tuned["tvm"]["cuda_source"] != untuned["tvm"]["cuda_source"]
    # no record of TPAT's function: its plan is the untuned one and does not name the database
    assert "tuning_database" not in tuned["tpat"] and tuned["tpat"]["cuda_source"] == untuned["tpat"]["cuda_source"]

    # without the max records (tune drops a task that does not win), TVM's plan is untuned again
    target = T.tuning_target("sm_90")
    ((_, tvm_mod),), _ = T.fused_modules(model, target, ["tvm"])
    (task,) = ms.relax_integration.extract_tasks(tvm_mod, target)
    assert T.drop_workloads(wd, [task.dispatched[0]]) == tvm_task["records"]
    again = make_plan(model, "sm_90", "tvm", wd)
    assert "tuning_database" not in again and again["cuda_source"] == untuned["tvm"]["cuda_source"]


def test_compare_verdict_keeps_only_a_3_percent_win():
    from tune_compare import verdict

    def v(tactics):
        return verdict([dict(zip(("lowering", "untuned_us", "tuned_us"), t)) for t in tactics])

    # TPAT's untuned 27.1 us is the one to beat, not TVM's untuned 15000 us
    r = v([("tpat", 27.1, None), ("tvm", 15000.0, 22.5)])
    assert r["tuned_wins"] and (r["untuned_best"], r["tuned_best"]) == ("tpat", "tvm")
    assert (r["untuned_best_us"], r["tuned_best_us"]) == (27.1, 22.5)
    assert not v([("tpat", 27.1, None), ("tvm", 15000.0, 26.4)])["tuned_wins"]  # 2.6% faster: not enough
    assert v([("tpat", 100.0, 96.9)])["tuned_wins"] and not v([("tpat", 100.0, 97.0)])["tuned_wins"]
    r = v([("tpat", 10.0, None), ("tvm", 12.0, None)])
    assert not r["tuned_wins"] and r["tuned_best"] is None and r["untuned_best"] == "tpat"


def test_suite_keeps_and_drops_databases(tmp_path):
    """run_case with stand-in tune/compare: the database moves to kept/ only on a compare win; a
    case with nothing searched, a failed tune and a missing model each get their row."""
    import tune_suite as S

    models = tmp_path / "models"
    models.mkdir()
    for case in ("win", "lose", "hand", "broken"):
        _reduce_max(models / f"{case}.onnx")
    args = SimpleNamespace(dir=str(tmp_path / "suite"), models=str(models), target="llvm", trials=4, lowering="both")
    os.makedirs(args.dir)

    def fake_tune(req):
        os.makedirs(req["work_dir"], exist_ok=True)
        open(os.path.join(req["work_dir"], "database_workload.json"), "w").close()
        case = os.path.basename(req["work_dir"])
        assert req["lowering"] == ["tpat", "tvm"] and req["time_budget_s"] == 12.5
        if case == "broken":
            raise BridgeError("tvm_error", "boom")
        if case == "hand":
            return {"tasks": [{"name": "tpat_x", "lowering": "tpat", "trials": 0, "skipped": "hand-scheduled"}]}
        return {
            "tasks": [
                {
                    "name": "tpat_reduce",
                    "lowering": "tpat",
                    "trials": 1,
                    "best_us": 30.0,
                    "default_us": 31.0,
                    "kept": False,
                },
                {"name": "max", "lowering": "tvm", "trials": 3, "best_us": 20.0, "default_us": 900.0, "kept": True},
            ]
        }

    def fake_compare(model, db, target, lowerings):
        tuned = 20.0 if "win" in model else 29.5
        tactics = [
            {"lowering": "tpat", "untuned_us": 30.0, "tuned_us": None},
            {"lowering": "tvm", "untuned_us": 900.0, "tuned_us": tuned},
        ]
        return {"tactics": tactics, **S.tune_compare.verdict(tactics)}

    rows = {
        c: S.run_case(c, args, 12.5, tune=fake_tune, compare=fake_compare)
        for c in ("win", "lose", "hand", "broken", "gone")
    }
    kept = tmp_path / "suite" / "kept"
    assert rows["win"]["kept"] == "yes" and (kept / "win" / "database_workload.json").is_file()
    assert rows["win"]["untuned_best"] == "30.00 (tpat)" and rows["win"]["tuned_best"] == "20.00 (tvm)"
    assert rows["win"]["trials"] == "4" and rows["win"]["op"] == "ReduceMax"
    assert rows["win"]["tasks"] == "tpat:tpat_reduce=30.00/31.00:dropped tvm:max=20.00/900.00:kept"
    assert rows["win"]["tactics"] == "tpat=30.00/- tvm=900.00/20.00"
    assert rows["lose"]["kept"].startswith("no (slower") and not (kept / "lose").exists()
    assert rows["hand"]["kept"] == "no (nothing to tune)" and rows["hand"]["tasks"] == "tpat:tpat_x(skipped)"
    assert rows["broken"]["kept"] == "no (tune failed: tvm_error)" and rows["broken"]["failed"]
    assert rows["gone"]["failed"] and rows["gone"]["kept"].startswith("no (no ")
    for case in ("lose", "hand"):  # dropped databases are deleted
        assert not (tmp_path / "suite" / "db" / case).exists()
    S.write_summary(str(tmp_path / "s.tsv"), list(rows.values()))
    lines = (tmp_path / "s.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(S.COLUMNS) and len(lines) == 6


def test_suite_on_the_cpu(tmp_path, monkeypatch):
    """The whole suite for real on the llvm target (tiny trials): both lowerings searched into one
    database, both tactics timed untuned and (where records applied) tuned, one summary row."""
    import tune_suite as S

    monkeypatch.setenv("TPAT_TUNE_POPULATION", "16")
    monkeypatch.delenv("TPAT_LOWERING", raising=False)
    models = tmp_path / "models"
    models.mkdir()
    _reduce_max(models / "rmax.onnx", (32, 128))
    out = tmp_path / "suite"
    rc = S.main(
        ["--dir", str(out), "--models", str(models), "--target", "llvm", "--trials", "3", "--budget", "60", "rmax"]
    )
    assert rc == 0
    answer = json.loads((out / "rmax.tune.json").read_text())
    assert answer["lowering"] == ["tpat", "tvm"]
    # on the CPU TPAT's reduce has a space too: both lowerings' functions were searched into one
    # database (a task that lost to its default moved to the rejected files)
    assert sorted((t["lowering"], t["name"]) for t in answer["tasks"]) == [("tpat", "tpat_reduce"), ("tvm", "max")]
    assert all(t["trials"] >= 1 and "skipped" not in t for t in answer["tasks"])
    header, line = (out / "summary.tsv").read_text().splitlines()
    row = dict(zip(header.split("\t"), line.split("\t")))
    assert row["case"] == "rmax" and row["op"] == "ReduceMax" and row["trials"] == "3"
    compare = json.loads((out / "rmax.compare.json").read_text())
    assert [t["lowering"] for t in compare["tactics"]] == ["tpat", "tvm"]
    assert all(t["untuned_us"] > 0 for t in compare["tactics"])
    # tune kept a task's records only where it beat that task's default; the compare applied them
    kept_tasks = {t["lowering"] for t in answer["tasks"] if t.get("kept")}
    assert {t["lowering"] for t in compare["tactics"] if t["tuned_us"] is not None} == kept_tasks
    assert (row["kept"] == "yes") == compare["tuned_wins"] == (out / "kept" / "rmax").is_dir()
    assert row["tactics"].startswith("tpat=") and " tvm=" in row["tactics"]


def test_compare_flushes_before_every_timed_run(tmp_path, monkeypatch):
    """The GPU timing path on the CPU: one run per repeat, FLUSH_FUNC (a copy between two device
    buffers) called before each, outside the timed region."""
    import tune_compare as C
    import tvm_ffi

    monkeypatch.setattr(C, "REPEATS", 4)
    target = T.tuning_target("llvm")
    model = _reduce_max(tmp_path / "rmax.onnx", (8, 32))
    ((_, mod),), _ = T.fused_modules(model, target, ["tvm"])
    dev = tvm.cpu(0)
    keep = C._flusher(dev, 1 << 16)
    flush = tvm_ffi.get_global_func(C.FLUSH_FUNC)
    calls = []

    def counting(*args):
        calls.append(len(args))
        flush(*args)

    tvm_ffi.register_global_func(C.FLUSH_FUNC, counting, override=True)
    args = C._inputs(T.load_node(model), dev, __import__("numpy").random.default_rng(0))
    us = C.time_build(mod, target, args, dev, flush=True)
    assert us > 0 and len(calls) == 4 and keep[0].shape == (1 << 14,)
