"""Time one bench case's node with and without a `tpat tune` database and say which wins.

    python3 scripts/device/tune_compare.py MODEL WORK_DIR TARGET [LOWERING]

MODEL: a one-node model (bench/models/<id>.onnx); WORK_DIR: the database `tune` wrote; TARGET:
sm_80..sm_90 (timed on GPU 0) or llvm (this CPU, for the script's own test). The node is built as
the planner builds it (build_fused_module: TPAT's lowering or TVM's, index narrowing, FuseTIR),
then compiled twice by TVM: untuned (dlight schedules every function; hand-scheduled TPAT
functions keep their schedule) and tuned (the database's best records applied first, dlight for
the rest). Both are timed with the VM's time_evaluator on the same random inputs (median of
repeats; the whole node, so kernel launches included). Prints one JSON line:
{"untuned_us", "tuned_us", "tuned_wins", "tasks_tuned"}. Exit 0, or 2 when something failed.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402
import tvm  # noqa: E402
from tpat_bridge.planning.pipeline import apply_database, tuning_target  # noqa: E402
from tpat_bridge.tools.tune import build_fused_module  # noqa: E402
from tvm import relax  # noqa: E402

WIN = 0.97  # the tuned build must be at least 3% faster to be kept


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


def _time(mod, target, args, dev):
    ex = tvm.compile(mod, target=target)
    vm = relax.VirtualMachine(ex, dev)
    f = vm.time_evaluator("main", dev, number=5, repeat=5, min_repeat_ms=50)
    return float(f(*args).median) * 1e6


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model, work_dir, target_name = argv[1:4]
    lowering = argv[4] if len(argv) == 5 else "tpat"
    target = tuning_target(target_name)
    dev = tvm.cuda(0) if target.kind.name == "cuda" else tvm.cpu(0)
    mod, info, _note = build_fused_module(model, target, lowering)
    args = _inputs(info, dev, np.random.default_rng(0))
    untuned = _time(mod, target, args, dev)
    tuned_mod = apply_database(mod, target, work_dir)
    n_tuned = sum(
        1
        for _, f in tuned_mod.functions.items()
        if isinstance(f, tvm.tirx.PrimFunc)
        and f.attrs is not None
        and "tirx.is_scheduled" in f.attrs
        and int(f.attrs["tirx.is_scheduled"])
    ) - sum(
        1
        for _, f in mod.functions.items()
        if isinstance(f, tvm.tirx.PrimFunc)
        and f.attrs is not None
        and "tirx.is_scheduled" in f.attrs
        and int(f.attrs["tirx.is_scheduled"])
    )
    tuned = _time(tuned_mod, target, args, dev) if n_tuned > 0 else untuned
    print(
        json.dumps(
            {
                "untuned_us": round(untuned, 3),
                "tuned_us": round(tuned, 3),
                "tuned_wins": n_tuned > 0 and tuned < WIN * untuned,
                "tasks_tuned": n_tuned,
            }
        )
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - one line, exit 2
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        sys.exit(2)
