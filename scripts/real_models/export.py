"""Export the real-model suite to ONNX (random weights), once: models already in OUT are kept.

    .venv-models/bin/python scripts/real_models/export.py [--out .real-models] [--only a,b] [--small] [--force]

Each model is exported in its own process (a crash or hang costs that model only, --timeout each)
into OUT/<name>.onnx, with OUT/<name>.json (package versions, exporter, inputs, op histogram),
OUT/<name>.inputs.npz, the export's own example inputs (keys: the graph input names), for
`tpat verify OUT --model --inputs` where random inputs do not fit the traced graph (the MoE models'
routing Split sizes are baked in), and OUT/<name>.torch-outputs.npz, PyTorch's outputs on them
(keys: the graph output names; `python -m tpat_bridge.tools.verify_model OUT --cpu --inputs ...
--expected ...` compares the rewritten model with them where ONNX Runtime cannot run the original).
A model that fails to export gets OUT/<name>.failed.json with the error instead, and is retried
on the next run. Runs in the models venv (scripts/real_models/requirements.lock).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def export_one(name: str, out: Path) -> dict:
    import importlib.metadata as md

    import onnx
    import torch

    sys.path.insert(0, str(HERE))
    from models import BY_NAME, torchvision_with_python_ops

    torchvision_with_python_ops()  # first: transformers imports torchvision too
    spec = BY_NAME[name]
    torch.manual_seed(0)
    t0 = time.time()
    module, inputs, input_names = spec.build()
    module.eval()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".onnx", dir=out)
    os.close(fd)
    tmp = Path(tmp_name)
    with torch.no_grad():  # PyTorch's own outputs on the example inputs, before the export traces it
        flat = _flatten(module(*inputs))
    try:
        with torch.no_grad():
            if spec.exporter == "dynamo":
                torch.onnx.export(
                    module,
                    inputs,
                    str(tmp),
                    dynamo=True,
                    opset_version=spec.opset,
                    input_names=input_names,
                    optimize=spec.optimize,
                    external_data=False,
                )
            else:
                torch.onnx.export(
                    module,
                    inputs,
                    str(tmp),
                    dynamo=False,
                    opset_version=spec.opset,
                    input_names=input_names,
                    do_constant_folding=True,
                )
        if spec.fold:
            _fold_with_onnxruntime(tmp)
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        ops = collections.Counter(n.op_type for n in model.graph.node)
        subgraph_ops = collections.Counter()
        for n in model.graph.node:
            for a in n.attribute:
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    subgraph_ops.update(x.op_type for x in g.node)
        meta = {
            "name": name,
            "what": spec.what,
            "package": spec.package,
            "versions": {p: md.version(p) for p in sorted({"torch", "onnx", spec.package})},
            "exporter": spec.exporter
            + ("" if spec.optimize or spec.exporter != "dynamo" else " (optimize=False)")
            + (" + onnxruntime constant folding" if spec.fold else ""),
            "opset": spec.opset,
            "inputs": [
                {"name": n, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
                for n, t in zip(input_names, inputs)
            ],
            "nodes": len(model.graph.node),
            "ops": dict(sorted(ops.items())),
            "subgraph_ops": dict(sorted(subgraph_ops.items())),
            "bytes": tmp.stat().st_size,
            "export_seconds": round(time.time() - t0, 1),
        }
        graph_inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
        kept = [(n, t) for n, t in zip(input_names, inputs) if n in graph_inputs]  # unused ones are dropped
        meta["inputs_npz"] = _save_inputs(out / f"{name}.inputs.npz", kept)
        outs = [o.name for o in model.graph.output]
        if len(flat) == len(outs):
            meta["torch_outputs_npz"] = _save_inputs(out / f"{name}.torch-outputs.npz", list(zip(outs, flat)))
        else:
            meta["torch_outputs_npz"] = None
            meta["torch_outputs_note"] = f"{len(flat)} tensors from PyTorch, {len(outs)} graph outputs: not saved"
        os.replace(tmp, out / f"{name}.onnx")
        return meta
    finally:
        tmp.unlink(missing_ok=True)


def _flatten(value) -> list:
    """The tensors of a module's result (tensor, tuple/list, dict, ModelOutput) in order."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return []


def _save_inputs(path: Path, named) -> str:
    """Tensors as an .npz keyed by graph input (or output) name (written, then moved into place):
    the export's example inputs, and PyTorch's outputs on them."""
    import numpy as np

    arrays = {n: t.detach().cpu().numpy() for n, t in named}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return path.name


def _fold_with_onnxruntime(path: Path) -> None:
    """Constant folding by ONNX Runtime's basic (ONNX-only) graph optimizations, saved in place."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    folded = path.with_suffix(".folded.onnx")
    opts.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    os.replace(folded, path)


def main() -> int:
    sys.path.insert(0, str(HERE))
    from models import MODELS, SMALL

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE.parent.parent / ".real-models"))
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--small", action="store_true", help="only the subset `make test` runs")
    ap.add_argument("--force", action="store_true", help="export again even if present")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per model")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: export this model in this process
    ap.add_argument("--list", action="store_true", help="print the model names and exit")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.list:
        for m in MODELS:
            print(m.name)
        return 0
    if args.one:
        meta = export_one(args.one, out)
        (out / f"{args.one}.json").write_text(json.dumps(meta, indent=2) + "\n")
        (out / f"{args.one}.failed.json").unlink(missing_ok=True)
        return 0

    names = [m.name for m in MODELS]
    if args.small:
        names = list(SMALL)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names and n not in [m.name for m in MODELS]]
        if unknown:
            print(f"error: unknown model(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        names = wanted
    failed = 0
    for name in names:
        onnx_path, meta_path = out / f"{name}.onnx", out / f"{name}.json"
        if onnx_path.exists() and meta_path.exists() and (out / f"{name}.inputs.npz").exists() and not args.force:
            print(f"{name}: cached ({onnx_path})")
            continue
        t0 = time.time()
        try:
            p = subprocess.run(
                [sys.executable, __file__, "--out", str(out), "--one", name],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
            ok, log = p.returncode == 0, (p.stdout + p.stderr)
        except subprocess.TimeoutExpired as e:
            ok, log = False, f"timed out after {args.timeout} s\n{e.stdout or ''}{e.stderr or ''}"
        if ok:
            print(f"{name}: exported in {time.time() - t0:.0f} s -> {onnx_path}")
        else:
            failed += 1
            lines = [ln for ln in log.strip().splitlines() if ln.strip()]
            errors = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", ln)]
            summary = [ln for ln in lines if ln.startswith("<class '")]  # torch.onnx's "Exception summary"
            last = (summary[:1] or errors or lines or ["no output"])[-1]
            (out / f"{name}.failed.json").write_text(
                json.dumps({"name": name, "error": last, "log_tail": lines[-80:]}, indent=2) + "\n"
            )
            print(f"{name}: export FAILED: {last}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - the --one child reports through its exit status and log
        traceback.print_exc()
        sys.exit(1)
