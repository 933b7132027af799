"""Benchmark (not a test): KernelPlan time per op, cold (fresh process) and warm (second call in
the same process). Usage: .venv/bin/python bench/plan_time.py [case ...]
Cases are the ones of tests/python/test_planner.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, %(py)r)
from tpat_bridge.planning.plan import handle_plan
t1 = time.perf_counter()
r1 = handle_plan({"command": "plan", "model_path": %(path)r, "target": "sm_90"})
t2 = time.perf_counter()
r2 = handle_plan({"command": "plan", "model_path": %(path)r, "target": "sm_90"})
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "cold_s": t2 - t1, "warm_s": t3 - t2, "ok": r1["ok"],
                  "kernels": len(r1["plan"]["kernels"]) if r1["ok"] else 0,
                  "error": None if r1["ok"] else r1["error"]["code"]}))
"""


def main():
    sys.path.insert(0, str(ROOT / "python"))
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    import onnx
    import test_planner as T

    names = sys.argv[1:] or list(T.CASES)
    tmp = Path(tempfile.mkdtemp(prefix="tpat_bench_"))
    print(f"{'case':24s} {'import':>7s} {'cold':>7s} {'warm':>7s} kernels")
    for name in names:
        model = T.CASES[name]()[0]
        path = tmp / f"{name}.onnx"
        onnx.save(model, str(path))
        code = CHILD % {"py": str(ROOT / "python"), "path": str(path)}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if not line:
            print(f"{name:24s} failed: {out.stderr[-300:]}")
            continue
        r = json.loads(line[-1])
        extra = r["kernels"] if r["ok"] else f"refused: {r['error']}"
        print(f"{name:24s} {r['import_s']:7.2f} {r['cold_s']:7.2f} {r['warm_s']:7.2f} {extra}")


if __name__ == "__main__":
    main()
