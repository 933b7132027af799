"""Run TPAT's pipeline on every exported real model and write the results table.

    python3 scripts/real_models/run.py [--models .real-models] [--out out/real-models]
        [--tpat .build/debug/tpat] [--only a,b | --small] [--timeout 900] [--sm 89] [--readme README.md]

Per model (MODELS/<name>.onnx, from export.py): `tpat inspect --json` -> `tpat generate --auto`
-> `tpat build` (when plugins were made) -> `tpat engine --sm 89` (TensorRT-RTX builds on the
CPU); the engine is built from the rewritten model, or from the model itself when TPAT wrote
none. Every stage runs with a timeout, and a failure never stops the other models. Outcomes:

- `plugins`        the engine was built and holds TPAT plugin layers;
- `nothing_to_do`  the engine was built without any TPAT plugin (the parser imports every node);
- `blocked`        no engine: the stage, the node that stops it and the reason code;
- `not_exported`   the model is missing (export.py failed: MODELS/<name>.failed.json).

OUT/<name>/ keeps each stage's log and output; OUT/results.json and OUT/results.md hold the
table. Only the standard library: runs with any Python 3.9+. Reads whatever the given tpat
writes (tpat-generate.json with or without reason codes; else the CLI's `error:` line).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

OUTCOMES = ("plugins", "nothing_to_do", "blocked", "not_exported")

# Codes TPAT's planner and CLI use (docs/generate-report.md); a reason without a code field is
# matched against these, then against the few messages older builds print.
KNOWN_CODES = (
    "data_dependent_shape",
    "frontend_import_failed",
    "frontend_shape_bug",
    "frontend_type_bug",
    "tvm_error",
    "unsupported_dtype",
    "unsupported_model",
    "invalid_model",
    "not_single_node",
    "model_load_failed",
    "extraction_failed",
    "no_tensorrt_type",
    "invalid_plan",
    "bridge_failed",
    "feeds_shape_input",
    "non_tensor",
    "zero_size_tensor",
    "refused",
    "cross_check_failed",
    "unsupported_lowering",
)
_MESSAGE_CODES = (
    (re.compile(r"output shape depends on|data[- ]dependent", re.I), "data_dependent_shape"),
    (
        re.compile(
            r"OpNotImplemented|frontend (?:cannot|can't|does not) import|no converter|"
            r"not supported (?:by the|for) frontend|operators? (?:are )?not supported",
            re.I,
        ),
        "frontend_import_failed",
    ),
    (re.compile(r"type of (?:output|input) .* is unknown|cannot extract|rank .* unknown", re.I), "extraction_failed"),
    (re.compile(r"TensorRT has no tensor type", re.I), "no_tensorrt_type"),
    (re.compile(r"host allocation in", re.I), "unsupported_lowering"),
    (re.compile(r"\bTVM\b|tvm\.|TVMError|InternalError", re.I), "tvm_error"),
)


def reason_code(failure: dict) -> str:
    """The failure's code: its `code` field, a `[code]` in the text, a known code word, else a
    code read from the message; `unknown` when nothing matches."""
    if failure.get("code"):
        return str(failure["code"])
    text = str(failure.get("reason", ""))
    m = re.search(r"\[([a-z_]+)\]", text)
    if m and m.group(1) in KNOWN_CODES:
        return m.group(1)
    for code in KNOWN_CODES:
        if re.search(rf"\b{code}\b", text):
            return code
    for pattern, code in _MESSAGE_CODES:
        if pattern.search(text):
            return code
    return "unknown"


_ENGINE_NODE = re.compile(r"node '(?P<node>.*?)' \((?P<op>[^)]*)\):\s*(?P<msg>.*)")


def parse_engine_error(text: str) -> dict:
    """`tpat engine`'s failure: the node the parser stopped at, if it names one, and why."""
    line = error_line(text)
    m = _ENGINE_NODE.search(line)
    if not m:
        return {"node": None, "op": None, "message": line}
    return {"node": m.group("node"), "op": m.group("op"), "message": m.group("msg").strip()}


