"""TPAT's own TVM lowering of ONNX NonMaxSuppression: a data-dependent output through a size tensor.

NonMaxSuppression(boxes [B, N, 4], scores [B, C, N][, max_output_boxes_per_class][, iou_threshold]
[, score_threshold]) selects, per (batch, class), boxes greedily by descending score, dropping a box
whose IoU with an already selected one is above iou_threshold, at most max_output_boxes_per_class
per class; with score_threshold only boxes whose score is above it take part. selected_indices
[num_selected, 3] int64 lists (batch, class, box) by batch, then class, then selection order. TPAT
follows ONNX Runtime exactly: candidates `score > score_threshold` (strict), ties in score go to
the smaller box index, a box pair suppresses when `IoU > iou_threshold` computed in float32 as ORT
does (min/max corners for center_point_box=0, centre +- half size for 1; no suppression when the
intersection or an area is <= 0), a negative max_output_boxes_per_class counts as 0.

The output is allocated for its upper bound U = B * C * min(max_output, N) rows (max_output must
be a constant: TensorRT's upper bound), the first num_selected rows hold the result, and a 0-D
int64 size output holds num_selected (docs/kernel-plan.md "Data-dependent outputs"). Five kernels,
no host synchronisation:

  1. sort:    one block per (batch, class): 64-bit keys (descending-order float bits << 32 | box
              index; boxes at or below the score threshold get the all-ones key) bitonic-sorted in
              shared memory (P = next power of two of N <= 4096; beyond that, or for a symbolic N, in
              a global workspace row); writes the sorted box order and the candidate count m;
  2. mask:    torchvision's IoU bitmask: a block of 64 threads per (segment, row block, column
              block >= row block) loads the column block's 64 boxes into shared memory, each thread
              sets bit u of mask[row][col block] when sorted box col*64+u > row suppresses;
              blocks past m exit at once;
  3. sweep:   one block per (batch, class) walks the candidates 64 at a time: the chunk's diagonal
              mask words are loaded in parallel, one thread decides the chunk (a register bitmask,
              64 shared-memory steps, stops at max_output), then the threads OR the selected rows'
              mask words into the removed bitmask in parallel (coalesced rows);
  4. scan:    NonZero's one-block exclusive scan (nonzero.py) of the per-class counts -> offsets and
              the size output;
  5. scatter: one thread per upper-bound row writes (batch, class, box) at its offset.

Constant thresholds are kernel immediates (the plan has no constant to upload); runtime ones are
read on the device. Boxes and scores may carry their own symbols for B and N and a symbolic box
width (torchvision's detector exports): a box is a candidate only below both N, both B and with a
width >= 4, so no read goes out of bounds. A max_output of 2^31 or more (torchvision's INT64_MAX)
bounds by N.

`mode="cpu"` builds the same IR with serial loops for the LLVM tests and the cross-check. NaN
scores are not ordered as ORT's priority queue would (it has no defined order for them either).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads, relax_arg
from .nonzero import THREADS, _i64, _scan_ir
from .protocol import BadValue, Decline, Lowering, NodeView, Operand, Selection

SORT_THREADS = 1024
SHARED_SORT_MAX = 4096  # 64-bit keys: 32 KiB of shared memory
MASK_THREADS = 64  # one bit per column, one row per thread
SWEEP_THREADS = 64
SCATTER_THREADS = 256
ALL_ONES = (1 << 64) - 1


@dataclass(frozen=True)
class NmsSelection(Selection):
    boxes: Operand
    scores: Operand
    max_out: int  # max_output_boxes_per_class (>= 0)
    iou: Operand | None  # None: absent (0.0)
    score_thr: Operand | None  # None: absent (no filter)
    center: int  # center_point_box
    threads: int = THREADS  # NonZero's scan kernel

    @property
    def data_dependent(self) -> list:
        return [{"output": 0, "dim": 0, "size_output": 1}]

    def describe(self) -> str:
        thr = "score threshold" if self.score_thr is not None else "no score threshold"
        return (
            f"nonmaxsuppression (center_point_box {self.center}, max {self.max_out} per class, {thr}; "
            "bitonic sort per class, IoU bitmask, chunked sweep, scan, scatter, size tensor)"
        )


def select(node: NodeView) -> NmsSelection | Decline:
    ops = list(node.operands) + [Operand("absent")] * (5 - len(node.operands))
    if len(node.operands) < 2 or len(node.operands) > 5:
        return Decline("unexpected arity")
    boxes, scores, max_op, iou_op, st_op = ops[:5]
    if boxes.is_absent or scores.is_absent:
        return Decline("boxes and scores are required")
    if boxes.dtype != "float32" or scores.dtype != "float32":
        return Decline(f"dtype {boxes.dtype}/{scores.dtype} (float32 only, as ONNX Runtime)")
    if node.outputs[0]["dtype"] != "int64":
        return Decline("output dtype")
    bs, ss = boxes.shape, scores.shape
    if len(bs) != 3 or len(ss) != 3:
        return Decline("boxes must be [B, N, 4] and scores [B, C, N]")

    def clash(a, b):  # two static dims that differ (symbolic ones are bounded by both at run time)
        return isinstance(a, int) and isinstance(b, int) and a != b

    if clash(bs[2], 4) or clash(bs[0], ss[0]) or clash(bs[1], ss[2]):
        return Decline(f"boxes {bs} and scores {ss} do not agree ([B, N, 4], [B, C, N])")
    center = node.attr("center_point_box", 0)
    if center not in (0, 1):
        return Decline(f"center_point_box {center}")
    if max_op.is_absent:
        max_out = 0
    elif max_op.is_const:
        max_out = max(max_op.scalar_int("max_output_boxes_per_class"), 0)
    else:
        return Decline("max_output_boxes_per_class must be a constant (it bounds the output)")
    for op, what in ((iou_op, "iou_threshold"), (st_op, "score_threshold")):
        if op.is_absent:
            continue
        if op.dtype != "float32":
            return Decline(f"{what} dtype {op.dtype}")
        if any(isinstance(d, int) and d != 1 for d in op.shape) or len(op.shape) > 1:
            return Decline(f"{what} must hold one value")
        if op.is_const:
            v = op.value.reshape(-1)
            if v.size != 1:
                raise BadValue(f"{what} has {v.size} values, expected one")
    if iou_op.is_const and not 0.0 <= float(iou_op.value.reshape(-1)[0]) <= 1.0:
        return Decline("iou_threshold outside [0, 1] (ONNX Runtime refuses it)")
    if any(isinstance(d, int) and d >= 1 << 31 for d in (bs[1], ss[2])):
        return Decline("more than 2^31 boxes (the sort keys hold box indices in 32 bits)")
    return NmsSelection(
        boxes=boxes,
        scores=scores,
        max_out=max_out,
        iou=None if iou_op.is_absent else iou_op,
        score_thr=None if st_op.is_absent else st_op,
        center=center,
    )


# --------------------------------------------------------------------------------------------
# helpers


def _u64(v):
    return tirx.const(v, "uint64")


def _c64(x):
    return tirx.Cast("int64", x)


def _dim(d):
    return _i64(d) if isinstance(d, int) else (d if not isinstance(d, tirx.IntImm) else _i64(int(d)))


def _static(d):
    if isinstance(d, int):
        return d
    if isinstance(d, tirx.IntImm):
        return int(d)
    return None


def _log2_ceil(n):
    """ceil(log2(max(n, 1))) as int64: a Python int for a static n, else an expression."""
    s = _static(n)
    if s is not None:
        return max(s - 1, 0).bit_length()
    e = _i64(0)
    for i in range(40):
        e = e + tirx.Cast("int64", _i64(1 << i) < n)
    return e


def _corners(box, center):
    """(xmin, xmax, ymin, ymax) of a box [4] as ONNX Runtime forms them."""
    if center == 0:  # [y1, x1, y2, x2], corners in either order
        return tirx.min(box[1], box[3]), tirx.max(box[1], box[3]), tirx.min(box[0], box[2]), tirx.max(box[0], box[2])
    half = tirx.const(0.5, "float32")
    w, hh = box[2] * half, box[3] * half
    return box[0] - w, box[0] + w, box[1] - hh, box[1] + hh


def _suppresses(a, b, thr):
    """IoU(a, b) > thr, a and b as (xmin, xmax, ymin, ymax); ORT's SuppressByIOU."""
    zero = tirx.const(0.0, "float32")
    ix = tirx.min(a[1], b[1]) - tirx.max(a[0], b[0])
    iy = tirx.min(a[3], b[3]) - tirx.max(a[2], b[2])
    area_a = (a[1] - a[0]) * (a[3] - a[2])
    area_b = (b[1] - b[0]) * (b[3] - b[2])
    inter = ix * iy
    union = area_a + area_b - inter
    ok = tirx.And(tirx.And(ix > zero, iy > zero), tirx.And(tirx.And(area_a > zero, area_b > zero), union > zero))
    safe = tirx.Select(ok, union, tirx.const(1.0, "float32"))
    return tirx.And(ok, inter / safe > thr)


