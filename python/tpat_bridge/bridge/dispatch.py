"""TPAT's Python bridge: one JSON request on stdin, one JSON answer on stdout.

The Swift tool runs `python -m tpat_bridge` with the project's venv. Requests and answers follow
schemas/bridge.schema.json; every answer is {"protocol": 1, "ok": true, "result": {...}} or
{"protocol": 1, "ok": false, "error": {"code": str, "reason": str}}. Nothing but the answer goes
to stdout (library chatter is sent to stderr).

`COMMANDS` is the one table of bridge commands: command -> (module, function). A command's module is
imported when the command runs, not before: `version`, `infer_shapes`, `validate` and `probe` must
not pay TVM's import (3-8 s), and the GPU-machine commands (`bench`, `verify_model`) run where TVM
is not installed. tests/python/test_package_layout.py reads these module names as imports of this
module, so they obey the layering like any other import.
"""

import contextlib
import importlib
import json
import signal
import sys

from ..errors import BridgeError

PROTOCOL = 1

COMMANDS = {
    "version": ("tpat_bridge.bridge.versions", "versions"),
    "infer_shapes": ("tpat_bridge.planning.shapes", "infer_shapes"),
    "fold_ifs": ("tpat_bridge.planning.fold_if", "fold_ifs"),
    "probe": ("tpat_bridge.tools.probe", "probe"),
    "qnn_probe": ("tpat_bridge.tools.qnn_probe", "probe_qnn"),
    "validate": ("tpat_bridge.bridge.schema_check", "validate"),
    "reference": ("tpat_bridge.tools.reference", "make_reference"),
    "cross_check": ("tpat_bridge.tools.cross_check", "cross_check"),
    "verify_model": ("tpat_bridge.tools.verify_model", "bridge"),
    "tune": ("tpat_bridge.tools.tune", "tune"),
    "bench": ("tpat_bridge.tools.bench.runner", "run_bench"),
    "engine": ("tpat_bridge.tools.engine", "build_engine"),
    "plan": ("tpat_bridge.planning.plan", "run_plan"),
}


def _answer(obj, out):
    out.write(json.dumps(obj))
    out.write("\n")
    out.flush()


def _error(code, reason):
    return {"protocol": PROTOCOL, "ok": False, "error": {"code": code, "reason": reason}}


def dispatch(request: dict) -> dict:
    """Runs one request and returns the answer object (never raises)."""
    if not isinstance(request, dict) or "command" not in request:
        return _error("bad_request", "request must be an object with a 'command'")
    command = request["command"]
    entry = COMMANDS.get(command) if isinstance(command, str) else None
    if entry is None:
        return _error("bad_request", f"unknown command {command!r}")
    try:
        module, function = entry
        result = getattr(importlib.import_module(module), function)(request)
    except BridgeError as e:
        return _error(e.code, e.reason)
    except Exception as e:  # a bridge bug or an engine error: still an answer, never a trace
        reason = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        return _error("internal", reason[:2000])
    return {"protocol": PROTOCOL, "ok": True, "result": result}


def _stop(signum, _frame):
    # tpat ends the bridge's process group with SIGTERM (timeout, SIGINT/SIGTERM of tpat):
    # leave through SystemExit so that `with` blocks remove their temporary folders.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    real_stdout = sys.stdout
    try:
        request = json.loads(sys.stdin.read())
    except json.JSONDecodeError as e:
        _answer(_error("bad_request", f"request is not JSON: {e}"), real_stdout)
        return 0
    # Engines print to stdout; keep the answer channel clean.
    with contextlib.redirect_stdout(sys.stderr):
        answer = dispatch(request)
    _answer(answer, real_stdout)
    return 0