def error_line(text: str) -> str:
    """The CLI's last `error:` line (without the prefix), else its last non-empty line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error:")]
    if errors:
        return errors[-1][len("error:") :].strip()
    return lines[-1] if lines else "no output"


def parser_reason(op: str | None, message: str) -> tuple[str, str]:
    """A code and a readable reason for a node TensorRT's parser refused."""
    if re.search(r"plugin creator .* not found in plugin registry", message):
        # The parser has no importer for the op and falls back to a plugin of the op's name.
        return "parser_rejects_op", f"TensorRT's ONNX parser does not import {op or 'this op'} (no importer, no plugin)"
    return "parser_rejects_node", message


def run(cmd: list[str], log: Path, timeout: int, env: dict) -> tuple[int | None, str, float]:
    """Runs cmd, stdout+stderr into log; returns (exit status or None on timeout, output, seconds)."""
    t0 = time.time()
    try:
        p = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env, errors="replace"
        )
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc, out = None, out + f"\nerror: timed out after {timeout} s\n"
    log.write_text("$ " + " ".join(cmd) + "\n" + out)
    return rc, out, round(time.time() - t0, 1)


def run_model(name: str, models: Path, out: Path, tpat: str, timeout: int, sm: str, env: dict) -> dict:
    meta_path, model = models / f"{name}.json", models / f"{name}.onnx"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    row: dict = {
        "model": name,
        "what": meta.get("what", ""),
        "package": meta.get("package", ""),
        "versions": meta.get("versions", {}),
        "nodes": meta.get("nodes"),
        "seconds": {},
    }
    if not model.exists():
        failed = models / f"{name}.failed.json"
        why = json.loads(failed.read_text()).get("error", "?") if failed.exists() else "not exported"
        row.update(outcome="not_exported", stage="export", node=None, code="export_failed", reason=why)
        return row
    work = out / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    # 1. inspect
    rc, text, row["seconds"]["inspect"] = run(
        [tpat, "inspect", str(model), "--json"], work / "inspect.log", timeout, env
    )
    report = None
    if rc == 0:
        try:
            report = json.loads(text[text.index("{") :])
            (work / "inspect.json").write_text(json.dumps(report, indent=1) + "\n")
        except ValueError:
            report = None
    if report is None:
        row.update(outcome="blocked", stage="inspect", node=None, code="inspect_failed", reason=error_line(text))
        return row
    row["candidates"] = list(report.get("pluginCandidates", []))
    row["selected_by"] = report.get("selectedBy", "table")
    row["rules"] = report.get("trt") or report.get("rulesSource", "")
    blockers = {n["name"]: n["blocker"] for n in report.get("nodes", []) if n.get("blocker")}
    row["inspect_blocked"] = [
        {"node": k, "code": v.get("code"), "reason": v.get("reason")} for k, v in blockers.items()
    ]

    # 2. generate --auto
    gen = work / "gen"
    rc, text, row["seconds"]["generate"] = run(
        [tpat, "generate", str(model), "--auto", "-o", str(gen), "--force"], work / "generate.log", timeout, env
    )
    row["generate_exit"] = rc
    gen_report = gen / "tpat-generate.json"
    plugins, failures = [], []
    if gen_report.exists():
        g = json.loads(gen_report.read_text())
        plugins = [{"name": p["name"], "op": p["opType"], "nodes": p["nodes"]} for p in g.get("plugins", [])]
        failures = [
            {"node": f["node"], "op": f.get("opType"), "code": reason_code(f), "reason": f.get("reason", "")}
            for f in g.get("failures", [])
        ]
        row["generate_outcome"] = g.get("outcome")
        row["rewrites"] = g.get("rewrites") or []
    elif rc != 0 and not re.search(r"no node selected|nothing to (?:generate|convert)", text):
        row["generate_error"] = error_line(text)
    row["plugins"], row["not_converted"] = plugins, failures

    # 3. build (only when there is something to build)
    rewritten = gen / f"{model.stem}.onnx"
    if plugins and rewritten.exists():
        rc, text, row["seconds"]["build"] = run(
            [tpat, "build", str(gen), "--arch", sm], work / "build.log", timeout, env
        )
        if rc != 0:
            row.update(outcome="blocked", stage="build", node=None, code="build_failed", reason=error_line(text))
            return row
    if not rewritten.exists():  # nothing written (older tpat when nothing is selected, or generate failed)
        original = work / "original"
        original.mkdir()
        shutil.copy2(model, original / model.name)
        rewritten = original / model.name
        row["engine_from"] = "original"
    else:
        row["engine_from"] = "rewritten" if plugins else "generate output (no plugin)"

    # 4. engine
    engine = work / f"{name}.sm{sm}.engine"
    rc, text, row["seconds"]["engine"] = run(
        [tpat, "engine", str(rewritten), "--sm", sm, "-o", str(engine)], work / "engine.log", timeout, env
    )
    if rc == 0 and engine.exists():
        m = re.search(r"plugin layers in it: (.*)", text)
        in_engine = [] if not m or m.group(1).strip() == "none" else [s.strip() for s in m.group(1).split(",")]
        row["engine_bytes"] = engine.stat().st_size
        row["plugin_layers"] = in_engine
        row.update(outcome="plugins" if in_engine else "nothing_to_do", stage=None, node=None, code=None, reason=None)
        engine.unlink()  # megabytes each; the log says it was built
        return row
    err = parse_engine_error(text)
    row["stage"], row["node"] = "engine", err["node"]
    if rc is None:
        row.update(outcome="blocked", code="timeout", reason=err["message"])
        return row
    if err["node"]:
        failed = next((f for f in failures if f["node"] == err["node"]), None)
        blocker = blockers.get(err["node"])
        if failed:  # TPAT tried and gave up on this node: its reason is the real one
            row.update(code=failed["code"], reason=failed["reason"], parser_error=err["message"])
        elif blocker:
            row.update(code=blocker.get("code"), reason=blocker.get("reason"), parser_error=err["message"])
        else:
            code, reason = parser_reason(err["op"], err["message"])
            row.update(code=code, reason=reason, parser_error=err["message"])
        row["op"] = err["op"]
    elif _TOP_LEVEL_ONLY.search(err["message"]) and (kept := _kept_ifs(work / "generate.log")):
        # A data-dependent shape inside an If that TPAT could not fold (its warning says which).
        first = kept[0]
        row.update(
            node=first["node"],
            op="If",
            code="data_dependent_in_if",
            parser_error=err["message"],
            reason=f"TensorRT builds data-dependent shapes only in the top-level graph; this If holds {first['holds']} "
            f"and its condition depends on {first['depends_on']}, so TPAT cannot fold it",
        )
    else:
        # The parser's error names no node: ask the parser node by node (inspect --probe).
        rejected = probe_rejected(tpat, rewritten, work, timeout, env, {n for p in plugins for n in p["nodes"]})
        row["parser_rejected"] = rejected
        if rejected:
            first = rejected[0]
            row.update(
                node=first["node"],
                op=first["op"],
                code="parser_rejects_node",
                parser_error=err["message"],
                reason=f"{first['error'] or err['message']} (TensorRT's parser asked node by node: "
                f"{len(rejected)} node(s) rejected)",
            )
        else:
            row.update(code="engine_failed", reason=err["message"])
    row["outcome"] = "blocked"
    return row


