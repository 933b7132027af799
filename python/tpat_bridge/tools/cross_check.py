"""Bridge command "cross_check": every tactic of a plugin built for LLVM and run on the CPU against
the plugin's reference data (ONNX Runtime's outputs), before the plugin is generated.

A tactic's kernels come from one lowering of the node: TPAT's own (the lowerings registry's `tpat_module`, in its
"cpu" mode: the same index arithmetic with serial loops) or TVM's frontend lowering
(`planning.relax_import.build_relax_module`, with the planner's fixups). The same Relax module the planner
schedules for CUDA is compiled for LLVM here, so a lowering that computes the wrong thing (an
ignored attribute, a wrong formula) is caught without a GPU. The CUDA schedule itself is not
checked here (that is `tpat verify` on a GPU).

Request:  {"command": "cross_check", "plugins": [{"model_path": "P/P.onnx", "reference_dir":
           "P/reference", "tactics": ["tpat", "tvm", ...]}, ...], "max_case_bytes": 1048576}
           (or one plugin's fields at the top level: the answer is then that plugin's)
Answer:   {"plugins": [one per plugin, in order: {"error": reason} or] {"tactics": [{"tactic": k, "lowering": ..., "status": "agrees" | "disagrees" | "skipped",
           "max_error": float, "cases": n, "detail": str}], "seconds": float}

Only cases up to `max_case_bytes` (inputs + outputs; default 1 MiB) are run, so the check stays
cheap; a tactic with no such case, or one the CPU cannot build or run (bfloat16 tensors, a lowering
LLVM rejects), is "skipped" with the reason, never counted as a disagreement. Tolerances are those
of the manifest (compare.py, the rule of `tpat_check`: |got - want| <= atol + rtol * |want|, NaN matches NaN,
integers and bool exactly).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tvm
from tvm import relax

from .. import dtypes
from ..errors import BridgeError
from ..lowerings import registry
from ..planning.load import load_node
from ..planning.relax_import import build_relax_module
from . import compare

DEFAULT_MAX_CASE_BYTES = 1 << 20
# dtype -> numpy dtype of reference files run on the CPU (dtypes.DTYPES): bfloat16 is not run (numpy has
# no such type), bool is stored as one byte per element.
_NP = {n: np.dtype("uint8" if n == "bool" else d.numpy) for n, d in dtypes.DTYPES.items() if n != "bfloat16"}


def _load(ref_dir: str, t: dict) -> np.ndarray:
    if t["dtype"] not in _NP:
        raise _Skip(f"{t['dtype']} tensors are not run on the CPU")
    a = np.fromfile(os.path.join(ref_dir, t["file"]), dtype=np.dtype(_NP[t["dtype"]]).newbyteorder("<"))
    a = a.astype(_NP[t["dtype"]]).reshape(t["shape"])
    return a.astype(np.bool_) if t["dtype"] == "bool" else a


class _Skip(Exception):
    pass


def _module(model_path: str, lowering: str):
    info = load_node(model_path)
    if lowering == "tpat":
        tl = registry.tpat_module(info, mode="cpu")
        if tl is None:
            raise _Skip("no TPAT lowering applies")
        return info, tl[0]
    return info, build_relax_module(info)


def _run_lowering(model_path: str, lowering: str, ref_dir: str, cases: list) -> dict:
    try:
        info, mod = _module(model_path, lowering)
        with tvm.target.Target({"kind": "llvm"}):
            ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
        vm = relax.VirtualMachine(ex, tvm.cpu())
    except _Skip as e:
        return {"status": "skipped", "max_error": 0.0, "cases": 0, "detail": str(e)}
    except Exception as e:  # noqa: BLE001 - a CPU build failure proves nothing about the CUDA one
        return {
            "status": "skipped",
            "max_error": 0.0,
            "cases": 0,
            "detail": f"no LLVM build: {type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}",
        }
    worst, n, bad = 0.0, 0, []
    for case in cases:
        try:
            feeds = [_load(ref_dir, t) for t in case["inputs"]]
            wants = [_load(ref_dir, t) for t in case["outputs"]]
            res = vm["main"](
                *[tvm.runtime.tensor(np.require(f, requirements="C")) for f in feeds]
            )  # rank 0 stays rank 0
        except _Skip as e:
            return {"status": "skipped", "max_error": 0.0, "cases": 0, "detail": str(e)}
        except Exception as e:  # noqa: BLE001
            return {
                "status": "skipped",
                "max_error": 0.0,
                "cases": n,
                "detail": f"LLVM run failed: {type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}",
            }
        outs = [res.numpy()] if hasattr(res, "numpy") else [r.numpy() for r in res]
        outs = compare.actual_outputs(outs, wants, info.data_dependent)
        if len(outs) != len(wants):
            return {
                "status": "disagrees",
                "max_error": float("inf"),
                "cases": n + 1,
                "detail": f"{len(outs)} outputs, reference has {len(wants)}",
            }
        for j, (got, want, t) in enumerate(zip(outs, wants, case["outputs"])):
            err, ok = compare.error(got, want, float(t.get("atol", 0)), float(t.get("rtol", 0)))
            worst = max(worst, err)
            if not ok:
                bad.append(f"case {case['index']} output {j}")
        n += 1
    if n == 0:
        return {"status": "skipped", "max_error": 0.0, "cases": 0, "detail": "no reference case small enough"}
    if bad:
        return {"status": "disagrees", "max_error": worst, "cases": n, "detail": ", ".join(bad[:4])}
    return {"status": "agrees", "max_error": worst, "cases": n, "detail": ""}


def cross_check(request: dict) -> dict:
    """One plugin (model_path, reference_dir, tactics) or many ({"plugins": [...]}, one answer
    each: its result, or {"error": reason} when that plugin could not be checked)."""
    if "plugins" in request:
        if not isinstance(request["plugins"], list):
            raise BridgeError("input", "plugins must be a list")
        out = []
        for item in request["plugins"]:
            try:
                out.append(_one(dict(item, max_case_bytes=request.get("max_case_bytes", DEFAULT_MAX_CASE_BYTES))))
            except BridgeError as e:
                out.append({"error": e.reason})
            except Exception as e:  # noqa: BLE001 - one plugin's failure is its own
                out.append({"error": f"{type(e).__name__}: {str(e)[:300]}"})
        return {"plugins": out}
    return _one(request)


def _one(request: dict) -> dict:
    model_path = request.get("model_path")
    ref_dir = request.get("reference_dir")
    tactics = request.get("tactics")
    if (
        not isinstance(model_path, str)
        or not isinstance(ref_dir, str)
        or not isinstance(tactics, list)
        or not all(t in ("tpat", "tvm") for t in tactics)
    ):
        raise BridgeError("input", "cross_check needs model_path, reference_dir and tactics (\"tpat\" | \"tvm\")")
    limit = int(request.get("max_case_bytes", DEFAULT_MAX_CASE_BYTES))
    try:
        with open(os.path.join(ref_dir, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise BridgeError("input", f"no reference manifest in {ref_dir}: {e}") from None
    cases = [
        c for c in manifest.get("cases", []) if sum(int(t.get("bytes", 0)) for t in c["inputs"] + c["outputs"]) <= limit
    ]
    t0 = time.monotonic()
    done, out = {}, []
    for k, lowering in enumerate(tactics):
        if lowering not in done:  # tactics of one lowering (tuned, untuned) compute the same thing
            done[lowering] = _run_lowering(model_path, lowering, ref_dir, cases)
        out.append({"tactic": k, "lowering": lowering, **done[lowering]})
    for t in out:
        if t["max_error"] == float("inf"):
            t["max_error"] = 1e308
    return {"tactics": out, "seconds": round(time.monotonic() - t0, 3)}
