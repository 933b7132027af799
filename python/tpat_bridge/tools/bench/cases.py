"""The suite's cases (bench/cases.json), their minimal-traffic formulas, and the plugins of a
`tpat generate` OUT folder."""

from __future__ import annotations

import json
import math
import os

from tpat_bridge.errors import BridgeError

ITEMSIZE = {
    "float32": 4,
    "float16": 2,
    "int64": 8,
    "int32": 4,
    "bfloat16": 2,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
}


def traffic_bytes(code: str, inputs: list, outputs: list) -> int:
    """Evaluates a minimal-traffic formula. inputs/outputs: lists of (shape, dtype name);
    names in the formula: in0.., out0.., B(t) bytes, N(t) elements, S(t) shape."""
    env = {}
    for prefix, tensors in (("in", inputs), ("out", outputs)):
        for i, (shape, dtype) in enumerate(tensors):
            env[f"{prefix}{i}"] = (tuple(int(d) for d in shape), dtype)

    def N(t):
        return int(math.prod(t[0]))

    def B(t):
        return N(t) * ITEMSIZE[t[1]]

    def S(t):
        return t[0]

    env.update({"B": B, "N": N, "S": S, "prod": math.prod, "min": min, "max": max})
    return int(eval(code, {"__builtins__": {}}, env))


def default_traffic_code(n_in, n_out):
    """Every input and output once: the formula of a plugin without a case."""
    return " + ".join([f"B(in{i})" for i in range(n_in)] + [f"B(out{j})" for j in range(n_out)])


# --------------------------------------------------------------------------------------------
# finding plugins and cases
# --------------------------------------------------------------------------------------------


def load_cases(path):
    """{case id: case} in the file's order; each case gets "model_path", its suite model."""
    if not path:
        return {}
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise BridgeError("input", f"bench: cannot read cases file {path}: {e}")
    models = os.path.join(os.path.dirname(os.path.abspath(path)), doc.get("models_dir", "models"))
    return {c["id"]: dict(c, model_path=os.path.join(models, c["model"])) for c in doc.get("cases", [])}


def discover_plugins(out_dir):
    """[(plugin name, plugin folder, plugin.json dict)] of one OUT folder, sorted by name."""
    pdir = os.path.join(out_dir, "plugins")
    if not os.path.isdir(pdir):
        raise BridgeError("input", f"bench: {out_dir} has no plugins/ folder (run tpat generate)")
    found = []
    for name in sorted(os.listdir(pdir)):
        d = os.path.join(pdir, name)
        pj = os.path.join(d, f"{name}.plugin.json")
        if os.path.isfile(os.path.join(d, f"{name}.onnx")) and (
            os.path.isfile(pj) or os.path.isfile(os.path.join(d, f"{name}.plan.json"))
        ):
            meta = {}
            if os.path.isfile(pj):
                with open(pj) as f:
                    meta = json.load(f)
            found.append((name, d, meta))
    return found


def _model_stem(out_dir):
    """The model name of an OUT folder (OUT/<model>.onnx), else the folder's name."""
    onnxs = [f[:-5] for f in os.listdir(out_dir) if f.endswith(".onnx")]
    if len(onnxs) == 1:
        return onnxs[0]
    return os.path.basename(os.path.normpath(out_dir))


def match_case(cases, out_dir, op):
    stem = _model_stem(out_dir)
    c = cases.get(stem) or cases.get(os.path.basename(os.path.normpath(out_dir)))
    if c and c.get("op") == op:
        return c
    hits = [c for c in cases.values() if c.get("op") == op and c.get("model", "")[:-5] == stem]
    return hits[0] if hits else None
