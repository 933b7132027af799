"""Prepares the whole bench suite on the development machine (TVM, Swift, nvcc; no GPU needed), so
that one `tpat bench --suite DIR` (or `python -m tpat_bridge.tools.bench run --suite-dir DIR`) on
the GPU machine times every case in one run.

    python bench/prepare.py --plan-only [--out bench/results/plan-check.md]
        `tpat plan` of every case's node (CPU only): which cases plan, and why the others do not.
    python bench/prepare.py --carry .bench-carry [--arch 90] [--only id,id]
        `tpat generate --no-reference --arch A` + `tpat build --arch A` of every case into DIR/<case
        id>/ (--arch 90a: Hopper-only kernels too, e.g. Attention's wgmma prefill; the
        CMake scratch removed so the folder travels small), and DIR/prepare.json: per case
        "planned" / "not_planned" (with the reason) / "requires" (lowering not landed yet). Only
        what the bench reads is kept (about 1 MB per case; --full keeps the OUT folders).
        --tuning DIR: a case with a database in DIR/<case id>/ (what scripts/device/tune_suite.sh
        keeps in $OUT/tune-suite/kept) gets it as OUT/tuning/<plugin> and `tpat tune OUT
        --trials 0` before the build: its tuned plans join the tactics (docs/tuning.md).

Cases with "requires" in cases.json are not tried: the bench reports them as not planned and
still times their PyTorch baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TPAT = ROOT / ".build" / "debug" / "tpat"


def load(cases_path):
    doc = json.loads(Path(cases_path).read_text())
    models = Path(cases_path).parent / doc.get("models_dir", "models")
    return [dict(c, model_path=str(models / c["model"])) for c in doc["cases"]]


def _reason(stderr):
    """The error line tpat printed (the last `error:` line), else the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.match(r"^(error|warning):", ln) or "not converted" in ln or "reason" in ln]
    return (errs or lines or ["no output"])[-1][:400]


def _generate_failure(out):
    """The node's reason code and reason from OUT/tpat-generate.json (None when absent)."""
    try:
        fails = json.loads((out / "tpat-generate.json").read_text()).get("failures") or []
    except (OSError, ValueError):
        return None
    return "; ".join(f"{f.get('reason')} [{f.get('code')}]" for f in fails) or None


def run(cmd, timeout):
    env = dict(os.environ, TPAT_HOME=str(ROOT))
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        return r.returncode, r.stdout, r.stderr, time.time() - t0
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s", time.time() - t0


def plan_case(c, arch, timeout):
    rc, _, err, s = run(
        [str(TPAT), "plan", c["model_path"], "--node", c["node"], "--arch", arch, "--no-cache"], timeout
    )
    summary = next((ln.split("] ", 1)[-1] for ln in err.splitlines() if "planned " in ln), "")
    return {
        "id": c["id"],
        "op": c["op"],
        "status": "planned" if rc == 0 else "not_planned",
        "reason": None if rc == 0 else _reason(err),
        "summary": summary.strip(),
        "seconds": round(s, 1),
    }


def add_tuning(out, db, timeout):
    """Copies the database `db` into OUT/tuning/<plugin> for every plugin of OUT and re-plans them
    with it (`tpat tune OUT --trials 0`). Returns (rc, stdout, stderr, seconds)."""
    plugins = json.loads((out / "tpat-generate.json").read_text()).get("plugins") or []
    for p in plugins:
        shutil.copytree(db, out / "tuning" / p["name"], dirs_exist_ok=True, ignore=shutil.ignore_patterns("logs"))
    return run([str(TPAT), "tune", str(out), "--trials", "0"], timeout)


def prepare_case(c, carry, arch, timeout, slim=True, tuning=None):
    out = Path(carry) / c["id"]
    rc, so, err, s1 = run(
        [str(TPAT), "generate", c["model_path"], "--ops", c["select"], "-o", str(out), "--no-reference", "--force"]
        + ["--arch", arch.replace(",", ";").split(";")[-1].strip()],  # planned for the (last) arch built
        timeout,
    )
    if rc != 0 or not (out / "plugins").is_dir() or not any((out / "plugins").iterdir()):
        return {
            "id": c["id"],
            "op": c["op"],
            "status": "not_planned",
            "reason": _generate_failure(out) or _reason(err + so),
            "seconds": round(s1, 1),
        }
    db = Path(tuning) / c["id"] if tuning else None
    tuned = db is not None and (db / "database_workload.json").is_file()
    if tuned:
        rc, so, err, st = add_tuning(out, db, timeout)
        s1 += st
        if rc != 0:
            return {
                "id": c["id"],
                "op": c["op"],
                "status": "not_tuned",
                "reason": _reason(err + so),
                "seconds": round(s1, 1),
            }
    rc, so, err, s2 = run([str(TPAT), "build", str(out), "--arch", arch], timeout)
    if rc != 0:
        return {
            "id": c["id"],
            "op": c["op"],
            "status": "not_built",
            "reason": _reason(err + so),
            "seconds": round(s1 + s2, 1),
        }
    if slim:
        slim_out(out)
    else:
        shutil.rmtree(out / "plugins" / "build" / "CMakeFiles", ignore_errors=True)
    row = {"id": c["id"], "op": c["op"], "status": "planned", "reason": None, "seconds": round(s1 + s2, 1)}
    return dict(row, tuning=str(db)) if tuned else row


