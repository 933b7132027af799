"""Tune a handful of bench cases in one process; keep a case's database only where tuning wins.

    python3 scripts/device/tune_suite.py --dir DIR [--models bench/models] [--target sm_90]
        [--trials 64] [--budget 60] [--total 400] [--reserve 30] [--lowering both] ID...

Per case: `tune` (python/tpat_bridge/tools/tune.py) of MODELS/<id>.onnx into DIR/db/<id>, searching
the functions of every lowering the planner makes a tactic of (TPAT's where it takes the node,
TVM's where the planner uses it; trials and time shared out over the tasks), then
tune_compare.compare times each tactic untuned and tuned. The database moves to DIR/kept/<id> (for
a plan's "database" / `tpat generate --tuning`) when the fastest tuned tactic beats the fastest
untuned one by >= 3%; otherwise it is dropped. Within tune, a task's records already stay only
where they beat that task's default schedule by >= 3% (keep "wins").

One process for all cases: MetaSchedule's start-up (the first TuneContext imports every tensor
intrinsic: 15-50 s) is paid once, before the first case. The whole run keeps to --total seconds:
each case's search budget is min(--budget, its fair share of what is left after --reserve seconds
per remaining case for worker start-up, default timing and the compare), and a case with less
than MIN_BUDGET_S left is not started (summary: "no (out of time)").

Outputs in DIR: summary.tsv (one row per case: case, op, tune_s, trials, untuned_best, tuned_best
(us and lowering), kept, tactics (per tactic lowering=untuned/tuned us, the compare's times), tasks
(per task lowering:name=best/default us:kept|dropped, tune's times)), per case <id>.tune.json,
<id>.compare.json and <id>.log (MetaSchedule's and tune's output). Exit 0, or 1 when a case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, HERE)

import tune_compare  # noqa: E402

MIN_BUDGET_S = 5.0
COLUMNS = ("case", "op", "tune_s", "trials", "untuned_best", "tuned_best", "kept", "tactics", "tasks")
CASE_ID = re.compile(r"^[a-z0-9_]+$")


@contextlib.contextmanager
def output_to(path: str):
    """Sends this process's stdout and stderr (file descriptors 1 and 2: TVM's C++ log, the worker
    processes started meanwhile, Python's sys.stdout/sys.stderr) to `path` while inside."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def say(msg: str) -> None:
    print(msg, flush=True)


def _us(v, lowering=None) -> str:
    return "-" if v is None else f"{v:.2f}" + (f" ({lowering})" if lowering else "")


def task_summary(answer: dict) -> str:
    """Per task "lowering:name=best/default:kept|dropped" (tune's times, us), e.g.
    "tpat:tpat_reduce(skipped) tvm:max=22.51/15380.90:kept"; skipped tasks as "(skipped)"."""
    parts = []
    for t in answer.get("tasks", []):
        name = f"{t.get('lowering', '?')}:{t['name']}"
        if "skipped" in t:
            parts.append(f"{name}(skipped)")
        else:
            verdict = "kept" if t.get("kept") else "dropped"
            parts.append(f"{name}={_us(t.get('best_us'))}/{_us(t.get('default_us'))}:{verdict}")
    return " ".join(parts) or "-"


