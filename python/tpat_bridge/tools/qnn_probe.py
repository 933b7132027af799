"""Asks Qualcomm QNN's HTP backend, through ONNX Runtime's QNN execution provider, which nodes it takes.

onnxruntime-qnn is a plugin execution provider: `register_execution_provider_library("QNN", ...)`,
then `SessionOptions.add_provider_for_devices(devices, {"backend_path": libQnnHtp.so})`. On an
x86_64 machine the HTP backend runs as Qualcomm's x86 HTP emulation, and it validates every op
config the provider hands it exactly as on the device (`backendValidateOpConfig`).

Every node is cut out into a one-node model (as `probe.py` does for TensorRT) and given to a fresh
session. The answer is read from ONNX Runtime's verbose log, which the provider writes to stderr:
where the session placed the node ("Node placements"), the provider's own refusal
("Validation FAILED ... REASON : ...") and QNN's ("QNN.backendValidateOpConfig() failed for node
`n` of type `T` with error code N"). The sessions run in a worker process whose stderr goes to a
file per node, so a backend that aborts costs one node (`qnn.crash`), never the model.

Rules (the `rule` of a refused node):
  qnn.op       the provider has no builder for the op type ("Operators of type `X` are not supported")
  qnn.backend  QNN's HTP backend rejected the op config (backendValidateOpConfig, with its error code)
  qnn.ep       the provider refused the node for another stated reason (dynamic shape, data type, ...)
  qnn.session  ONNX Runtime could not create a session around the node; its error is the reason
  qnn.crash    the backend killed the worker process on this node
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import onnxruntime as ort

from ..planning.shapes import infer_model, load_model
from .probe import _one_node_model, _types_and_constants

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BACKEND_FAIL = re.compile(
    r"QNN\.backendValidateOpConfig\(\) failed for node `(?P<node>[^`]*)` of type `(?P<op>[^`]*)` with error code (?P<code>\d+)"
)
_EP_FAIL = re.compile(
    r"Validation FAILED for \d+ nodes in OrtNodeUnit \((?P<op>[^)]*)\) :\s*\n\s*Operator type: (?P<type>\S+) Node name: (?P<node>.*?) Node index: \d+\s*\n\s*REASON : (?P<reason>[^\n]*)"
)
_PLACED = re.compile(r"(?:Node\(s\)|All nodes) placed on \[(?P<ep>[^\]]+)\]\. Number of nodes: (?P<n>\d+)")
_INTERFACE = re.compile(r"Found valid interface, version: (?P<v>[\d.]+) backend provider name: (?P<name>\S+)")
_NODE_TIMEOUT_S = 120
# The HTP the backend validates for: Snapdragon X Elite (soc_model 60, HTP v75), float32 models run in
# fp16 as ONNX Runtime documents for HTP. Without fp16 precision the x86 HTP backend fails to finalize
# float32 graphs of ScatterND, GridSample or CumSum (QNN_COMMON_ERROR_MEM_ALLOC) that it takes in fp16;
# the provider refuses fp16 precision without a soc_model.
HTP_OPTIONS = {"soc_model": "60", "htp_arch": "75", "enable_htp_fp16_precision": "1"}


def _clean(text: str, limit: int = 400) -> str:
    """Log text made printable: colour codes and control characters removed, one line, bounded."""
    text = _ANSI.sub("", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:limit]


def _qnn():
    try:  # lazy: an availability probe (onnxruntime-qnn is an optional package)
        import onnxruntime as ort
        import onnxruntime_qnn as qnn
    except Exception:  # noqa: BLE001
        return None, None
    return ort, qnn


def _session_options(ort, qnn):
    """SessionOptions with the QNN EP (HTP backend) appended through ORT's plugin-EP API, verbose log."""
    try:
        ort.register_execution_provider_library("QNN", qnn.get_library_path())
    except Exception as e:  # noqa: BLE001  already registered in this process
        if "already" not in str(e).lower():
            raise
    devices = [d for d in ort.get_ep_devices() if d.ep_name in ("QNN", qnn.get_ep_name())]
    if not devices:
        raise RuntimeError("the QNN execution provider library registered no device")
    so = ort.SessionOptions()
    so.log_severity_level = 0
    so.add_provider_for_devices(devices[:1], {"backend_path": qnn.get_qnn_htp_path(), **HTP_OPTIONS})
    return so


