"""Why a memory-bound case is under the copy-bandwidth target: the size-matched copy measured in the
same run (a device-to-device copy of the case's minimal traffic / 2 bytes, timed like the case)
and ONE table, REASONS, of what each op needs beyond its minimal traffic.

A case's verdict (`verdict(row)`, kind first):
  meets         TPAT >= COPY_PCT_TARGET % of the copy bandwidth
  size-bound    the size-matched copy itself is under the target: the minimal traffic cannot get
                there at this size (launch, ramp and tail cost); when TPAT is also under the target
                % of that copy ("beyond_size"), the op's reason is given for the rest of the gap
  op            the size-matched copy reaches the target; REASONS says what else the op needs
  no reason     the size-matched copy reaches the target and REASONS has no entry (never invented)
  not measured  the row has no size-matched copy (an older results JSON, or the copy failed)
Every verdict carries, as measured evidence, whether the best PyTorch is under the target too.
"""

from __future__ import annotations

COPY_PCT_TARGET = 85.0


def _reduction(r):
    return "reduction" if str((r.get("attributes") or {}).get("reduction", "none")) != "none" else "none"


def _approximate(r):
    return str((r.get("attributes") or {}).get("approximate", "none"))


def _antialias(r):
    try:
        return "antialias" if int((r.get("attributes") or {}).get("antialias", 0) or 0) else "plain"
    except (TypeError, ValueError):
        return "plain"


def _reduce_form(r):
    """rows (the reduced axes last), columns (a kept axis after them), apart (reduced axes not
    adjacent: two passes) or unknown, from the row's input / output shapes and keepdims."""
    try:
        xs = [int(d) for d in r["inputs"][0]["shape"]]
        ys = [int(d) for d in r["outputs"][0]["shape"]]
        keep = int((r.get("attributes") or {}).get("keepdims", 1))
    except (KeyError, IndexError, TypeError, ValueError):
        return "unknown"
    if keep and len(ys) == len(xs):
        red = [d for d, (a, b) in enumerate(zip(xs, ys)) if b == 1 and a != 1]
    elif not keep and len(ys) < len(xs) and ys == xs[: len(ys)]:
        red = list(range(len(ys), len(xs)))  # keepdims=0 read only where the last axes went
    else:
        return "unknown"
    if not red:
        return "unknown"
    if red != list(range(red[0], red[-1] + 1)):
        return "apart"
    inner = 1
    for d in xs[red[-1] + 1 :]:
        inner *= d
    return "rows" if inner == 1 else "columns"


_REDUCE = (
    _reduce_form,
    {
        "rows": (
            "a row reduction ends every row in a combine across lanes (warp shuffles, a block "
            "barrier for rows over 512 vectors) and its grid is whole rows, so the last wave is a "
            "tail; ncu (membw3-1, kernel alone): reducemax_last_fp16 (8192 rows of 8 KB, a warp "
            "each) 1024 blocks = 0.97 waves, 19.0 us at 76% of DRAM peak; reducemean_last_bf16 "
            "2048 blocks = 1.94 waves, 84%; reducel2_last (a block per 16 KB row, 4 loads per "
            "thread, then the barrier) 3.88 waves, 79%; warps wait on their loads 83-92% of the "
            "cycles between their instructions; 64 rows of 1 MB (reducemax_two_axes) are cut into segments, 0.97 waves "
            "at 77%, and a second launch combines the partials (2.1 us); 8 loads in flight per "
            "thread instead of 4 gained nothing (membw-2)"
        ),
        "columns": (
            "a column reduction (kept axes after the reduced ones) combines along R in shared "
            "memory (a barrier tree over 8 lanes), and with few outputs R is cut into segments whose "
            "partial results a second launch combines; ncu (membw3-1): reducemax_leading (R 4096 "
            "over 8192 columns) 960 blocks = 0.91 waves, 36.3 us at 78% of DRAM peak, then 3.2 us "
            "for the 15 partial rows; reducesum_middle_fp16 (16-bit: 38 registers, 6 blocks per "
            "SM) now planned as 768 blocks = 0.97 waves instead of 960 = 1.21 waves: 30.4 -> "
            "28.6 us (membw3-2), its combine 2.7 us"
        ),
        "apart": (
            "reduced axes that are not adjacent ([0, 2]) take two passes: the inner run (a warp "
            "per 2 KB row, 19.1 us at 76% of DRAM peak, ncu membw3-1) writes partial rows that a "
            "second launch reduces (2 blocks, 3.5 us); TVM's one-kernel schedule (the second "
            "tactic: 256 blocks of 1024 threads, 0.97 waves, 19.6 us at 74% of DRAM peak, ncu "
            "membw3-2) is the faster tactic and the one timed"
        ),
    },
)

