"""python -m tpat_bridge.tools.bench run|report: the bench without Swift (the GPU machine has
Python with torch but no Swift and no TVM).

  run    --cases bench/cases.json --suite-dir .bench-carry --report-dir DIR [--flush-l2] [--runs N]
         [--name STEM] [--only ID,...] [--time-budget S] [--resume] [OUT ...]
  report RESULTS.json [--report-dir DIR]     (re-render the markdown and the chart of one run)
  check-baselines --cases bench/cases.json [--only ID,...]
         (every case's PyTorch baseline against ONNX Runtime at its check shapes, on the CPU;
         needs torch; exit 1 when one differs)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tpat_bridge.errors import BridgeError

from .baselines import check_baseline
from .cases import load_cases
from .report import render_report
from .runner import run_bench


def check_baselines(cases_path, only=None):
    try:
        import torch  # lazy: torch exists on the GPU machine only
    except ImportError as e:
        print(f"error: check-baselines needs torch (the CPU build is enough): {e}", file=sys.stderr)
        return 2
    bad = 0
    for cid, case in load_cases(cases_path).items():
        if only and cid not in only:
            continue
        r = check_baseline(case, torch)
        bad += not r["pass"]
        why = r.get("reason") or "; ".join(
            f"out{j}: {o.get('bad')}/{o.get('n')} bad, max_abs {o.get('max_abs')}"
            for j, o in enumerate(r.get("outputs", []))
            if not o["pass"]
        )
        print(f"{cid:30s} {'pass' if r['pass'] else 'FAIL'}  {r.get('torch_impl', '')}" + (f"  ({why})" if why else ""))
    print(f"{bad} baseline(s) differ from ONNX Runtime")
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tpat_bridge.tools.bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="time every case / plugin (GPU machine)")
    run.add_argument("outs", nargs="*")
    run.add_argument("--cases")
    run.add_argument("--suite-dir")
    run.add_argument("--report-dir", required=True)
    run.add_argument("--flush-l2", action="store_true")
    run.add_argument("--runs", type=int, default=200)
    run.add_argument("--name", default="bench")
    run.add_argument("--only", help="comma-separated case ids")
    run.add_argument("--no-compile", action="store_true")
    run.add_argument("--time-budget", type=float, help="seconds; cases that would start later are 'skipped' rows")
    run.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of REPORT_DIR/NAME.json from an earlier call (same device), run the rest",
    )
    chk = sub.add_parser("check-baselines", help="PyTorch baselines against ONNX Runtime (CPU, needs torch)")
    chk.add_argument("--cases", required=True)
    chk.add_argument("--only", help="comma-separated case ids")
    rep = sub.add_parser("report", help="re-render the report and chart of a results JSON")
    rep.add_argument("results")
    rep.add_argument("--report-dir")
    a = ap.parse_args(argv)
    if a.cmd == "check-baselines":
        return check_baselines(a.cases, a.only.split(",") if a.only else None)
    try:
        if a.cmd == "report":
            out = render_report(a.results, a.report_dir or os.path.dirname(os.path.abspath(a.results)))
        else:
            out = run_bench(
                {
                    "command": "bench",
                    "outs": a.outs,
                    "cases": a.cases,
                    "suite_dir": a.suite_dir,
                    "report_dir": a.report_dir,
                    "flush_l2": a.flush_l2,
                    "runs": a.runs,
                    "name": a.name,
                    "only": a.only.split(",") if a.only else None,
                    "compile": not a.no_compile,
                    "time_budget_s": a.time_budget,
                    "resume": a.resume,
                }
            )
            out = {k: out[k] for k in ("report", "chart", "results_json", "device", "copy_gbps")}
    except BridgeError as e:
        print(f"error: {e.code}: {e.reason}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