_TOP_LEVEL_ONLY = re.compile(r"Data-dependent shapes are only allowed in the top-level scope", re.I)
_KEPT_IF = re.compile(
    r"If '(?P<node>.*?)' stays \(its condition depends on (?P<dep>.*?)\) and holds (?P<holds>.*?), whose output shape"
)


def _kept_ifs(log: Path) -> list[dict]:
    """The If nodes `tpat generate` warned about: kept (condition known only at run time) while a
    branch holds a node whose output shape depends on data."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [
        {"node": m.group("node"), "depends_on": m.group("dep"), "holds": m.group("holds")}
        for m in _KEPT_IF.finditer(text)
    ]


def probe_rejected(tpat: str, model: Path, work: Path, timeout: int, env: dict, converted: set) -> list[dict]:
    """Nodes of `model` that TensorRT's parser rejects when asked one by one (`tpat inspect --probe`),
    TPAT's own plugin nodes left out."""
    rc, text, _ = run([tpat, "inspect", str(model), "--json", "--probe"], work / "probe.log", timeout, env)
    try:
        report = json.loads(text[text.index("{") :]) if rc == 0 else {}
    except ValueError:
        return []
    out = []
    for n in report.get("nodes", []):
        p = n.get("probe")
        if p and p.get("imported") is False and n.get("domain", "") in ("", "ai.onnx") and n["name"] not in converted:
            out.append({"node": n["name"], "op": n.get("opType"), "error": p.get("error")})
    return out