def classify(log: str, node_name: str, error: str | None) -> dict:
    """The verdict for one node from its session's verbose log and the session error, if any."""
    placements: dict[str, list[str]] = {}
    lines = log.splitlines()
    for k, line in enumerate(lines):
        m = _PLACED.search(line)
        if not m:
            continue
        members = []
        for follow in lines[k + 1 : k + 1 + int(m["n"])]:
            members.append(
                follow.split("]", 1)[-1].strip() if "VerifyEachNodeIsAssignedToAnEp" in follow else follow.strip()
            )
        placements[m["ep"]] = members
    on_cpu = any(member.endswith(f"({node_name})") for member in placements.get("CPUExecutionProvider", []))
    backend = list(_BACKEND_FAIL.finditer(log))
    ep = [m for m in _EP_FAIL.finditer(log) if m["reason"].strip() != "Failed to add node."]
    if error is None and not on_cpu and any(ep_name != "CPUExecutionProvider" for ep_name in placements):
        return {"taken": True, "rule": None, "error": None}
    if backend:
        m = backend[0]
        return {
            "taken": False,
            "rule": "qnn.backend",
            "error": _clean(
                f"QNN.backendValidateOpConfig() failed for node `{m['node']}` of type `{m['op']}` with error code {m['code']}"
            ),
        }
    if ep:
        reason = ep[0]["reason"]
        rule = "qnn.op" if "are not supported by QNN EP" in reason else "qnn.ep"
        return {"taken": False, "rule": rule, "error": _clean(reason)}
    if error is not None:
        return {"taken": False, "rule": "qnn.session", "error": _clean(error)}
    return {
        "taken": False,
        "rule": "qnn.ep",
        "error": "ONNX Runtime placed the node on its CPU provider; the QNN provider logged no reason",
    }