_GATHER = (
    "gather: every row's address comes from an index read first (a dependent DRAM round trip before "
    "the row is read) and the rows sit at random places (reads jump between DRAM pages); rows shorter "
    "than a 32-B sector waste the rest of it"
)
_NORM = (
    "statistics before any output: each row is reduced (a block-wide barrier) between its read and "
    "its write, so a block cannot stream; a row larger than one block's registers and shared memory "
    "(hundreds of KB) is read a second time"
)

# op -> reason, or (pattern of the row, {pattern: reason}); a pattern missing from its dict means
# "no reason recorded" for that access pattern.
REASONS = {
    "Gather": _GATHER,
    "GatherND": _GATHER,
    "GatherElements": (
        "one index per element: every 2-4 B read at a random position pulls a whole 32-B sector "
        "(8-16x the bytes used), after its dependent index read"
    ),
    "ScatterND": (
        _reduction,
        {
            "none": (
                "the output starts as a copy of the data, then the updated rows are written again: "
                "B(updates) more bytes written, and the scatter must follow the copy (two dependent "
                "sweeps; skipping the overwritten rows in the copy needs an extra pass over the indices)"
            ),
            "reduction": (
                "the data is copied into the output, then every update row is a read-modify-write "
                "of its output row: atomics (add: red.global; max/min of 16-bit values: a "
                "compare-and-swap loop) that serialise on duplicate indices, and B(updates) more "
                "bytes written after the copy"
            ),
        },
    ),
    "ScatterElements": (
        _reduction,
        {
            "none": (
                "the output starts as a copy of the data, then every update element is written at "
                "its own index: a scattered 2-4 B write is a partial 32-B sector (a read-modify-write "
                "in L2) that must follow the copy"
            ),
            "reduction": (
                "atomics on every update element's own index: duplicate indices (several edges into "
                "one node) serialise, each 2-4 B atomic is a read-modify-write of a 32-B sector in "
                "L2, and the updates must follow the data copied into the output"
            ),
        },
    ),
    "Resize": (
        _antialias,
        {
            "plain": (
                "each output is Th + Tw weighted taps (linear 2 + 2, cubic 4 + 4) read from a "
                "shared-memory tile that the block first fills from its input rows (loads, a "
                "barrier, then the stores): in ncu (membw3-1/2, kernel alone) L1 or L2 is the "
                "busiest unit (75-86% of peak) while DRAM runs at 39-60%: align_corners x2 fp16 (a "
                "32 KB tile and 44 registers: 5 blocks per SM) L1 75%, DRAM 50%, 59.7 us (since "
                "membw3 without the 2-way bank conflicts of its float4 tile reads: 4.66 M -> 0.40 M, "
                "77.5 -> 64.1 us in the bench); cubic x2 L1 86%, DRAM 39%; linear x4 f32 (8 blocks "
                "per SM since membw3: 51.3 -> 48.3 us) L2 83%, DRAM 60%, warps wait 13.6 of 35 "
                "cycles per instruction on the staged loads; x0.5 bf16 (2048 blocks = 2.59 waves) "
                "L2 76%, DRAM 60%"
            ),
            "antialias": (
                "antialias downscaling: the filter widens with the downscale factor, so the taps per "
                "output and their weights scale with it (linear: 2/scale per axis, cubic: 4/scale per "
                "axis; cubic x0.25: 16 per axis, 256 per 2-D output): arithmetic and L1 traffic per "
                "output byte, not DRAM"
            ),
        },
    ),
    "Gelu": (
        _approximate,
        {
            "tanh": (
                "computed as x / (1 + __expf(-2u)) since membw3 (x sigmoid(2u), the same function "
                "as 0.5 x (1 + tanh u)): ~15 SASS instructions per element (471 per 32 bfloat16 "
                "elements; tanhf took 794), 41.4 -> 38.0 us (membw3-2, 86% of the copy bandwidth; "
                "83% in membw3-1); ncu: 35 registers, 6 blocks per SM (61% achieved occupancy), L2 "
                "88% and DRAM 72% of peak; 2 vectors per thread instead of 4 took 37.2 us, within "
                "the runs' spread, and cost the erf form 3%"
            ),
            "none": (
                "arithmetic per element: the erf form is ~32 SASS instructions per element on sm_90 "
                "(erff's polynomial, the 16-bit conversions; counted in the generated kernel), so "
                "8192 x 4096 elements take ~32 us of instruction issue on 132 SMs at 1.98 GHz, about "
                "as long as the copy of their bytes (~37 us): issue and memory both near saturation; "
                "4 loads in flight per thread instead of 1 gained 5% (A/B membw-1), PyTorch eager "
                "and torch.compile are slower still"
            ),
        },
    ),
    "CenterCropPad": (
        "a centre crop reads a window, not a stream: the kept 224 of every 256 elements of a row "
        "are 896-B runs 1 KB apart; at 77 MB the size-matched contiguous copy itself measured 79-86% "
        "of the copy bandwidth (membw-1's two runs), so 85% needs about all of that copy; TPAT is at "
        "92% of it, torch.compile at the same time, and 4 rows per thread (4 loads in flight) did "
        "not help (A/B membw-1)"
    ),
    "Col2Im": (
        "a transpose: a column row (one block offset over all block positions) lands in the image "
        "at a stride, so the data go through shared memory with a barrier between each block's read "
        "and its write (exact patches), or each pixel sums its candidates from cached columns "
        "(overlapping blocks); ViT patches at 77 MB: 94% of the size-matched copy, which itself "
        "measured 78-87% of the copy bandwidth (membw-2)"
    ),
    "CumSum": (
        "a scan: every output depends on all earlier elements along the axis; filling the GPU needs "
        "the axis split across blocks (long rows, few rows, or a leading axis), and then the block "
        "carries need a second pass over the data or a decoupled look-back (a serial chain of "
        "carries between blocks)"
    ),
    "TopK": (
        "selection: every element of a row is compared against the running top K (a sort, a K-deep "
        "heap or radix passes per row; K=1 is an argmax reduction per row), work and a serial merge "
        "per row rather than a stream"
    ),
    **{
        op: _REDUCE
        for op in (
            "ReduceMax",
            "ReduceMin",
            "ReduceSum",
            "ReduceMean",
            "ReduceProd",
            "ReduceL1",
            "ReduceL2",
            "ReduceSumSquare",
            "ReduceLogSum",
        )
    },
    "ReduceLogSumExp": (
        "the max, then the sum of exp(x - max): two passes over each row, or one online pass with an "
        "exp and a rescale per element"
    ),
    "LayerNormalization": _NORM,
    "RMSNormalization": _NORM,
    "Compress": (
        "every kept slice's output position is a prefix sum of the condition: a scan over the "
        "condition (a second kernel or a look-back) before or with the copy"
    ),
    "Attention": (
        "a decode step: one query row per head over the whole past, so the past is split across "
        "blocks to fill the GPU and the partial softmax results (max, sum, weighted values) are "
        "combined in a second step"
    ),
}


