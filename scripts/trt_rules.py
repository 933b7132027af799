#!/usr/bin/env python3
"""Regenerates TPAT's per-target TensorRT ONNX-parser rule sets (Sources/TPATCore/Selection/Resources).

  tensorrt10-onnx-operators.json   TensorRT 10.x: the docs table (onnx-tensorrt docs/operators.md @ 96e7811,
                                    transcribed by hand, kept as the base) + importer overrides (IMPORTER_10)
  tensorrt11-onnx-operators.json   TensorRT 11.x: the 10.x rules + TRT11 patches from onnx-tensorrt's table at the
                                    commit TensorRT 11.1 pins (7c51a63), importer overrides kept where they differ
  tensorrt-rtx-onnx-operators.json TensorRT-RTX 1.7: the 11.x rules corrected by what TensorRT-RTX's parser
                                    does with ONNX's node test models (onnx.backend.test data) and a few
                                    synthetic cases; needs `tensorrt_rtx_bindings` and the libtensorrt_rtx.so
                                    symlink folder (.venv/tpat-lib) on LD_LIBRARY_PATH.

Every op a patch or the probe changed carries `source` (where the rule comes from). Where the docs table and
the parser's importers disagree the importers win (cited by file, commit and line).

Usage: python scripts/trt_rules.py [10|11|rtx|all]   (rtx: ~1-2 min on 2 cores)
       python scripts/trt_rules.py check11 OPERATORS_MD  (diff the 11.x rules against a fetched docs/operators.md:
                                                         every status/type difference must be a cited override)
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RES = REPO / "Sources" / "TPATCore" / "Selection" / "Resources"
F10, F11, FRTX = (
    RES / "tensorrt10-onnx-operators.json",
    RES / "tensorrt11-onnx-operators.json",
    RES / "tensorrt-rtx-onnx-operators.json",
)

IMP10 = "onnx/onnx-tensorrt onnxOpImporters.cpp @ 96e7811"
IMPU10 = "onnx/onnx-tensorrt importerUtils.cpp @ 96e7811"
IMP_NEW = "onnx/onnx-tensorrt onnxOpImporters.cpp @ dd0a3a9"
# NVIDIA/TensorRT's `TensorRT 11.1 OSS Release` (82d1dca) pins the parsers/onnx submodule at 7c51a63; the 11.0 release
# (771d8ef) pins 5ab48c5, whose table was not retrievable here (neither mirror nor index holds that commit).
COMMIT_111 = "7c51a63a719180eb5160c874c111746f3fb46a6b"
DOCS_111 = "onnx/onnx-tensorrt docs/operators.md @ 7c51a63 (TensorRT 11.1 table; NVIDIA/TensorRT 82d1dca pins parsers/onnx there)"
CHANGELOG_107 = "onnx/onnx-tensorrt docs/Changelog.md, 10.7 GA: dynamic axes for Squeeze and Unsqueeze"
CHANGELOG_TENSOR_AXES = {
    "Slice": "onnx/onnx-tensorrt docs/Changelog.md, 10.3 GA: tensor `axes` inputs for Slice",
    "Pad": "onnx/onnx-tensorrt docs/Changelog.md, 10.4 GA: tensor `axes` for Pad",
}

FLOAT3 = ["FP32", "FP16", "BF16"]


def note(rid, text):
    return {"id": rid, "kind": "note", "text": text}


def drop(op, rid):
    op["restrictions"] = [r for r in op.get("restrictions", []) if r["id"] != rid]


def cite(op, src):
    if src not in op.get("source", ""):
        op["source"] = src if not op.get("source") else op["source"] + "; " + src


# --- TensorRT 10.x: the importers over the docs table -------------------------------------------------------
def importer_10(ops):
    """Where onnxOpImporters.cpp @ 96e7811 accepts more than docs/operators.md @ 96e7811 says."""
    ops["NonZero"]["types"] = ["FP32", "FP16", "BF16", "INT32", "INT64", "INT8", "BOOL"]
    cite(ops["NonZero"], f"{IMP10} L6404-6416 (NonZero accepts FLOAT, HALF, BF16, INT32, INT64, INT8, BOOL)")
    ops["Clip"]["types"] = FLOAT3 + ["INT32", "INT64"]
    cite(ops["Clip"], f"{IMP10} L563-580 (INT32/INT64 Clip imported through elementwise min/max)")
    for p in ("AveragePool", "MaxPool"):
        for r in ops[p]["restrictions"]:
            if r["id"] == f"{p}.rank":
                r["ranks"] = [3, 4, 5]
                r["text"] = "1D, 2D or 3D pooling (the docs say 2D or 3D; the importer expands 1D to 2D)"
        cite(ops[p], f"{IMPU10} L1387-1390 (poolingHelper expands 1D pooling to 2D)")
    for r in ops["If"]["restrictions"]:
        if r["id"] == "If.branches":  # the docs' restriction, made checkable (VerdictEvaluator compares the ranks)
            r["kind"] = "branchRanksEqual"
    drop(ops["TopK"], "TopK.sorted")
    cite(ops["TopK"], f"{IMP10} L5724-5770 (the TopK importer never reads `sorted`; results come sorted)")


# --- TensorRT 11.x ------------------------------------------------------------------------------------------
def patches_11(ops):
    def sup(name, types, src, restrictions=(), **extra):
        ops[name] = {"status": "supported", "types": types, **extra, "restrictions": list(restrictions), "source": src}

    sup(
        "Attention",
        FLOAT3 + ["INT8", "FP8"],
        f"{DOCS_111}; {IMP_NEW} (DEFINE_BUILTIN_OP_IMPORTER(Attention): one output, no past_key/past_value; 3D Q/K/V reshaped to 4D, where the 11.1 table says 4D only: the importer wins)",
        [
            {
                "id": "Attention.present_key",
                "kind": "outputUnused",
                "output": 1,
                "text": "only the first output is supported",
            },
            {
                "id": "Attention.present_value",
                "kind": "outputUnused",
                "output": 2,
                "text": "only the first output is supported",
            },
            {
                "id": "Attention.qk_matmul_output",
                "kind": "outputUnused",
                "output": 3,
                "text": "only the first output is supported",
            },
            {"id": "Attention.past_key", "kind": "inputAbsent", "input": 4, "text": "`past_key` is unsupported"},
            {"id": "Attention.past_value", "kind": "inputAbsent", "input": 5, "text": "`past_value` is unsupported"},
            {
                "id": "Attention.nonpad_kv_seqlen",
                "kind": "inputAbsent",
                "input": 6,
                "text": "`nonpad_kv_seqlen` is unsupported",
            },
            {
                "id": "Attention.softcap",
                "kind": "attributeAbsent",
                "attribute": "softcap",
                "text": "`softcap` is unsupported",
            },
            {
                "id": "Attention.qk_matmul_output_mode",
                "kind": "attributeAbsent",
                "attribute": "qk_matmul_output_mode",
                "text": "`qk_matmul_output_mode` is unsupported",
            },
            {
                "id": "Attention.rank",
                "kind": "inputRankIn",
                "input": 0,
                "ranks": [3, 4],
                "text": "Q, K and V 3D or 4D (3D is reshaped)",
            },
        ],
    )
    sup("RMSNormalization", FLOAT3, DOCS_111)
    sup("RotaryEmbedding", FLOAT3, DOCS_111, [note("RotaryEmbedding.position_ids", "`position_ids` must be INT64")])
    sup(
        "TensorScatter",
        FLOAT3 + ["INT32"],
        DOCS_111,
        [
            {
                "id": "TensorScatter.axis",
                "kind": "attributeIn",
                "attribute": "axis",
                "allowed": [-2],
                "default": -2,
                "text": "`axis` must be -2",
            },
            {
                "id": "TensorScatter.rank",
                "kind": "inputRankIn",
                "input": 0,
                "ranks": [4],
                "text": "`past_cache` and `update` must be 4D",
            },
        ],
    )
    sup("Swish", FLOAT3, DOCS_111)
    for w in ("BlackmanWindow", "HammingWindow", "HannWindow"):
        sup(
            w,
            ["FP32", "FP16"],
            f"{DOCS_111}; {IMP_NEW} (DEFINE_BUILTIN_OP_IMPORTER({w}): output_datatype must be 1)",
            [
                {
                    "id": f"{w}.output_datatype",
                    "kind": "attributeIn",
                    "attribute": "output_datatype",
                    "allowed": [1],
                    "default": 1,
                    "text": "output must be float32",
                }
            ],
            typeInputs=[],
            typeOutputs=[0],
        )
    sup(
        "STFT",
        ["FP32"],
        DOCS_111,
        [
            {
                "id": "STFT.frame_step",
                "kind": "inputConstant",
                "input": 1,
                "text": "`frame_step` must be an initializer",
            },
            {"id": "STFT.window", "kind": "inputConstant", "input": 2, "text": "`window` must be an initializer"},
            {
                "id": "STFT.real",
                "kind": "inputLastDimIn",
                "input": 0,
                "dims": [1],
                "text": "input must be real-valued (last dim 1)",
            },
        ],
    )
    ops["Pow"]["types"] = FLOAT3 + ["INT32", "INT64"]
    cite(ops["Pow"], DOCS_111)
    for op in ("Constant", "ConstantOfShape"):
        ops[op]["types"] = FLOAT3 + ["FP8", "FP4", "INT4", "INT32", "INT64", "BOOL"]
        cite(ops[op], DOCS_111)
    ops["DequantizeLinear"]["types"] = ["INT8", "FP8", "FP4", "INT4"]
    cite(ops["DequantizeLinear"], DOCS_111)
    drop(ops["CumSum"], "CumSum.axis")
    cite(
        ops["CumSum"],
        f"{IMP_NEW} (DEFINE_BUILTIN_OP_IMPORTER(CumSum): `axis` through convertToTensor + addCumulative; "
        f"the 11.1 table still says `axis` must be a build-time constant: the importer wins)",
    )
    for op in ("Squeeze", "Unsqueeze"):
        drop(ops[op], f"{op}.axes")
        ops[op]["restrictions"].append(
            note(f"{op}.axes", "`axes` must be resolvable to a constant (computed axes accepted)")
        )
        cite(ops[op], f"{DOCS_111}; {CHANGELOG_107}")
    for op in ("Slice", "Pad"):
        drop(ops[op], f"{op}.axes")
        cite(ops[op], f"{DOCS_111} (no restriction on `axes`); {CHANGELOG_TENSOR_AXES[op]}")
    for op in ("Clip", "NonZero", "TopK", "AveragePool", "MaxPool"):
        cite(ops[op], f"the 11.1 table ({DOCS_111}) repeats the 10.x docs row: the importer override stays")


# Every status/type difference between the 11.x rules and the 7c51a63 table, and why (check11 fails on any other).
OVERRIDES_111 = {"Clip": "importer", "NonZero": "importer"}


def parse_operators_md(text):
    """onnx-tensorrt's docs/operators.md support matrix -> {op: (supported, [types])}."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[1] not in ("Y", "N") or not line.lstrip().startswith("|"):
            continue
        types = [t.strip() for t in cells[2].split(",") if t.strip()] if cells[1] == "Y" and len(cells) > 2 else []
        rows[cells[0]] = (cells[1] == "Y", types)
    return rows


