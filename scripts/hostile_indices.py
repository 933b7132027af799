"""Out-of-range index cases for `tpat verify --sanitize` (issue 11, item 8).

  .venv/bin/python scripts/hostile_indices.py model M.onnx   # ScatterND (none, add), ScatterElements, the gathers
  tpat generate M.onnx --ops ScatterND,ScatterElements,GatherND,Gather,GatherElements -o OUT
  .venv/bin/python scripts/hostile_indices.py cases OUT     # one more reference case per plugin

The extra case has the shapes of the plugin's case 0 and indices far out of range (dim, dim + 3,
-dim - 5, 2^40, -2^62) mixed with valid and negative ones. Its expected output follows TPAT's
documented semantics, not ONNX Runtime's (ONNX calls such indices an error and ONNX Runtime
refuses them): ScatterND/ScatterElements wrap a negative index once (+ dim) and skip an update
whose index is still out of range; GatherND, Gather and GatherElements wrap, then clamp. On the GPU machine
`tpat verify --sanitize OUT` then runs every plugin on it under compute-sanitizer memcheck; without
the tpat binary there, the same checks are:

  cmake -S OUT/plugins -B OUT/plugins/build -DTPAT_CUDA_ARCHITECTURES=90 && cmake --build OUT/plugins/build -j
  for m in OUT/plugins/*/reference/manifest.txt; do
    compute-sanitizer --tool memcheck --error-exitcode 99 OUT/plugins/build/tpat_check \
      OUT/plugins/build/libtpat_kernels.so "$m" --all-tactics; done
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h

NP = {"float32": np.float32, "int64": np.int64, "int32": np.int32}


def make_model(path: str) -> None:
    f, i = TP.FLOAT, TP.INT64
    vi = h.make_tensor_value_info
    nodes = [
        h.make_node("ScatterND", ["d0", "i0", "u0"], ["o0"], name="scatternd_none"),
        h.make_node("ScatterND", ["d1", "i1", "u1"], ["o1"], name="scatternd_add", reduction="add"),
        h.make_node("ScatterElements", ["d2", "i2", "u2"], ["o2"], name="scatterelements_axis1", axis=1),
        h.make_node("GatherND", ["d3", "i3"], ["o3"], name="gathernd"),
        h.make_node("Gather", ["d4", "i4"], ["o4"], name="gather_axis0", axis=0),
        h.make_node("GatherElements", ["d5", "i5"], ["o5"], name="gatherelements_axis1", axis=1),
    ]
    inputs = [
        vi("d0", f, ["N", 4]),
        vi("i0", i, ["M", 1]),
        vi("u0", f, ["M", 4]),
        vi("d1", f, ["N", 4]),
        vi("i1", i, ["M", 1]),
        vi("u1", f, ["M", 4]),
        vi("d2", f, ["N", 8]),
        vi("i2", i, ["N", 3]),
        vi("u2", f, ["N", 3]),
        vi("d3", f, ["N", 4]),
        vi("i3", i, ["M", 1]),
        vi("d4", f, ["N", 4]),
        vi("i4", i, ["M"]),
        vi("d5", f, ["N", 8]),
        vi("i5", i, ["N", 3]),
    ]
    outputs = [
        vi("o0", f, ["N", 4]),
        vi("o1", f, ["N", 4]),
        vi("o2", f, ["N", 8]),
        vi("o3", f, ["M", 4]),
        vi("o4", f, ["M", 4]),
        vi("o5", f, ["N", 3]),
    ]
    m = h.make_model(h.make_graph(nodes, "hostile_indices", inputs, outputs), opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    onnx.save(m, path)


def _bad(dim: int, n: int, rng, rot: int = 0) -> np.ndarray:
    """n indices for an axis of size dim: out of range ones first, then distinct valid ones (some
    negative)."""
    pool = [dim, dim + 3, -dim - 5, 2**40, -(2**62)]
    pool = pool[rot % len(pool) :] + pool[: rot % len(pool)]
    out = pool[: min(len(pool), max(1, n - dim))]
    valid = list(rng.permutation(dim))
    while len(out) < n:
        v = int(valid.pop()) if valid else 0
        out.append(v - dim if len(out) % 2 else v)  # some valid ones negative (wrapped)
    return np.array(out[:n], np.int64)


def _parse(manifest: Path):
    lines = manifest.read_text().splitlines()
    op, cases, cur = None, [], None
    for ln in lines:
        w = ln.split("#")[0].split()
        if not w:
            continue
        if w[0] == "op":
            op = w[1]
        elif w[0] == "case":
            cur = {"inputs": [], "outputs": []}
        elif w[0] in ("input", "output") and cur is not None:
            rank = int(w[3])
            entry = {
                "index": int(w[1]),
                "dtype": w[2],
                "shape": [int(x) for x in w[4 : 4 + rank]],
                "rest": w[4 + rank + 1 :],
            }
            cur[w[0] + "s"].append(entry)
        elif w[0] == "end" and cur is not None:
            cases.append(cur)
            cur = None
    return op, cases


def add_case(plugin: Path) -> str | None:
    manifest = plugin / "reference" / "manifest.txt"
    if not manifest.exists():
        return None
    op, cases = _parse(manifest)
    if op not in ("ScatterND", "ScatterElements", "GatherND", "Gather", "GatherElements") or not cases:
        return None
    node = onnx.load(str(plugin / f"{plugin.name}.onnx")).graph.node[0]
    attrs = {a.name: h.get_attribute_value(a) for a in node.attribute}
    rng = np.random.default_rng(11)
    c0 = cases[0]
    shapes = [list(e["shape"]) for e in c0["inputs"]]
    if op in ("ScatterND", "GatherND", "Gather"):  # rows of indices: all 5 bad values + every valid row once
        rows = 5 + shapes[0][0]
        shapes[1][0] = rows
        if op == "ScatterND":
            shapes[2][0] = rows
    data = rng.standard_normal(shapes[0]).astype(np.float32)
    if op == "Gather":  # axis 0
        idx = _bad(shapes[0][0], shapes[1][0], rng)
        w = np.where(idx < 0, idx + shapes[0][0], idx)
        out = data[np.clip(w, 0, shapes[0][0] - 1)]
        ins = [data, idx]
    elif op == "GatherElements":
        axis = int(attrs.get("axis", 0)) % len(shapes[0])
        dim = shapes[0][axis]
        idx = np.stack([_bad(dim, shapes[1][1], np.random.default_rng(r), rot=r) for r in range(shapes[1][0])])
        out = np.take_along_axis(data, np.clip(np.where(idx < 0, idx + dim, idx), 0, dim - 1), axis=axis)
        ins = [data, idx]
    elif op == "GatherND":
        idx = _bad(shapes[0][0], shapes[1][0], rng).reshape(shapes[1])
        w = np.where(idx < 0, idx + shapes[0][0], idx)
        out = data[np.clip(w[:, 0], 0, shapes[0][0] - 1)]
        ins = [data, idx]
    elif op == "ScatterND":
        red = attrs.get("reduction", b"none")
        red = red.decode() if isinstance(red, bytes) else red
        idx = _bad(shapes[0][0], shapes[1][0], rng).reshape(shapes[1])
        upd = rng.standard_normal(shapes[2]).astype(np.float32)
        out = data.copy()
        for u in range(idx.shape[0]):
            t = int(idx[u, 0])
            t = t + shapes[0][0] if t < 0 else t
            if 0 <= t < shapes[0][0]:
                out[t] = upd[u] if red == "none" else out[t] + upd[u]
        ins = [data, idx, upd]
    else:  # ScatterElements, reduction none
        axis = int(attrs.get("axis", 0)) % len(shapes[0])
        dim = shapes[0][axis]
        idx = np.stack([_bad(dim, shapes[1][1], np.random.default_rng(r), rot=r) for r in range(shapes[1][0])])
        upd = rng.standard_normal(shapes[2]).astype(np.float32)
        out = data.copy()
        for p in np.ndindex(*idx.shape):
            t = int(idx[p])
            t = t + dim if t < 0 else t
            if 0 <= t < dim:
                q = list(p)
                q[axis] = t
                out[tuple(q)] = upd[p]
        ins = [data, idx, upd]
    k = len(cases)
    cdir = plugin / "reference" / f"case{k}"
    cdir.mkdir(parents=True, exist_ok=True)
    text = [f"case {k}", "# out-of-range indices (scripts/hostile_indices.py): TPAT semantics, not ONNX Runtime"]
    for e, arr in zip(c0["inputs"], ins):  # shapes as built above
        arr = arr.astype(NP[e["dtype"]])
        (cdir / f"in{e['index']}.bin").write_bytes(arr.tobytes())
        text.append(
            f"input {e['index']} {e['dtype']} {arr.ndim} {' '.join(map(str, arr.shape))} case{k}/in{e['index']}.bin"
        )
    o = c0["outputs"][0]
    (cdir / "out0.bin").write_bytes(out.astype(NP[o["dtype"]]).tobytes())
    text.append(
        f"output 0 {o['dtype']} {out.ndim} {' '.join(map(str, out.shape))} case{k}/out0.bin {' '.join(o['rest'])}"
    )
    text.append("end")
    with manifest.open("a") as fh:
        fh.write("\n".join(text) + "\n")
    return f"{plugin.name} ({op}): case {k}, indices {ins[1].reshape(-1).tolist()[:8]}"


def main(argv):
    if len(argv) == 3 and argv[1] == "model":
        make_model(argv[2])
    elif len(argv) == 3 and argv[1] == "cases":
        for p in sorted((Path(argv[2]) / "plugins").iterdir()):
            if p.is_dir():
                r = add_case(p)
                if r:
                    print(r)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
