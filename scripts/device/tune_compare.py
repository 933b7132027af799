"""Time a bench case's tactics untuned and tuned (a `tune` database) and say whether tuning pays.

    python3 scripts/device/tune_compare.py MODEL WORK_DIR TARGET [LOWERING]

MODEL: a one-node model (bench/models/<id>.onnx); WORK_DIR: the database `tune` wrote; TARGET:
sm_80..sm_90 (timed on GPU 0) or llvm (this CPU, for the scripts' own tests); LOWERING: both
(default), tpat, tvm or tpat,tvm. The tactics are what the planner makes (tune.fused_modules):
TPAT's lowering where it takes the node, TVM's where the planner uses it. Per tactic the node is
built as the planner builds it (lowering, index narrowing, FuseTIR), then compiled as the
planner's pipeline goes on (planning.pipeline.compile_fused) untuned (dlight schedules every
function; hand-scheduled TPAT functions keep their schedule) and, where the database has records
for its functions, tuned (the best records applied first, dlight for the rest). A failure exits 2
with an `error:` line and the last traceback frame (tune_suite writes it into the case's log). Every build is timed with the VM's time_evaluator on the same random inputs: on a GPU one
run per repeat with the L2 flushed before it (a copy of FLUSH_BYTES between two device buffers,
outside the timed region, as the bench flushes), the median of REPEATS; on the CPU the median of
5 repeats. Times are of the whole node (every kernel launch of the VM function), so they compare
tactics with each other, not with the bench's CUDA-graph times.

Prints one JSON line: {"tactics": [{"lowering", "untuned_us", "tuned_us" (null when no record
applies), "tasks_tuned"}], "untuned_best_us", "untuned_best" (its lowering), "tuned_best_us",
"tuned_best" (null when nothing is tuned), "tuned_wins", "l2_flush", plus "untuned_us" /
"tuned_us" (the two bests)}. tuned_wins: the fastest tuned tactic is at least 3% faster than the
fastest untuned one (TensorRT, timing every tactic at engine build, would pick it). Exit 0, or 2
when something failed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402
import tvm  # noqa: E402
from tpat_bridge.lowerings import prelude  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.pipeline import (  # noqa: E402
    apply_database,
    compile_fused,
    scheduled_functions,
    tuning_target,
)
from tpat_bridge.tools.tune import fused_modules  # noqa: E402
from tvm import relax  # noqa: E402

WIN = 0.97  # a tuned tactic must be at least 3% faster than the best untuned one to be kept
REPEATS = 50  # GPU: timed runs, one per repeat, each after an L2 flush
FLUSH_BYTES = 128 << 20  # per buffer: 128 MiB read and 128 MiB written (the H200's L2 is 60 MiB)
FLUSH_FUNC = "tpat.tune_compare.flush_l2"


def _inputs(info, dev, rng):
    out = []
    for x in info.inputs:
        if not all(isinstance(d, int) for d in x["shape"]):
            raise SystemExit(f"error: input {x['name']!r} has a symbolic shape: give a static model")
        dt = x["dtype"]
        if dt.startswith("int") or dt.startswith("uint"):
            a = rng.integers(0, 2, x["shape"]).astype(dt)  # small, valid indices for gathers
        elif dt == "bool":
            a = rng.integers(0, 2, x["shape"]).astype(bool)
        else:
            a = rng.standard_normal(x["shape"]).astype("float32" if dt == "bfloat16" else dt)
        out.append(tvm.runtime.tensor(a, dev))
    return out


def _flusher(dev, nbytes: int):
    """Registers FLUSH_FUNC: a copy between two device buffers of `nbytes` (time_evaluator calls it
    before every repeat, outside the timed region). Returns the buffers (kept alive by the caller)."""
    import tvm_ffi

    n = nbytes // 4
    src = tvm.runtime.empty((n,), "float32", dev)
    dst = tvm.runtime.empty((n,), "float32", dev)

    def flush(*_args):
        src.copyto(dst)

    tvm_ffi.register_global_func(FLUSH_FUNC, flush, override=True)
    return src, dst


def time_build(mod, target, args, dev, flush: bool) -> float:
    """Median microseconds of the compiled module's "main" on `args` (`mod`: a fused module, built
    as the planner builds it: planning.pipeline.compile_fused)."""
    ex = compile_fused(mod, target)
    vm = relax.VirtualMachine(ex, dev)
    if flush:
        f = vm.time_evaluator("main", dev, number=1, repeat=REPEATS, min_repeat_ms=0, f_preproc=FLUSH_FUNC)
    else:
        f = vm.time_evaluator("main", dev, number=5, repeat=5, min_repeat_ms=50)
    return float(f(*args).median) * 1e6


def verdict(tactics) -> dict:
    """The summary of per-tactic times (see the module docstring): the best untuned and tuned
    tactics, and whether the tuned one wins by WIN."""
    untuned = [t for t in tactics if t.get("untuned_us") is not None]
    tuned = [t for t in tactics if t.get("tuned_us") is not None]
    ub = min(untuned, key=lambda t: t["untuned_us"]) if untuned else None
    tb = min(tuned, key=lambda t: t["tuned_us"]) if tuned else None
    return {
        "untuned_best_us": ub and ub["untuned_us"],
        "untuned_best": ub and ub["lowering"],
        "tuned_best_us": tb and tb["tuned_us"],
        "tuned_best": tb and tb["lowering"],
        "tuned_wins": bool(ub and tb and tb["tuned_us"] < WIN * ub["untuned_us"]),
        # the two bests under the names of the one-lowering compare (older summaries read them)
        "untuned_us": ub and ub["untuned_us"],
        "tuned_us": tb and tb["tuned_us"],
    }


def compare(model: str, work_dir: str, target_name: str, lowerings=("tpat", "tvm"), flush=None) -> dict:
    """Times every tactic of `model` untuned and tuned with the database in `work_dir` (see the
    module docstring); flush: None = on a GPU only."""
    target = tuning_target(target_name)
    gpu = target.kind.name == "cuda"
    prelude.install_cuda_postproc()  # TPAT's lowerings call device helpers the prelude defines
    dev = tvm.cuda(0) if gpu else tvm.cpu(0)
    flush = gpu if flush is None else flush
    keep = _flusher(dev, FLUSH_BYTES if gpu else 1 << 20) if flush else None  # noqa: F841 (alive while timing)
    args = _inputs(load_node(model), dev, np.random.default_rng(0))
    tactics = []
    for made_by, mod, tuned_mod, tasks_tuned in tactic_modules(model, work_dir, target, lowerings):
        row = {"lowering": made_by, "untuned_us": round(time_build(mod, target, args, dev, flush), 3)}
        row["tasks_tuned"] = tasks_tuned
        row["tuned_us"] = round(time_build(tuned_mod, target, args, dev, flush), 3) if tasks_tuned else None
        tactics.append(row)
    return {"tactics": tactics, **verdict(tactics), "l2_flush": bool(flush)}


def tactic_modules(model: str, work_dir: str, target, lowerings=("tpat", "tvm")) -> list:
    """[(lowering, untuned fused module, tuned fused module, functions a record was applied to)]
    per tactic: what `compare` builds (with `compile_fused`) and times; no device needed."""
    if isinstance(target, str):
        target = tuning_target(target)
    out = []
    for made_by, mod in fused_modules(model, target, list(lowerings))[0]:
        tuned_mod = apply_database(mod, target, work_dir)
        out.append((made_by, mod, tuned_mod, scheduled_functions(tuned_mod) - scheduled_functions(mod)))
    return out


def describe_error(e: BaseException) -> str:
    """The exception for a log: "Type: message" (the whole message, or "(no message)": dlight's
    asserts have none) and the last traceback frame, "at FILE:LINE in FUNCTION: CODE"."""
    msg = str(e).strip() or "(no message)"
    out = f"{type(e).__name__}: {msg}"
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        f = frames[-1]
        out += f"\n  at {f.filename}:{f.lineno} in {f.name}" + (f": {f.line.strip()}" if f.line else "")
    return out


def parse_lowerings(text: str) -> list:
    if text == "both":
        return ["tpat", "tvm"]
    out = [x for x in text.split(",") if x]
    if not out or any(x not in ("tpat", "tvm") for x in out):
        raise SystemExit(f"error: LOWERING must be both, tpat, tvm or tpat,tvm, not {text!r}")
    return out


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model, work_dir, target_name = argv[1:4]
    lowerings = parse_lowerings(argv[4] if len(argv) == 5 else "both")
    print(json.dumps(compare(model, work_dir, target_name, lowerings)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the error line (+ where), exit 2
        first = str(e).strip().splitlines()[0] if str(e).strip() else "(no message)"
        print(f"error: {type(e).__name__}: {first}", file=sys.stderr)
        frame = describe_error(e).splitlines()[-1]
        if frame.startswith("  at "):
            print(frame, file=sys.stderr)  # where it was raised
        sys.exit(2)