def op_reason(r):
    """REASONS' entry for a row's op and access pattern, or None ("no reason recorded")."""
    entry = REASONS.get(r.get("op"))
    if isinstance(entry, tuple):
        pattern, by = entry
        return by.get(pattern(r))
    return entry


def _pct(r, k):
    return (r.get("pct_copy") or {}).get(k)


def best_torch_pct(r):
    """% of the copy bandwidth of the faster PyTorch side (None when neither was timed)."""
    ps = [p for p in (_pct(r, "eager"), _pct(r, "compiled")) if p is not None]
    return max(ps) if ps else None


def size_copy_pct(r):
    sc = r.get("size_copy")
    return sc.get("pct_copy") if isinstance(sc, dict) else None


def verdict(r, target=COPY_PCT_TARGET):
    """The verdict of one memory-bound row with a TPAT time (see the module doc): a JSON-able dict."""
    tpat, best, size = _pct(r, "tpat"), best_torch_pct(r), size_copy_pct(r)
    sc_us = (r.get("size_copy") or {}).get("kernel_us") if isinstance(r.get("size_copy"), dict) else None
    t_us = (r.get("tpat") or {}).get("kernel_us") if isinstance(r.get("tpat"), dict) else None
    v = {
        "tpat_pct": tpat,
        "best_torch_pct": best,
        "size_copy_pct": size,
        "tpat_pct_of_size_copy": 100.0 * sc_us / t_us if sc_us and t_us else None,
        "torch_under": None if best is None else best < target,
        "reason": None,
        "beyond_size": False,
    }
    if tpat is not None and tpat >= target:
        v["kind"] = "meets"
    elif size is None:
        v["kind"] = "not measured"
        v["reason"] = op_reason(r)
    elif size < target:
        v["kind"] = "size-bound"
        rel = v["tpat_pct_of_size_copy"]
        v["beyond_size"] = rel is not None and rel < target
        v["reason"] = op_reason(r) if v["beyond_size"] else None
    else:
        v["reason"] = op_reason(r)
        v["kind"] = "op" if v["reason"] else "no reason"
    return v