def safe(s) -> str:
    """Text from a model (node names, messages) with control characters escaped, for the terminal
    and the table."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(s))


def _md_escape(s) -> str:
    return safe(s).replace("|", "\\|").replace("`", "'")


def short(s, n=140) -> str:
    s = " ".join(str(s).split())
    s = re.sub(r"^cannot plan node '.*?' \([^)]*\):\s*", "", s)  # the table names node and op already
    return s if len(s) <= n else s[: n - 1] + "…"


def markdown(rows: list[dict], header: dict) -> str:
    counts = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
    lines = [
        f"Real-model suite: {header['date']}, tpat {header['tpat_commit']}, engines for sm_{header['sm']} with "
        f"{header.get('builder') or 'TensorRT'} on the CPU. "
        + ", ".join(f"{k}: {v}" for k, v in counts.items() if v)
        + ".",
        "",
        "| model | package | outcome | plugins in the engine | stopped by (node, op) | code | reason | not converted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        plugins = ""
        if r["outcome"] == "plugins":
            layers = set(r.get("plugin_layers", []))
            ops = sorted({p["op"] for p in r.get("plugins", []) if layers & set(p["nodes"])})
            plugins = f"{len(layers)}: " + _md_escape(", ".join(ops))
        node = (
            f"`{_md_escape(r['node'])}` ({_md_escape(r.get('op') or '?')})" if r.get("node") else (r.get("stage") or "")
        )
        counts: dict = {}
        for f in r.get("not_converted", []):
            key = (f.get("op") or "?", f.get("code") or "unknown")
            counts[key] = counts.get(key, 0) + 1
        ncs = ", ".join(
            f"{_md_escape(op)} `{_md_escape(code)}`" + (f" ×{n}" if n > 1 else "") for (op, code), n in counts.items()
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    _md_escape(r["model"]),
                    _md_escape(r.get("package", "")),
                    f"**{r['outcome']}**",
                    plugins,
                    node,
                    f"`{_md_escape(r['code'])}`" if r.get("code") else "",
                    _md_escape(short(r.get("reason") or "")),
                    ncs,
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(ROOT / ".real-models"))
    ap.add_argument("--out", default=str(ROOT / "out" / "real-models"))
    ap.add_argument("--tpat", default=str(ROOT / ".build" / "debug" / "tpat"))
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--small", action="store_true", help="only the subset `make test` runs (models.py SMALL)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per stage and model")
    ap.add_argument("--sm", default="89")
    ap.add_argument("--readme", help="replace the table between the real-models markers in this file")
    args = ap.parse_args()

    models, out = Path(args.models), Path(args.out)
    tpat = str(Path(args.tpat).resolve())
    if not os.access(tpat, os.X_OK):
        print(f"error: no tpat binary at {tpat} (swift build first)", file=sys.stderr)
        return 2
    names = _model_names(models)
    if args.small:
        names = _small_names()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    if not names:
        print(f"error: no models in {models} (run scripts/real_models/export.py)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("TPAT_HOME", str(ROOT))
    venv_bin = ROOT / ".venv" / "bin"  # cmake and ninja come from TPAT's venv on machines without them
    if venv_bin.is_dir():
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"

    rows = []
    for name in names:
        t0 = time.time()
        try:
            row = run_model(name, models, out, tpat, args.timeout, args.sm, env)
        except Exception as e:  # noqa: BLE001 - a runner bug on one model must not lose the others
            row = {
                "model": name,
                "outcome": "blocked",
                "stage": "runner",
                "node": None,
                "code": "runner_error",
                "reason": f"{type(e).__name__}: {e}",
            }
        row["total_seconds"] = round(time.time() - t0, 1)
        rows.append(row)
        where = (
            safe(
                f" at {row.get('stage')}: {row.get('node') or ''} [{row.get('code')}] {short(row.get('reason') or '', 100)}"
            )
            if row["outcome"] == "blocked"
            else ""
        )
        print(f"{name}: {row['outcome']}{where} ({row['total_seconds']} s)", flush=True)

    header = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "tpat_commit": _git_commit(),
        "tpat": os.path.relpath(tpat, ROOT) if tpat.startswith(str(ROOT) + os.sep) else tpat,
        "sm": args.sm,
        "builder": _builder(out, rows),
    }
    (out / "results.json").write_text(json.dumps({"run": header, "models": rows}, indent=1) + "\n")
    table = markdown(rows, header)
    (out / "results.md").write_text(table)
    print(f"\nResults: {out / 'results.md'}, {out / 'results.json'}")
    if args.readme:
        _update_readme(Path(args.readme), table)
    return 0


def _model_names(models: Path) -> list[str]:
    sys.path.insert(0, str(HERE))
    try:  # the suite's order, when models.py can be read without torch
        order = re.findall(r'^\s*Model\("([^"]+)"', (HERE / "models.py").read_text(), re.M)
    except OSError:
        order = []
    present = (
        {p.stem for p in models.glob("*.onnx") if not p.name.startswith(".")}
        | {  # .x.tmp: an export under way
            p.name[: -len(".failed.json")] for p in models.glob("*.failed.json")
        }
    )
    return [n for n in order if n in present] + sorted(present - set(order))


def _small_names() -> list[str]:
    m = re.search(r"^SMALL\s*=\s*\[(.*?)\]", (HERE / "models.py").read_text(), re.M | re.S)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def _git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        return "?"


def _builder(out: Path, rows: list[dict]) -> str | None:
    """What built the engines: `tpat engine`'s Builder line, else the bridge Python's TensorRT."""
    for r in rows:
        log = out / r["model"] / "engine.log"
        if log.exists():
            m = re.search(r"^Builder: (.*)$", log.read_text(errors="replace"), re.M)
            if m:
                return m.group(1).strip()
    python = os.environ.get("TPAT_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    probe = (
        "import importlib\n"
        "for n, label in (('tensorrt', 'TensorRT'), ('tensorrt_rtx_bindings', 'TensorRT-RTX')):\n"
        "    try:\n        m = importlib.import_module(n); print(label, m.__version__); break\n"
        "    except Exception: pass\n"
    )
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


BEGIN, END = "<!-- real-models:begin -->", "<!-- real-models:end -->"


def _update_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"warning: {readme} has no {BEGIN} ... {END} markers; not updated", file=sys.stderr)
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + BEGIN + "\n" + table + END + tail)
    print(f"Updated the table in {readme}")


if __name__ == "__main__":
    sys.exit(main())