def slim_out(out):
    """Keeps what the bench reads (OUT/<model>.onnx, each plugin's node model, plugin.json and
    plans, plugins/build/libtpat_kernels.so, stripped): about 0.7 MB per case, so the suite travels in one go."""
    keep = {out / "plugins" / "build" / "libtpat_kernels.so"}
    keep |= set(out.glob("*.onnx")) | {
        out / "tpat-generate.json",
        out / ".tpat-output",
    }  # the marker: generate --force may replace it
    for d in (out / "plugins").iterdir():
        if d.is_dir() and d.name not in ("build", "common", "check", "python", "cmake"):
            keep |= {f for f in d.iterdir() if f.name.endswith((".onnx", ".plugin.json", ".plan.json"))}
    for f in sorted(out.rglob("*"), reverse=True):
        if f.is_file() and f not in keep:
            f.unlink()
        elif f.is_dir() and not any(f.iterdir()):
            f.rmdir()
    lib = out / "plugins" / "build" / "libtpat_kernels.so"
    if shutil.which("strip") and lib.is_file():  # symbols the loader needs stay (~30 % smaller)
        subprocess.run(["strip", "--strip-unneeded", str(lib)], check=False)


def markdown(rows):
    L = [
        "# `tpat plan` of every bench case (CPU)",
        "",
        f"{sum(r['status'] == 'planned' for r in rows)} of {len(rows)} cases plan; written by "
        "`python bench/prepare.py --plan-only`.",
        "",
        "| case | op | result | reason / plan | seconds |",
        "|---|---|---|---|---:|",
    ]
    for r in rows:
        what = r.get("reason") or r.get("summary") or ""
        L.append(
            f"| {r['id']} | {r['op']} | {r['status'].replace('_', ' ')} | {what.replace('|', '/')} | "
            f"{r.get('seconds', '')} |"
        )
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=str(ROOT / "bench" / "cases.json"))
    ap.add_argument("--plan-only", action="store_true")
    ap.add_argument("--out", help="with --plan-only: markdown table here (and .json beside it)")
    ap.add_argument("--carry", default=str(ROOT / ".bench-carry"))
    ap.add_argument("--arch", default="90")
    ap.add_argument("--only", help="comma-separated case ids")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--full", action="store_true", help="keep the whole OUT folders (default: what the bench reads)")
    ap.add_argument("--tuning", help="folder of tune_suite.sh's kept databases, one per case id")
    a = ap.parse_args(argv)
    if not TPAT.is_file():
        print(f"error: {TPAT} not built (swift build)", file=sys.stderr)
        return 2
    cases = load(a.cases)
    if a.only:
        keep = set(a.only.split(","))
        cases = [c for c in cases if c["id"] in keep]
    rows = []
    for c in cases:
        if c.get("requires"):
            r = {"id": c["id"], "op": c["op"], "status": "requires", "reason": f"requires {c['requires']}"}
            if a.plan_only:  # say what tpat answers today
                p = plan_case(c, a.arch, a.timeout)
                r["reason"] += f"; tpat plan today: {p['reason'] or 'planned'}"
        elif a.plan_only:
            r = plan_case(c, a.arch, a.timeout)
        else:
            Path(a.carry).mkdir(parents=True, exist_ok=True)
            r = prepare_case(c, a.carry, a.arch, a.timeout, slim=not a.full, tuning=a.tuning)
        rows.append(r)
        print(f"{r['id']:30s} {r['status']:12s} {r.get('reason') or r.get('summary') or ''}", flush=True)
    if a.plan_only:
        if a.out:
            Path(a.out).write_text(markdown(rows))
            Path(a.out).with_suffix(".json").write_text(json.dumps({"cases": rows}, indent=1) + "\n")
    else:
        record = Path(a.carry) / "prepare.json"  # merged: --only updates its cases
        known = {r["id"]: r for r in json.loads(record.read_text())["cases"]} if record.is_file() else {}
        known.update({r["id"]: r for r in rows})
        order = [c["id"] for c in load(a.cases)]
        record.write_text(json.dumps({"cases": [known[i] for i in order if i in known]}, indent=1) + "\n")
    return 0 if all(r["status"] in ("planned", "requires") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