def _run_one(ort, qnn, model_path: str, log_path: str) -> tuple[str | None, str]:
    """Creates a session for one model with stderr sent to `log_path`; returns (error, log)."""
    sys.stderr.flush()
    saved = os.dup(2)
    error = None
    with open(log_path, "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            ort.InferenceSession(model_path, _session_options(ort, qnn))
        except Exception as e:  # noqa: BLE001
            error = f"{type(e).__name__}: {e}"
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return error, f.read()


def worker(work: str, start: int) -> int:
    """Probes jobs[start:] of WORK/jobs.json, appending to WORK/results.jsonl ("start" before each)."""
    ort, qnn = _qnn()
    ort.set_default_logger_severity(3)
    with open(os.path.join(work, "jobs.json"), encoding="utf-8") as f:
        jobs = json.load(f)
    with open(os.path.join(work, "results.jsonl"), "a", encoding="utf-8") as out:
        for job in jobs[start:]:
            out.write(json.dumps({"start": job["index"]}) + "\n")
            out.flush()
            error, log = _run_one(ort, qnn, job["path"], os.path.join(work, f"log_{job['index']}.txt"))
            if error is not None:
                error = error.replace(job["path"], "<one-node model>")
            verdict = classify(log, job["node"], error)
            interface = _INTERFACE.search(log)
            verdict.update(index=job["index"], interface=interface and f"{interface['name']} {interface['v']}")
            out.write(json.dumps(verdict) + "\n")
            out.flush()
    return 0


def _read_results(path: str) -> tuple[dict, int | None]:
    done, started = {}, None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "start" in r:
                    started = r["start"]
                else:
                    done[r["index"]] = r
    return done, started


def _run_worker(cmd: list[str], work: str, err) -> None:
    """Runs one worker to its end; kills it when a node takes longer than _NODE_TIMEOUT_S."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    results = os.path.join(work, "results.jsonl")
    current, since = None, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.2)
        done, started = _read_results(results)
        pending = started if started is not None and started not in done else None
        if pending != current:
            current, since = pending, time.monotonic()
        elif pending is not None and time.monotonic() - since > _NODE_TIMEOUT_S:
            proc.kill()
            proc.wait()


def backend_name(qnn, interface: str | None) -> str:
    api = f", {interface}" if interface else ""
    return (
        f"QNN HTP backend (libQnnHtp.so{api}; HTP v{HTP_OPTIONS['htp_arch']}, soc_model {HTP_OPTIONS['soc_model']}, "
        f"float32 as fp16) via onnxruntime-qnn {qnn.__version__}, ONNX Runtime {ort.__version__}"
    )


def probe_qnn(request: dict) -> dict:
    ort, qnn = _qnn()
    if qnn is None:
        return {
            "backend": None,
            "nodes": [],
            "note": "onnxruntime-qnn is not installed (x86_64 Linux and Windows wheels on PyPI)",
        }
    model = load_model(request.get("model_path", ""))
    inferred, _ = infer_model(model)
    types, constants = _types_and_constants(inferred)
    results: dict[int, dict] = {}
    interface = None
    with tempfile.TemporaryDirectory(prefix="tpat-qnn-") as work:
        jobs = []
        for i, node in enumerate(inferred.graph.node):
            name = node.name or f"{node.op_type}_{i}"
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                results[i] = {
                    "index": i,
                    "taken": True,
                    "rule": None,
                    "error": None,
                    "note": "constant: folded into its consumers",
                }
                continue
            sub = _one_node_model(inferred, i, types, constants)
            sub.graph.node[0].name = name
            path = os.path.join(work, f"node_{i}.onnx")
            with open(path, "wb") as f:
                f.write(sub.SerializeToString())
            jobs.append({"index": i, "node": name, "path": path})
        with open(os.path.join(work, "jobs.json"), "w", encoding="utf-8") as f:
            json.dump(jobs, f)
        position = {job["index"]: k for k, job in enumerate(jobs)}
        start = 0
        while start < len(jobs):
            cmd = [sys.executable, "-m", "tpat_bridge.tools.qnn_probe", work, str(start)]
            worker_err = os.path.join(work, "worker.err")
            with open(worker_err, "wb") as err:
                _run_worker(cmd, work, err)
            done, started = _read_results(os.path.join(work, "results.jsonl"))
            if started is None:  # the worker died before its first node: nothing can be asked
                with open(worker_err, encoding="utf-8", errors="replace") as f:
                    tail = _clean(f.read()[-2000:]) or "no output"
                return {"backend": None, "nodes": [], "note": f"the QNN probing process failed: {tail}"}
            for r in done.values():
                interface = interface or r.get("interface")
            results.update(done)
            if started is not None and started not in results:
                results[started] = {
                    "index": started,
                    "taken": False,
                    "rule": "qnn.crash",
                    "error": f"the QNN backend ended the probing process on this node (crash, or over {_NODE_TIMEOUT_S} s)",
                }
            missing = [job for job in jobs if job["index"] not in results]
            if not missing:
                break
            start = position[missing[0]["index"]]
    nodes = []
    for i, node in enumerate(inferred.graph.node):
        r = results[i]
        nodes.append(
            {
                "index": i,
                "node": node.name or f"{node.op_type}_{i}",
                "op_type": node.op_type,
                "taken": bool(r["taken"]),
                "rule": r.get("rule"),
                "error": r.get("error"),
            }
        )
    return {"backend": backend_name(qnn, interface), "nodes": nodes, "note": None}


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1], int(sys.argv[2])))