def _sort_key(score):
    """Ascending order of the key = descending score: the float's bits made order-preserving, then
    inverted (-0.0 counts as 0.0, as ORT's float compare)."""
    s = tirx.Select(score == tirx.const(0.0, "float32"), tirx.const(0.0, "float32"), score)
    bits = tirx.reinterpret("uint32", s)
    neg = (bits >> tirx.const(31, "uint32")) == tirx.const(1, "uint32")
    asc = tirx.Select(neg, ~bits, bits | tirx.const(0x80000000, "uint32"))
    return tirx.Cast("uint64", ~asc)


# --------------------------------------------------------------------------------------------
# kernels


@contextmanager
def _when(cond):
    """`if cond:` as a context (None: unconditional)."""
    if cond is None:
        yield
        return
    with T.If(cond):
        with T.Then():
            yield


def _sort_ir(sel, nseg, ncls, n, box_dims, scores, thr, order, m_out, ws, mode):
    """Per segment (batch, class): bitonic sort of the keys, sorted box order -> order[seg, :n],
    candidate count -> m_out[seg].

    In shared memory (static N <= 4096) nothing that touches the keys sits under a condition (TVM's
    ThreadSync pass may add barriers there): the threads divide the pairs exactly and the global
    reads and writes carry their own guards. In the global workspace (no shared memory) the whole
    block is guarded."""
    gpu = mode == "gpu"
    logp = _log2_ceil(n)
    p = (1 << logp) if isinstance(logp, int) else (_i64(1) << logp)
    shared = isinstance(p, int) and p <= SHARED_SORT_MAX
    tb = min(SORT_THREADS, max(p // 2, 1)) if shared else SORT_THREADS
    with IRBuilder() as ib:
        th = Threads(mode, nseg, tb)
        with th as bx:
            seg = _c64(bx)
            sf = T.decl_buffer([nseg * n], "float32", data=scores.data)
            of = T.decl_buffer([nseg * n], "int64", data=order.data)
            if shared:
                keys = T.decl_buffer([p], "uint64", scope="shared" if gpu else "global")
                base = _i64(0)
            else:
                keys = T.decl_buffer([ws.shape[0] * ws.shape[1]], "uint64", data=ws.data)
                base = seg * ws.shape[1]
            thr_v = None if thr is None else _thr(thr)
            per = (p + tb - 1) // tb
            with _when(None if shared else seg < nseg):

                def load(tx):
                    with T.serial(_i64(0), _dim(per)) as r:
                        q = _c64(tx) + r * tb
                        with T.If(q < p):
                            with T.Then():
                                # boxes' own (B, N) bound the candidates too (a model whose symbolic dims
                                # differ at run time reads no box out of bounds)
                                nb, bb, db = box_dims
                                real = tirx.And(tirx.And(q < n, q < nb), seg // tirx.max(ncls, _i64(1)) < bb)
                                if _static(db) is None:  # a symbolic box width: 4 at run time, or no box
                                    real = tirx.And(real, db >= 4)
                                with T.If(tirx.And(real, seg < nseg)):
                                    with T.Then():
                                        sc = sf[seg * n + q]
                                        key = (_sort_key(sc) << _u64(32)) | tirx.Cast("uint64", q)
                                        if thr_v is not None:
                                            key = tirx.Select(sc > thr_v, key, _u64(ALL_ONES))
                                        T.buffer_store(keys, key, [base + q])
                                    with T.Else():
                                        T.buffer_store(keys, _u64(ALL_ONES), [base + q])

                th.each_thread(load)
                th.barrier()
                pairs = p // 2
                pper = pairs // tb if shared else (pairs + tb - 1) // tb
                with T.serial(_i64(0), _dim(logp)) as st:
                    with T.serial(_i64(0), st + 1) as sub:
                        lj = st - sub  # partner distance j = 2^lj; blocks of 2^(st+1) alternate direction
                        k = _i64(2) << st
                        j = _i64(1) << lj

                        def step(tx, k=k, j=j, lj=lj):
                            with T.serial(_i64(0), _dim(pper)) as r:
                                pr = _c64(tx) + r * tb
                                with _when(None if shared else pr < pairs):
                                    i = ((pr >> lj) << (lj + 1)) | (pr & (j - 1))  # shifts, no division
                                    ll = i + j
                                    ab = T.decl_buffer([2], "uint64", scope="local" if gpu else "global")
                                    T.buffer_store(ab, keys[base + i], [0])
                                    T.buffer_store(ab, keys[base + ll], [1])
                                    a, b = ab[0], ab[1]
                                    up = (i & k) == _i64(0)
                                    swap = tirx.Select(up, a > b, a < b)
                                    with T.If(swap):
                                        with T.Then():
                                            T.buffer_store(keys, b, [base + i])
                                            T.buffer_store(keys, a, [base + ll])

                        th.each_thread(step)
                        th.barrier()

                def write(tx):
                    with T.serial(_i64(0), _dim(per)) as r:
                        q = _c64(tx) + r * tb
                        with T.If(tirx.And(q < p, seg < nseg)):
                            with T.Then():
                                # conditions read registers, not shared memory (TVM's sync analysis)
                                kk = T.decl_buffer([2], "uint64", scope="local" if gpu else "global")
                                T.buffer_store(kk, keys[base + q], [0])
                                T.buffer_store(kk, keys[base + tirx.min(q + 1, p - 1)], [1])
                                key, nxt = kk[0], kk[1]
                                valid = key != _u64(ALL_ONES)
                                with T.If(q < n):
                                    with T.Then():
                                        T.buffer_store(of, tirx.Cast("int64", key & _u64(0xFFFFFFFF)), [seg * n + q])
                                last = tirx.Or(q == p - 1, nxt == _u64(ALL_ONES))
                                with T.If(tirx.Or(tirx.And(q == 0, tirx.Not(valid)), tirx.And(valid, last))):
                                    with T.Then():
                                        T.buffer_store(m_out, tirx.Select(valid, q + 1, _i64(0)), [seg])

                th.each_thread(write)
    return ib.get()


def _box(bf, b, nbox, idx, center, width):
    row = (b * nbox + idx) * width
    return _corners([bf[row + t] for t in range(4)], center)


def _mask_ir(sel, nseg, ncls, n, words, boxes, iou, order, m_in, mask, mode):
    """mask[seg, i, w] bit u: sorted candidate w*64+u (> i, < m) is suppressed by candidate i."""
    tb = MASK_THREADS
    gpu = mode == "gpu"
    nblocks = nseg * words * words
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, tb)
        with th as bx:
            blk = _c64(bx)
            seg = blk // tirx.max(words * words, _i64(1))
            rb = (blk // tirx.max(words, _i64(1))) % tirx.max(words, _i64(1))
            cb = blk % tirx.max(words, _i64(1))
            nbox, width = _dim(boxes.shape[1]), _dim(boxes.shape[2])  # width: 4 (symbolic: checked in sort)
            bf = T.decl_buffer([_dim(boxes.shape[0]) * nbox * width], "float32", data=boxes.data)
            of = T.decl_buffer([nseg * n], "int64", data=order.data)
            mf = T.decl_buffer([nseg * n * words], "uint64", data=mask.data)
            col = T.decl_buffer([4, tb], "float32", scope="shared" if gpu else "global")
            thr = _thr(iou)
            b = seg // tirx.max(ncls, _i64(1))
            with T.If(blk < nblocks):  # a grid of 0 blocks is launched as 1
                with T.Then():
                    m = m_in[seg]
                    with T.If(tirx.And(cb >= rb, rb * tb < m)):  # block-uniform
                        with T.Then():

                            def load(tx):
                                jj = cb * tb + _c64(tx)
                                with T.If(jj < m):
                                    with T.Then():
                                        c = _box(bf, b, nbox, of[seg * n + jj], sel.center, width)
                                        for t in range(4):
                                            T.buffer_store(col, c[t], [t, tirx.Cast("int32", tx)])

                            th.each_thread(load)
                            th.barrier()

                            def rows(tx):
                                i = rb * tb + _c64(tx)
                                with T.If(i < m):
                                    with T.Then():
                                        reg = T.decl_buffer([4], "float32", scope="local" if gpu else "global")
                                        c = _box(bf, b, nbox, of[seg * n + i], sel.center, width)
                                        for t in range(4):
                                            T.buffer_store(reg, c[t], [t])
                                        own = [reg[t] for t in range(4)]
                                        acc = T.decl_buffer([1], "uint64", scope="local" if gpu else "global")
                                        T.buffer_store(acc, _u64(0), [0])
                                        with T.serial(0, tb) as u:
                                            jj = cb * tb + _c64(u)
                                            other = [col[t, u] for t in range(4)]
                                            hit = tirx.And(tirx.And(jj > i, jj < m), _suppresses(own, other, thr))
                                            bit = _u64(1) << tirx.Cast("uint64", u)
                                            T.buffer_store(acc, acc[0] | tirx.Select(hit, bit, _u64(0)), [0])
                                        T.buffer_store(mf, acc[0], [(seg * n + i) * words + cb])

                            th.each_thread(rows)
    return ib.get()


def _thr(buf, default=0.0):
    """A threshold: absent (`default`), a constant (a float: an immediate in the kernel, so the plan
    has no constant buffer to upload) or a runtime input (its buffer)."""
    if buf is None:
        return tirx.const(default, "float32")
    if isinstance(buf, float):
        return tirx.const(buf, "float32")
    return T.decl_buffer([1], "float32", data=buf.data)[0]


def _sweep_ir(sel, nseg, n, words, kmax, order, m_in, mask, keep, cnt, removed, mode):
    """Per segment: greedy selection over the sorted candidates, 64 at a time -> keep[seg, :cnt]."""
    tb = SWEEP_THREADS
    gpu = mode == "gpu"
    sc = "shared" if gpu else "global"
    with IRBuilder() as ib:
        th = Threads(mode, nseg, tb)
        with th as bx:
            seg = _c64(bx)
            of = T.decl_buffer([nseg * n], "int64", data=order.data)
            mf = T.decl_buffer([nseg * n * words], "uint64", data=mask.data)
            kf = T.decl_buffer([nseg * kmax], "int64", data=keep.data)
            rf = T.decl_buffer([nseg * words], "uint64", data=removed.data)
            diag = T.decl_buffer([64], "uint64", scope=sc)
            flag = T.decl_buffer([64], "int32", scope=sc)
            state = T.decl_buffer([1], "int64", scope=sc)  # the count so far, for every thread
            # thread 0's own running count (a register: reading `state` back before writing it
            # would make TVM's ThreadSync add a barrier under thread 0's condition)
            c = T.decl_buffer([1], "int64", scope="local" if gpu else "global")
            wper = (words + tb - 1) // tb
            with T.If(seg < nseg):
                with T.Then():
                    m = m_in[seg]
                    mw = (m + 63) // 64

                    def init(tx):
                        with T.If(_c64(tx) == 0):
                            with T.Then():
                                T.buffer_store(state, _i64(0), [0])
                                T.buffer_store(c, _i64(0), [0])
                        with T.serial(_i64(0), _dim(wper)) as r:
                            w = _c64(tx) + r * tb
                            with T.If(w < words):
                                with T.Then():
                                    T.buffer_store(rf, _u64(0), [seg * words + w])

                    th.each_thread(init)
                    th.barrier()
                    with T.serial(_i64(0), _dim(words)) as wb:
                        # shared memory is read into registers before a condition (TVM's sync analysis)
                        now = T.decl_buffer([1], "int64", scope="local" if gpu else "global")
                        th.each_thread(lambda tx: T.buffer_store(now, state[0], [0]))
                        with T.If(tirx.And(wb < mw, now[0] < kmax)):
                            with T.Then():

                                def load(tx):
                                    i = wb * 64 + _c64(tx)
                                    v = mf[tirx.min(seg * n + i, nseg * n - 1) * words + wb]
                                    T.buffer_store(diag, tirx.Select(i < m, v, _u64(0)), [tirx.Cast("int32", tx)])

                                th.each_thread(load)
                                th.barrier()

                                def decide(tx):
                                    with T.If(_c64(tx) == 0):
                                        with T.Then():
                                            rw = T.decl_buffer([1], "uint64", scope="local" if gpu else "global")
                                            T.buffer_store(rw, rf[seg * words + wb], [0])
                                            with T.serial(0, 64) as u:
                                                i = wb * 64 + _c64(u)
                                                free = ((rw[0] >> tirx.Cast("uint64", u)) & _u64(1)) == _u64(0)
                                                take = tirx.And(tirx.And(i < m, c[0] < kmax), free)
                                                T.buffer_store(flag, tirx.Cast("int32", take), [u])
                                                with T.If(take):
                                                    with T.Then():
                                                        T.buffer_store(kf, of[seg * n + i], [seg * kmax + c[0]])
                                                        T.buffer_store(c, c[0] + 1, [0])
                                                        T.buffer_store(rw, rw[0] | diag[u], [0])
                                            T.buffer_store(state, c[0], [0])

                                th.each_thread(decide)
                                th.barrier()

                                def spread(tx):
                                    T.buffer_store(now, state[0], [0])
                                    with T.If(now[0] < kmax):
                                        with T.Then():
                                            with T.serial(_i64(0), _dim(wper)) as r:
                                                w = wb + 1 + _c64(tx) + r * tb
                                                with T.If(w < mw):
                                                    with T.Then():
                                                        acc = T.decl_buffer(
                                                            [1], "uint64", scope="local" if gpu else "global"
                                                        )
                                                        T.buffer_store(acc, rf[seg * words + w], [0])
                                                        f = T.decl_buffer(
                                                            [1], "int32", scope="local" if gpu else "global"
                                                        )
                                                        with T.serial(0, 64) as u:
                                                            T.buffer_store(f, flag[u], [0])
                                                            with T.If(f[0] != 0):
                                                                with T.Then():
                                                                    row = seg * n + wb * 64 + _c64(u)
                                                                    T.buffer_store(
                                                                        acc, acc[0] | mf[row * words + w], [0]
                                                                    )
                                                        T.buffer_store(rf, acc[0], [seg * words + w])

                                th.each_thread(spread)
                                th.barrier()

                    def done(tx):
                        with T.If(_c64(tx) == 0):
                            with T.Then():
                                T.buffer_store(cnt, state[0], [seg])

                    th.each_thread(done)
    return ib.get()


def _scatter_ir(nseg, ncls, kmax, keep, cnt, offsets, out, mode):
    """Row r < cnt[seg] of segment seg -> out[offsets[seg] + r] = (batch, class, box)."""
    tb = SCATTER_THREADS
    total = nseg * kmax
    nblocks = (total + tb - 1) // tb
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, tb)
        with th as bx:
            kf = T.decl_buffer([total], "int64", data=keep.data)
            of = T.decl_buffer([total * 3], "int64", data=out.data)

            def body(tx):
                q = _c64(bx) * tb + _c64(tx)
                with T.If(q < total):
                    with T.Then():
                        kd = tirx.max(kmax, _i64(1))  # kmax 0: no thread passes q < total
                        seg = q // kd
                        r = q % kd
                        with T.If(r < cnt[seg]):
                            with T.Then():
                                pos = (offsets[seg] + r) * 3
                                T.buffer_store(of, seg // tirx.max(ncls, _i64(1)), [pos])
                                T.buffer_store(of, seg % tirx.max(ncls, _i64(1)), [pos + 1])
                                T.buffer_store(of, kf[q], [pos + 2])

            th.each_thread(body)
    return ib.get()


# --------------------------------------------------------------------------------------------
# emit


def _kmax(sel, n):
    """min(max_output, N): the rows per class of the upper bound. A max_output of 2^31 or more
    (torchvision exports INT64_MAX) is N: the sort keys hold box indices in 32 bits anyway."""
    s = _static(n)
    if s is not None:
        return _i64(min(sel.max_out, s))
    if sel.max_out >= 1 << 31:
        return _dim(n)
    return tirx.min(_i64(sel.max_out), _dim(n))


def emit(bb, params, sel: NmsSelection, mode="gpu"):
    """sort -> mask -> sweep -> scan -> scatter; returns the Relax tuple (out [U, 3], size [])."""
    boxes = relax_arg(params, sel.boxes)
    scores = relax_arg(params, sel.scores)

    def threshold(op):  # None (absent), a float (a constant: a kernel immediate) or a Relax input
        if op is None:
            return None
        if op.is_const:
            return float(np.float32(np.asarray(op.value).reshape(-1)[0]))
        return relax_arg(params, op)

    iou_v, st_v = threshold(sel.iou), threshold(sel.score_thr)
    iou_in = [] if iou_v is None or isinstance(iou_v, float) else [iou_v]  # runtime inputs only
    st_in = [] if st_v is None or isinstance(st_v, float) else [st_v]

    def dims(st):
        nb, nc, n = (_dim(d) for d in st.shape)
        return nb * nc, nc, n

    def sort_stage(bt, st, *thr):
        nseg, ncls, n = dims(st)
        box_dims = (_dim(bt.shape[1]), _dim(bt.shape[0]), _dim(bt.shape[2]))
        logp = _log2_ceil(n)
        p = (1 << logp) if isinstance(logp, int) else None
        ws = (1, 1) if p is not None and p <= SHARED_SORT_MAX else (nseg, p if p is not None else n * 2)
        return te.extern(
            [(nseg, n), (nseg,), ws],
            [st, bt, *thr],  # bt: its dims bound the candidates (its data is not read)
            lambda ins, outs: _sort_ir(
                sel, nseg, ncls, n, box_dims, ins[0], ins[2] if st_in else st_v, outs[0], outs[1], outs[2], mode
            ),
            dtype=["int64", "int64", "uint64"],
            name="tpat_nms_sort",
        )

    sorted_ = bb.emit_te(sort_stage, boxes, scores, *st_in, primfunc_name_hint="tpat_nms_sort")
    order = bb.emit(relax.TupleGetItem(sorted_, 0))
    m = bb.emit(relax.TupleGetItem(sorted_, 1))

    def mask_stage(bt, st, ot, mt, *iou):
        nseg, ncls, n = dims(st)
        words = (n + 63) // 64
        return te.extern(
            [(nseg, n, words)],
            [bt, ot, mt, *iou],
            lambda ins, outs: _mask_ir(
                sel, nseg, ncls, n, words, ins[0], ins[3] if iou_in else iou_v, ins[1], ins[2], outs[0], mode
            ),
            dtype="uint64",
            name="tpat_nms_mask",
        )

    mask = bb.emit_te(mask_stage, boxes, scores, order, m, *iou_in, primfunc_name_hint="tpat_nms_mask")

    def sweep_stage(st, ot, mt, kt):
        nseg, ncls, n = dims(st)
        words = (n + 63) // 64
        kmax = _kmax(sel, n)
        return te.extern(
            [(nseg, kmax), (nseg,), (nseg, words)],
            [ot, mt, kt],
            lambda ins, outs: _sweep_ir(sel, nseg, n, words, kmax, ins[0], ins[1], ins[2], *outs, mode),
            dtype=["int64", "int64", "uint64"],
            name="tpat_nms_sweep",
        )

    swept = bb.emit_te(sweep_stage, scores, order, m, mask, primfunc_name_hint="tpat_nms_sweep")
    keep = bb.emit(relax.TupleGetItem(swept, 0))
    cnt = bb.emit(relax.TupleGetItem(swept, 1))

    def scan_stage(ct):
        nseg = ct.shape[0]
        return te.extern(
            [(nseg,), ()],
            [ct],
            lambda ins, outs: _scan_ir(sel, ins[0], outs[0], outs[1], nseg, mode),
            dtype=["int64", "int64"],
            name="tpat_nms_scan",
        )

    scanned = bb.emit_te(scan_stage, cnt, primfunc_name_hint="tpat_nms_scan")
    offsets = bb.emit(relax.TupleGetItem(scanned, 0))
    size = bb.emit(relax.TupleGetItem(scanned, 1))

    def scatter_stage(st, kt, ct, ot):
        nseg, ncls, n = dims(st)
        kmax = _kmax(sel, n)
        return te.extern(
            [(nseg * kmax, 3)],
            [kt, ct, ot],
            lambda ins, outs: _scatter_ir(nseg, ncls, kmax, ins[0], ins[1], ins[2], outs[0], mode),
            dtype="int64",
            name="tpat_nms_scatter",
        )

    out = bb.emit_te(scatter_stage, scores, keep, cnt, offsets, primfunc_name_hint="tpat_nms_scatter")
    return bb.emit(relax.Tuple([out, size]))


class NmsLowering(Lowering):
    name = "nonmaxsuppression"
    ops = ("NonMaxSuppression",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


NMS = NmsLowering()
