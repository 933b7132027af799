"""The two compare failures of the 2026-11-29 H200 tune run, on this CPU (sm_90 builds, no GPU).

reducelogsumexp_vocab ("AssertionError: ", no message) and onehot_vocab (FuseTIR's "Inconsistent
buffers ... mapped to the same relax var") failed in tune_compare before any timing: it compiled the
fused module with `tvm.compile`'s default CUDA pipeline, which runs LegalizeOps .. FuseTIR again over
functions already fused and dlight's unguarded rules. tune_compare now builds with
planning.pipeline.compile_fused (the planner's pipeline from dlight on). The models are small
versions of the two cases (tests/fixtures/tuning/make_small_models.py), the databases real sm_90
schedules with fake times (make_fake_db.py: lse_small_sm90, onehot_small_sm90).

Run: .venv/bin/python -m pytest tests/python/test_tune_compare_build.py -q
"""

import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tuning")
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "device"))
sys.path.insert(0, FIXTURES)

onnx = pytest.importorskip("onnx")
tvm = pytest.importorskip("tvm")

import make_small_models  # noqa: E402
import tune_compare as C  # noqa: E402
from tpat_bridge.lowerings import prelude  # noqa: E402
from tpat_bridge.planning.pipeline import compile_fused  # noqa: E402

CASES = {"lse_small": make_small_models.lse, "onehot_small": make_small_models.onehot}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name, make in CASES.items():
        out[name] = str(d / f"{name}.onnx")
        make(out[name])
    return out


def _cuda_source(ex) -> str:
    return "".join(m.inspect_source("cuda") for m in ex.mod.imports if m.kind == "cuda") or "".join(
        sub.inspect_source("cuda") for m in ex.mod.imports for sub in m.imports if sub.kind == "cuda"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_compare_builds_every_tactic_untuned_and_tuned(models, name):
    """tune_compare's build path for sm_90 (no timing): both tactics untuned, TVM's tuned with the
    fixture database's records applied; every build has CUDA kernels. The untuned TVM module is
    also checked to still break tvm.compile's default pipeline, so this test is the regression
    it claims to be (a TVM that fixes that makes this check fail: then drop it)."""
    prelude.install_cuda_postproc()
    target = C.tuning_target("sm_90")
    tactics = C.tactic_modules(models[name], os.path.join(FIXTURES, f"{name}_sm90"), target)
    assert sorted(t[0] for t in tactics) == ["tpat", "tvm"]
    for made_by, mod, tuned, tasks_tuned in tactics:
        if made_by == "tvm":
            assert tasks_tuned >= 1, "the fixture's records apply to TVM's functions"
            with pytest.raises(Exception) as e:  # the build the H200 run used
                tvm.compile(mod, target=target)
            assert e.type.__name__ in ("AssertionError", "InternalError")
        assert "__global__" in _cuda_source(compile_fused(mod, target))
        if tasks_tuned:
            assert "__global__" in _cuda_source(compile_fused(tuned, target))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("lowering", ["tpat", "tvm"])
def test_planner_with_the_database(models, name, lowering):
    """`tpat tune`'s re-plan: the planner with "database" plans both lowerings; TVM's applies it."""
    from tpat_bridge.planning.plan import make_plan

    db = os.path.join(FIXTURES, f"{name}_sm90")
    plan = make_plan(models[name], "sm_90", lowering, db)
    assert plan.get("kernels"), plan.keys()
    assert plan.get("tuning_database") == (f"{name}_sm90" if lowering == "tvm" else None)


def test_compare_failure_goes_to_the_case_log(tmp_path):
    """A compare that raises (here an assert with no message, as dlight's) leaves its type, message
    and last frame in <id>.log, and the row says compare failed."""
    from types import SimpleNamespace

    import tune_suite as S

    models = tmp_path / "models"
    models.mkdir()
    make_small_models.lse(str(models / "c.onnx"))
    args = SimpleNamespace(dir=str(tmp_path / "suite"), models=str(models), target="llvm", trials=4, lowering="both")
    os.makedirs(args.dir)

    def fake_tune(req):
        os.makedirs(req["work_dir"], exist_ok=True)
        return {"tasks": [{"name": "max", "lowering": "tvm", "trials": 1, "best_us": 1.0, "default_us": 2.0}]}

    def broken_compare(model, db, target, lowerings):
        raise AssertionError  # pytest rewrites `assert`; dlight's bare assert gives this

    row = S.run_case("c", args, 10.0, tune=fake_tune, compare=broken_compare)
    assert row["failed"] and row["kept"] == "no (compare failed)"
    log = (tmp_path / "suite" / "c.log").read_text()
    assert "compare failed: AssertionError: (no message)" in log
    assert "in broken_compare: raise AssertionError" in log and "test_tune_compare_build.py:" in log


def test_describe_error_keeps_the_whole_message():
    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError as e:
        text = C.describe_error(e)
    assert text.startswith("RuntimeError: first line\nsecond line\n  at ")
    assert "test_describe_error_keeps_the_whole_message" in text
