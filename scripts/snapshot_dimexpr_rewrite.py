#!/usr/bin/env python3
"""Explains a before/after diff of scripts/snapshot_generated_sources.sh across issue 12's switch of
generated expressions to tpat::dimexpr: rewrites the old forms into the new ones (tpat_ck_<op>(a, b,
ovf) -> dx::<op>(ovf, a, b), tpat_min/max -> dx::min/max, b.constant/b.operation -> dx::lit/dx::<op>,
the dx aliases, the nullptr loop of outputShapes) and reports each generated file (common/ aside) as
identical, differing only by that rewrite, or unexplained.

Usage: scripts/snapshot_dimexpr_rewrite.py BEFORE AFTER   (exit 1 when anything is unexplained)"""

import pathlib
import re
import sys


def split_args(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        if ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def rewrite_calls(text, pattern, fn):
    while True:
        m = re.search(pattern, text)
        if not m:
            return text
        start = m.end()  # after '('
        depth, i = 1, start
        while depth:
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
            i += 1
        args = split_args(text[start : i - 1])
        text = text[: m.start()] + fn(m, args) + text[i:]


OPS = {
    "kSUM": "add",
    "kSUB": "sub",
    "kPROD": "mul",
    "kFLOOR_DIV": "floordiv",
    "kMIN": "min",
    "kMAX": "max",
    "kEQUAL": "eq",
    "kLESS": "lt",
}


def old_to_new(text):
    text = rewrite_calls(text, r"tpat_ck_(\w+)\(", lambda m, a: f"dx::{m.group(1)}({a[2]}, {a[0]}, {a[1]})")
    text = rewrite_calls(text, r"tpat_(min|max)\(", lambda m, a: f"dx::{m.group(1)}(ovf, {a[0]}, {a[1]})")
    text = rewrite_calls(text, r"b\.constant\(", lambda m, a: f"dx::lit(b, {a[0]})")
    text = rewrite_calls(
        text,
        r"b\.operation\(",
        lambda m, a: f"dx::{OPS[a[0].split('::')[1]]}(b, {a[1].lstrip('*')}, {a[2].lstrip('*')})",
    )
    text = text.replace("(tpat_ck_*)", "(tpat::dimexpr)")
    text = re.sub(r"(using namespace tpat_\w+_kernels;\n)", r"\1namespace dx = tpat::dimexpr;\n", text)
    text = text.replace(
        "    using nvinfer1::DimensionOperation;\n",
        "    namespace dx = tpat::dimexpr; // the Expr operators over IExprBuilder (common/tpat_dimexpr_trt.h)\n",
    )
    m = re.search(r"if \(nbInputs != \d+\)", text)
    if m:
        nb = len(re.search(r"kOutputTypes\[\] = \{([^}]*)\}", text).group(1).split(","))
        text = text.replace(
            "\n\n    return true;\n}",
            f"\n    for (int32_t j = 0; j < {nb}; ++j)\n        for (int32_t d = 0; d < outputs[j].nbDims; ++d)\n            if (outputs[j].d[d] == nullptr)\n                return false; // IExprBuilder could not build it\n    return true;\n}}",
        )
    return text


before, after = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
bad = same = changed = 0
for f in sorted(before.rglob("*")):
    if not f.is_file() or "/common/" in str(f):
        continue
    g = after / f.relative_to(before)
    if not g.exists():
        print("missing", g)
        bad += 1
        continue
    old, new = f.read_text(), g.read_text()
    if old == new:
        same += 1
        continue
    if old_to_new(old) == new:
        changed += 1
        continue
    print("UNEXPLAINED", f.relative_to(before))
    bad += 1
extra = [
    g
    for g in after.rglob("*")
    if g.is_file() and "/common/" not in str(g) and not (before / g.relative_to(after)).exists()
]
print(f"{same} identical, {changed} differ only by the intended rewrite, {bad} unexplained, {len(extra)} new files")
sys.exit(1 if bad or extra else 0)