def run_case(case: str, args, budget: float, tune=None, compare=None) -> dict:
    """Tunes and compares one case; returns its summary row (a dict over COLUMNS, and "failed":
    True when the case could not be tuned or compared). `tune` and `compare` default to
    tools.tune.tune and tune_compare.compare (the tests pass stand-ins)."""
    if tune is None:
        from tpat_bridge.tools.tune import tune
    compare = compare or tune_compare.compare
    row = dict.fromkeys(COLUMNS, "-")
    row["case"] = case
    model = os.path.join(args.models, f"{case}.onnx")
    db, kept_dir = os.path.join(args.dir, "db", case), os.path.join(args.dir, "kept", case)
    shutil.rmtree(db, ignore_errors=True)
    shutil.rmtree(kept_dir, ignore_errors=True)
    log = os.path.join(args.dir, f"{case}.log")
    if not os.path.isfile(model):
        row["kept"], row["failed"] = f"no (no {model})", True
        return row
    try:
        import onnx

        row["op"] = onnx.load(model, load_external_data=False).graph.node[0].op_type
    except Exception:  # noqa: BLE001 - the op is for the reader; tune says what is wrong
        pass
    request = {
        "command": "tune",
        "model_path": model,
        "target": args.target,
        "work_dir": db,
        "trials": args.trials,
        "time_budget_s": round(budget, 1),
        "lowering": tune_compare.parse_lowerings(args.lowering),
    }
    t0 = time.monotonic()
    try:
        with output_to(log):
            answer = tune(request)
    except Exception as e:  # noqa: BLE001 - this case fails, the next one runs
        row["tune_s"] = f"{time.monotonic() - t0:.0f}"
        row["kept"], row["failed"] = f"no (tune failed: {getattr(e, 'code', type(e).__name__)})", True
        say(f"{case}: tune failed: {getattr(e, 'reason', str(e))[:300]} ({log})")
        return row
    row["tune_s"] = f"{time.monotonic() - t0:.0f}"
    with open(os.path.join(args.dir, f"{case}.tune.json"), "w") as f:
        json.dump(answer, f, indent=1)
    searched = [t for t in answer["tasks"] if "skipped" not in t]
    row["trials"] = str(sum(t.get("trials", 0) for t in searched))
    row["tasks"] = task_summary(answer)
    if not searched:
        row["kept"] = "no (nothing to tune)"
        shutil.rmtree(db, ignore_errors=True)
        return row
    try:
        with output_to(log):
            result = compare(model, db, args.target, tune_compare.parse_lowerings(args.lowering))
    except Exception as e:  # noqa: BLE001
        row["kept"], row["failed"] = "no (compare failed)", True
        with open(log, "a") as f:  # the whole message and where it was raised, for the reader
            f.write(f"\ncompare failed: {tune_compare.describe_error(e)}\n")
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else "(no message)"
        say(f"{case}: compare failed: {type(e).__name__}: {first} ({log})")
        return row
    with open(os.path.join(args.dir, f"{case}.compare.json"), "w") as f:
        json.dump(result, f, indent=1)
    row["tactics"] = " ".join(f"{t['lowering']}={_us(t['untuned_us'])}/{_us(t['tuned_us'])}" for t in result["tactics"])
    row["untuned_best"] = _us(result["untuned_best_us"], result["untuned_best"])
    row["tuned_best"] = _us(result["tuned_best_us"], result["tuned_best"])
    if result["tuned_wins"]:
        os.makedirs(os.path.dirname(kept_dir), exist_ok=True)
        shutil.move(db, kept_dir)
        row["kept"] = "yes"
    else:
        shutil.rmtree(db, ignore_errors=True)
        row["kept"] = (
            "no (slower than the best untuned tactic)" if result["tuned_best_us"] else "no (no tuned record kept)"
        )
    return row


def write_summary(path: str, rows) -> None:
    with open(path, "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]).replace("\t", " ") for c in COLUMNS) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--models", default="bench/models")
    p.add_argument("--target", default="sm_90")
    p.add_argument("--trials", type=int, default=64)
    p.add_argument("--budget", type=float, default=60.0, help="seconds of search per case (at most)")
    p.add_argument("--total", type=float, default=400.0, help="seconds for the whole run, start-up included")
    p.add_argument("--reserve", type=float, default=30.0, help="seconds per case beyond its search")
    p.add_argument("--lowering", default="both")
    p.add_argument("cases", nargs="+")
    args = p.parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + args.total
    os.makedirs(os.path.join(args.dir, "db"), exist_ok=True)
    os.makedirs(os.path.join(args.dir, "kept"), exist_ok=True)
    tune_compare.parse_lowerings(args.lowering)  # a bad value stops here
    # MetaSchedule's one-time start-up, before the first case's clock starts
    with output_to(os.path.join(args.dir, "startup.log")):
        import tvm.s_tir.tensor_intrin  # noqa: F401
        from tpat_bridge.tools import tune  # noqa: F401
    say(f"tune-suite: start-up {time.monotonic() - t_start:.0f} s; {len(args.cases)} case(s), target {args.target}")
    rows, rc = [], 0
    summary = os.path.join(args.dir, "summary.tsv")
    for k, case in enumerate(args.cases):
        left = len(args.cases) - k
        if not CASE_ID.match(case):
            rows.append({**dict.fromkeys(COLUMNS, "-"), "case": ascii(case)[:40], "kept": "no (bad case id)"})
            rc = 1
            continue
        share = (deadline - time.monotonic() - args.reserve * left) / left
        budget = min(args.budget, share)
        if budget < MIN_BUDGET_S:
            rows.append({**dict.fromkeys(COLUMNS, "-"), "case": case, "kept": "no (out of time)"})
            say(f"{case}: not started ({deadline - time.monotonic():.0f} s left of --total)")
            continue
        t0 = time.monotonic()
        row = run_case(case, args, budget)
        rows.append(row)
        write_summary(summary, rows)  # after every case: a cut run keeps what it measured
        if row.get("failed"):
            rc = 1
        say(
            f"{case} ({row['op']}): {time.monotonic() - t0:.0f} s (search budget {budget:.0f} s), "
            f"{row['trials']} trial(s); untuned {row['untuned_best']}, tuned {row['tuned_best']} -> kept: {row['kept']}"
        )
    write_summary(summary, rows)
    say(f"tune-suite: {time.monotonic() - t_start:.0f} s in all")
    return rc


if __name__ == "__main__":
    sys.exit(main())