def check_11(rules, table_text):
    """Differences between the 11.x rules and a fetched table that no override explains (empty: consistent)."""
    problems = []
    rows = parse_operators_md(table_text)
    for op, (supported, types) in sorted(rows.items()):
        rule = rules["ops"].get(op)
        if rule is None:
            problems.append(f"{op}: in the table, not in the rules")
            continue
        if (rule["status"] == "supported") != supported:
            problems.append(f"{op}: status {rule['status']} vs table {'Y' if supported else 'N'}")
        elif supported and rule["types"] != types and op not in OVERRIDES_111:
            problems.append(f"{op}: types {rule['types']} vs table {types}")
    return problems


# --- TensorRT-RTX 1.7: the parser over ONNX's node tests ----------------------------------------------------
TRT_NAMES = {1: "FP32", 10: "FP16", 16: "BF16", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL", 11: "DOUBLE"}
ALL_CONSTANT = {"Range"}  # every input a scalar the parser wants constant


def violates(op, r):
    """The base rule's own reason for a probe result (a test outside the rule: a type it does not list, an
    output it requires unused, an attribute value it excludes): such a rejection says nothing new."""
    if r["dtype"] not in op.get("types", []) and r["dtype"] != "DOUBLE":
        return "dtype"
    for x in op.get("restrictions", []):
        k = x["kind"]
        if k == "outputUnused" and x["output"] < r["outputs"]:
            return x["id"]
        if k == "inputRankIn" and r["rank"] is not None and r["rank"] not in x["ranks"]:
            return x["id"]
        if k == "attributeIn" and r["attrs"].get(x["attribute"], x["default"]) not in x["allowed"]:
            return x["id"]
        if k == "attributeAllOnes" and any(v != 1 for v in r["lists"].get(x["attribute"], [])):
            return x["id"]
        if k == "attributeAbsent" and x["attribute"] in r.get("attr_names", r["attrs"]):
            return x["id"]
        if k == "inputAbsent" and x["input"] < r["inputs"]:
            return x["id"]
        if k == "inputsLastDimEqual":
            dims = [r["last"].get(i) for i in x["inputs"] if i in r["last"]]
            if len({d for d in dims if isinstance(d, int)}) > 1:
                return x["id"]
        if k == "inputAbsentWhenAttributeSet" and r["attrs"].get(x["attribute"], 0) and x["input"] in r["given"]:
            return x["id"]
    return None


def _synthetic():
    """Cases the node tests do not cover but real models hit (seen in issue 13)."""
    import numpy as np
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    cases = []

    def model(name, node, inputs, inits, outs, opset=18):
        g = h.make_graph([node], name, inputs, outs, inits)
        cases.append((name, h.make_model(g, opset_imports=[h.make_opsetid("", opset)])))

    model(
        "synthetic_topk_k4096",
        h.make_node("TopK", ["x", "k"], ["v", "i"]),
        [h.make_tensor_value_info("x", T.FLOAT, [1, 65536])],
        [nh.from_array(np.array([4096], np.int64), "k")],
        [h.make_tensor_value_info("v", T.FLOAT, None), h.make_tensor_value_info("i", T.INT64, None)],
    )
    model(
        "synthetic_gridsample_5d",
        h.make_node("GridSample", ["x", "g"], ["y"]),
        [
            h.make_tensor_value_info("x", T.FLOAT, [1, 2, 4, 4, 4]),
            h.make_tensor_value_info("g", T.FLOAT, [1, 3, 3, 3, 3]),
        ],
        [],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        opset=20,
    )
    q, kv = [2, 3, 4, 8], [2, 3, 6, 8]
    att_in = [h.make_tensor_value_info(n, T.FLOAT, sh) for n, sh in (("q", q), ("k", kv), ("v", kv))]
    att_out = [h.make_tensor_value_info("y", T.FLOAT, None)]
    model(
        "synthetic_attention_softmax_precision",
        h.make_node("Attention", ["q", "k", "v"], ["y"], softmax_precision=1),
        att_in,
        [],
        att_out,
        opset=23,
    )
    model(
        "synthetic_attention_causal_mask2d",
        h.make_node("Attention", ["q", "k", "v", "m"], ["y"], is_causal=1),
        att_in,
        [nh.from_array(np.zeros((4, 6), np.float32), "m")],
        att_out,
        opset=23,
    )
    return cases


def patches_rtx(ops):
    """What TensorRT-RTX's parser (its IAttention layer) rejects beyond the 11.x rules, each seen in the
    probe (node tests and the synthetic cases above); the 11.x importer passes the same values on to
    IAttention, but no TensorRT 11 was there to ask."""
    src = "TensorRT-RTX probe: IAttention rejects them ('Invalid Node'), the checker softmax_precision"
    att = ops["Attention"]
    att["restrictions"] = [r for r in att["restrictions"] if r["id"] != "Attention.probe"] + [
        {
            "id": "Attention.v_head_size",
            "kind": "inputsLastDimEqual",
            "inputs": [1, 2],
            "text": "K's and V's head sizes must be equal (test_attention_*_diff_heads_sizes)",
        },
        {
            "id": "Attention.causal_mask",
            "kind": "inputAbsentWhenAttributeSet",
            "input": 3,
            "attribute": "is_causal",
            "text": "no attn_mask with is_causal=1 (test_attention_4d_attn_mask_*_causal, 2-D masks too)",
        },
        {
            "id": "Attention.softmax_precision",
            "kind": "attributeAbsent",
            "attribute": "softmax_precision",
            "text": "`softmax_precision` is unsupported",
        },
    ]
    cite(att, src)


def _parse(trt, logger, builder, model_bytes):
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(model_bytes)
    err = None
    if not ok:
        err = parser.get_error(0).desc().splitlines()[0] if parser.num_errors else "parse failed"
    return bool(ok), err


def _constants_from_test_data(model, case_dir, everything=False):
    """Makes every input but the first an initializer with the test's own data (weights, K, axes, shapes
    are constants in real models; the parser requires several of them to be)."""
    import onnx

    data = sorted(Path(case_dir, "test_data_set_0").glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    g = model.graph
    inputs = list(g.input)
    first = 0 if everything else 1
    keep = inputs[:first]
    for k, vi in enumerate(inputs[first:], start=first):
        if k < len(data) and vi.type.HasField("tensor_type"):
            t = onnx.TensorProto()
            t.ParseFromString(data[k].read_bytes())
            t.name = vi.name
            g.initializer.append(t)
        else:
            keep.append(vi)
    del g.input[:]
    g.input.extend(keep)
    return model


def _last_dims(model, node):
    """{input index: its last dim (an int, a symbol name, or None)} of the node's inputs."""
    shapes = {
        vi.name: [
            d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in vi.type.tensor_type.shape.dim
        ]
        for vi in model.graph.input
        if vi.type.HasField("tensor_type")
    }
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    return {k: (shapes[i][-1] if shapes.get(i) else None) for k, i in enumerate(node.input) if i in shapes}


def probe_node_tests():
    import onnx
    import onnx.backend.test
    import tensorrt_rtx_bindings as trt

    root = Path(onnx.backend.test.__file__).parent / "data" / "node"
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    builder = trt.Builder(logger)
    results = []  # (case, op, ok, err, attrs, in0 dtype, in0 rank)
    cases = []
    for d in sorted(root.iterdir()):
        try:
            m = onnx.load(str(d / "model.onnx"))
        except Exception:  # noqa: BLE001
            continue
        nodes = [n for n in m.graph.node if n.domain in ("", "ai.onnx")]
        if len(m.graph.node) != 1 or len(nodes) != 1:
            continue  # expanded function tests and multi-node graphs say nothing about one op
        cases.append((d.name, _constants_from_test_data(m, d, everything=nodes[0].op_type in ALL_CONSTANT)))
    cases += _synthetic()
    for name, m in cases:
        node = m.graph.node[0]
        ok, err = _parse(trt, logger, builder, m.SerializeToString())
        attrs = {
            a.name: (a.s.decode() if a.type == onnx.AttributeProto.STRING else a.i)
            for a in node.attribute
            if a.type in (onnx.AttributeProto.STRING, onnx.AttributeProto.INT)
        }
        vi = m.graph.input[0] if m.graph.input else None
        vi = m.graph.input[0] if m.graph.input else (m.graph.initializer[0] if m.graph.initializer else None)
        tt = vi.type.tensor_type if isinstance(vi, onnx.ValueInfoProto) and vi.type.HasField("tensor_type") else None
        init = vi if isinstance(vi, onnx.TensorProto) else None
        et = tt.elem_type if tt is not None else (init.data_type if init is not None else 0)
        dtype = TRT_NAMES.get(et, onnx.TensorProto.DataType.Name(et)) if et else None
        rank = len(tt.shape.dim) if tt is not None else (len(init.dims) if init is not None else None)
        lists = {a.name: list(a.ints) for a in node.attribute if a.type == onnx.AttributeProto.INTS}
        results.append(
            {
                "case": name,
                "op": node.op_type,
                "ok": ok,
                "error": err,
                "attrs": attrs,
                "lists": lists,
                "dtype": dtype,
                "rank": rank,
                "outputs": len([o for o in node.output if o]),
                "inputs": len([i for i in node.input if i]),
                "given": [k for k, i in enumerate(node.input) if i],
                "attr_names": [a.name for a in node.attribute],
                "last": _last_dims(m, node),
            }
        )
    return results, trt.__version__, onnx.__version__


def _schema_default(op, attr):
    import onnx.defs
    from onnx import helper

    try:
        a = onnx.defs.get_schema(op).attributes[attr]
    except Exception:  # noqa: BLE001
        return None
    if not a.default_value.name:
        return None
    v = helper.get_attribute_value(a.default_value)
    return v.decode() if isinstance(v, bytes) else v if isinstance(v, int) else None


def rtx_from_probe(ops, results, version):
    by_op = defaultdict(list)
    for r in results:
        by_op[r["op"]].append(r)
    src = f"TensorRT-RTX {version} parser over ONNX node tests"
    for name, rs in sorted(by_op.items()):
        if name not in ops:
            continue
        op = ops[name]
        passed = [r for r in rs if r["ok"]]
        failed = [r for r in rs if not r["ok"] and not (op["status"] == "supported" and violates(op, r))]
        listing = lambda xs: ", ".join(r["case"] for r in xs[:4]) + (f" (+{len(xs) - 4})" if len(xs) > 4 else "")
        if not passed:
            if op["status"] == "supported" and failed:
                ops[name] = {
                    "status": "unsupported",
                    "reason": f"TensorRT-RTX {version} rejects every test of {name} ({len(failed)}): {failed[0]['error'][:200]}",
                    "source": f"{src}: {listing(failed)}",
                }
            continue
        if op["status"] == "unsupported":
            types = sorted({r["dtype"] for r in passed if r["dtype"]}) or ["FP32"]
            ops[name] = {
                "status": "supported",
                "types": types,
                "restrictions": [],
                "source": f"{src}: imports {listing(passed)}",
            }
            op = ops[name]
        changed = []
        # Restrictions the parser does not enforce: widen to what it imported.
        for r in op.get("restrictions", []):
            if r["kind"] == "inputRankIn" and r.get("input", 0) == 0:
                seen = sorted({p["rank"] for p in passed if p["rank"] is not None} - set(r["ranks"]))
                if seen:
                    r["ranks"] = sorted(set(r["ranks"]) | set(seen))
                    r["text"] += f" (TensorRT-RTX imports rank {', '.join(map(str, seen))} too)"
                    changed.append(f"{r['id']} widened")
            if r["kind"] == "attributeIn":
                seen = sorted(
                    {p["attrs"][r["attribute"]] for p in passed if r["attribute"] in p["attrs"]} - set(r["allowed"]),
                    key=str,
                )
                if seen:
                    r["allowed"] = r["allowed"] + seen
                    changed.append(f"{r['id']} widened")
            if r["kind"] == "inputConstantBelow":
                big = [p for p in passed if p["case"] == "synthetic_topk_k4096"]
                if big and name == "TopK":
                    r["limit"] = 1e9
                    r["text"] = "K: TensorRT-RTX imports K=4096 (the 10.x docs limit of 3840 does not apply)"
                    changed.append(f"{r['id']} lifted")
        if failed:
            # An attribute whose values separate imports from rejections becomes an attributeIn rule.
            keys = {k for r in rs for k in r["attrs"]}
            rule = None
            for k in sorted(keys):
                good = {r["attrs"].get(k, _schema_default(name, k)) for r in passed}
                bad = {r["attrs"].get(k, _schema_default(name, k)) for r in failed}
                if None not in good | bad and not (good & bad):
                    rule = {
                        "id": f"{name}.{k}",
                        "kind": "attributeIn",
                        "attribute": k,
                        "allowed": sorted(good, key=str),
                        "default": _schema_default(name, k),
                        "text": f"TensorRT-RTX {version} rejects {k}={', '.join(map(str, sorted(bad, key=str)))}: "
                        f"{failed[0]['error'][:160]}",
                    }
                    break
            if rule is None:
                gd, bd = {r["dtype"] for r in passed}, {r["dtype"] for r in failed}
                if None not in gd | bd and not (gd & bd):
                    op["types"] = [t for t in op["types"] if t not in bd] or sorted(gd)
                    changed.append(f"types without {', '.join(sorted(bd))}")
                else:
                    rule = note(
                        f"{name}.probe",
                        f"TensorRT-RTX {version} rejected some tests: {listing(failed)}: {failed[0]['error'][:160]}",
                    )
            if rule is not None:
                op["restrictions"] = [r for r in op.get("restrictions", []) if r["id"] != rule["id"]] + [rule]
                changed.append(rule["id"])
        if changed:
            cite(op, f"{src}: {'; '.join(changed)} ({len(passed)} imported, {len(failed)} rejected)")


def load(path):
    return json.loads(path.read_text())


def dumps(rules):
    """indent=2 with lists of scalars on one line (the committed files' style)."""
    text = json.dumps(rules, indent=2, ensure_ascii=True)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def write(path, rules):
    path.write_text(dumps(rules))
    print(f"wrote {path.relative_to(REPO)}")


def build_10():
    rules = load(F10)
    importer_10(rules["ops"])
    return rules


def build_11(r10):
    rules = copy.deepcopy(r10)
    rules["source"] = {
        **r10["source"],
        "commit": COMMIT_111,
        "tensorrt": "11.x",
        "notes": [
            f"the table: {DOCS_111}. The 11.0 release (NVIDIA/TensorRT 771d8ef) pins 5ab48c5, whose table "
            "was not retrievable here",
            f"built as the TensorRT 10.x rules (docs/operators.md @ {r10['source']['commit'][:7]} + importer "
            "overrides) patched per op where the 7c51a63 table differs (each patched op's `source` names it); "
            "every other row of that table matches the 10.x transcription in status and types "
            "(scripts/trt_rules.py check11 OPERATORS_MD checks a fetched copy)",
            "where the table and the importers (onnxOpImporters.cpp @ 96e7811, dd0a3a9) disagree the "
            "importers win: Clip, NonZero, TopK, 1-D pooling, CumSum, Attention's 3-D inputs",
        ],
    }
    for op in rules["ops"].values():
        if op.get("reason") == "not supported by the TensorRT 10.x ONNX parser (marked N)":
            op["reason"] = "not supported by TensorRT's ONNX parser (marked N in onnx-tensorrt's table)"
        elif op.get("reason") == "not in the TensorRT 10.x operator table":
            op["reason"] = "not in onnx-tensorrt's operator table"
    patches_11(rules["ops"])
    return rules


def build_rtx(r11):
    results, version, onnx_version = probe_node_tests()
    rules = copy.deepcopy(r11)
    rules["source"] = {
        "repository": "onnx/onnx",
        "path": "onnx/backend/test/data/node",
        "commit": None,
        "tensorrt": f"TensorRT-RTX {version}",
        "notes": [
            f"base: the TensorRT 11.x rules; corrected by TensorRT-RTX {version}'s parser over the single-node "
            f"ONNX node tests of onnx {onnx_version} ({len(results)} models, inputs after the first made "
            "initializers) and synthetic cases; regenerate with scripts/trt_rules.py rtx"
        ],
    }
    patches_rtx(rules["ops"])
    rtx_from_probe(rules["ops"], results, version)
    return rules


def main(argv):
    what = argv[1] if len(argv) > 1 else "all"
    if what == "check11":
        problems = check_11(load(F11), Path(argv[2]).read_text())
        print(
            "\n".join(problems) or "the 11.x rules agree with the table (overrides: " + ", ".join(OVERRIDES_111) + ")"
        )
        return 1 if problems else 0
    # The 10.x file is both the hand transcription and the importer-corrected result: re-applying is idempotent.
    r10 = build_10()
    if what in ("10", "all"):
        write(F10, r10)
    if what in ("11", "rtx", "all"):
        r11 = build_11(r10)
        if what in ("11", "all"):
            write(F11, r11)
        if what in ("rtx", "all"):
            write(FRTX, build_rtx(r11))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
