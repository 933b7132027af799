"""TPAT's Python bridge: one JSON request on stdin, one JSON answer on stdout.

The Swift tool runs `python -m tpat_bridge` with the project's venv. Requests and answers follow
schemas/bridge.schema.json; every answer is {"protocol": 1, "ok": true, "result": {...}} or
{"protocol": 1, "ok": false, "error": {"code": str, "reason": str}}. Nothing but the answer goes
to stdout (library chatter is sent to stderr).
"""
import contextlib
import json
import os
import signal
import sys

from tpat_bridge.errors import BridgeError

PROTOCOL = 1


def _answer(obj, out):
    out.write(json.dumps(obj))
    out.write("\n")
    out.flush()


def dispatch(request: dict) -> dict:
    """Runs one request and returns the answer object (never raises)."""
    if not isinstance(request, dict) or "command" not in request:
        return {"protocol": PROTOCOL, "ok": False, "error": {"code": "bad_request", "reason": "request must be an object with a 'command'"}}
    command = request["command"]
    try:
        if command == "version":
            from . import versions
            result = versions.versions()
        elif command == "infer_shapes":
            from . import shapes
            result = shapes.infer_shapes(request)
        elif command == "probe":
            from . import probe
            result = probe.probe(request)
        elif command == "qnn_probe":
            from . import qnn_probe
            result = qnn_probe.probe_qnn(request)
        elif command == "validate":
            from . import schema_check
            result = schema_check.validate(request)
        elif command == "reference":
            from .tools import reference
            result = reference.make_reference(request)
        elif command == "cross_check":
            from . import cross_check
            result = cross_check.cross_check(request)
        elif command == "verify_model":
            from . import verify_model
            result = verify_model.bridge(request)
        elif command == "tune":
            from . import tune
            result = tune.tune(request)
        elif command == "bench":
            from .tools import bench
            result = bench.run_bench(request)
        elif command == "engine":
            from . import engine
            result = engine.build_engine(request)
        elif command == "plan":
            from . import planner
            answer = planner.handle_plan(request)
            if answer.get("ok"):
                result = answer["plan"]
            else:
                return {"protocol": PROTOCOL, "ok": False, "error": answer["error"]}
        else:
            return {"protocol": PROTOCOL, "ok": False, "error": {"code": "bad_request", "reason": f"unknown command {command!r}"}}
    except BridgeError as e:
        return {"protocol": PROTOCOL, "ok": False, "error": {"code": e.code, "reason": e.reason}}
    except Exception as e:  # a bridge bug or an engine error: still an answer, never a trace
        reason = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        return {"protocol": PROTOCOL, "ok": False, "error": {"code": "internal", "reason": reason[:2000]}}
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
        _answer({"protocol": PROTOCOL, "ok": False, "error": {"code": "bad_request", "reason": f"request is not JSON: {e}"}}, real_stdout)
        return 0
    # Engines print to stdout; keep the answer channel clean.
    with contextlib.redirect_stdout(sys.stderr):
        answer = dispatch(request)
    _answer(answer, real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