def _p(x):
    return "n/a" if x is None else f"{x:.0f}%"


def _torch_words(v, target):
    if v["best_torch_pct"] is None:
        return "best PyTorch not timed"
    return f"best PyTorch {_p(v['best_torch_pct'])} ({'also under' if v['torch_under'] else 'reaches'} {target:.0f}%)"


def verdict_text(r, v=None, target=COPY_PCT_TARGET):
    """One cell: the verdict in words with its measured numbers."""
    v = v or verdict(r, target)
    k = v["kind"]
    if k == "meets":
        return f"meets {target:.0f}%"
    mb = (r.get("traffic") or {}).get("bytes", 0) / 1e6
    if k == "size-bound":
        rest = ""
        if v["beyond_size"]:
            rest = f"; TPAT is at {_p(v['tpat_pct_of_size_copy'])} of that copy: " + (
                f"op: {v['reason']}" if v["reason"] else "no reason recorded for the rest"
            )
        return (
            f"size-bound: a copy of the same {mb:.1f} MB reaches only {_p(v['size_copy_pct'])} of the copy "
            f"bandwidth{rest}; {_torch_words(v, target)}"
        )
    if k == "not measured":
        why = f"; op: {v['reason']}" if v["reason"] else ""
        return f"size-matched copy not measured{why}; {_torch_words(v, target)}"
    if k == "op":
        return f"op: {v['reason']}; {_torch_words(v, target)}"
    return f"no reason recorded; {_torch_words(v, target)}"


def copy_summary(rows, target=COPY_PCT_TARGET):
    """The memory-bound rows with a TPAT time, grouped by verdict (JSON-able; rows as given)."""
    out = {
        "target_pct": target,
        "memory": 0,
        "meets": [],
        "size-bound": [],
        "op": [],
        "no reason": [],
        "not measured": [],
    }
    for r in rows:
        v = verdict(r, target)
        out["memory"] += 1
        item = {
            "case": r.get("case") or r.get("plugin"),
            "op": r.get("op"),
            "tpat_pct": v["tpat_pct"],
            "size_copy_pct": v["size_copy_pct"],
            "best_torch_pct": v["best_torch_pct"],
            "tpat_pct_of_size_copy": v["tpat_pct_of_size_copy"],
            "beyond_size": v["beyond_size"],
        }
        if v["reason"]:
            item["reason"] = v["reason"]
        out[v["kind"]].append(item)
    return out
