"""TPAT's own TVM lowering of ONNX Unique: data-dependent outputs through one size tensor.

Unique(X) of the flattened X gives Y (the distinct values), indices (first occurrence of each in
X), inverse_indices (for every element of X, its value's position in Y) and counts; `sorted=1`
orders Y ascending, `sorted=0` by first occurrence. Y, indices and counts have the
data-dependent length U (the plan's size output, 0-D int64; upper bound N = X.size);
inverse_indices is [N]. Any subset of the four outputs may be used.

Kernels, no host synchronisation, no serial loop over the data:
  1. argsort of X (TVM's GPU sort through Relax `argsort`: block sorts then merge passes);
  2. group starts: flag[i] = (i == 0 or X[perm[i]] != X[perm[i-1]]); NonZero's block-wide count
     and scan kernels (nonzero.py) number them: offsets per block and U;
  3. assign: first[g] = N for every g (one kernel), then per sorted position (a block-wide scan of
     the flags) the group g, starts[g] and first[g] = min(first[g], perm[i]) (atomicMin: the sort
     need not be stable);
  4. sorted=0 only: argsort of first[] (groups in order of first occurrence; unused slots hold N
     and sort last) and its inverse permutation (rank of each group);
  5. outputs: one thread per group (Y, indices, counts from starts[] and first[]) and one thread
     per element (inverse_indices[perm[i]]).
Float values compare with `!=` (-0.0 == 0.0; NaNs are never equal, each NaN is its own value).
`mode="cpu"` builds the same IR with serial loops (plain min for the atomic) for the LLVM tests.

With `axis` the values are the slices X[..., j, ...] (row-major over the other dims, compared
lexicographically): one block per slice ranks it against every other slice (threads split the
other slices, each comparison a loop over the slice, a block-wide sum; O(A^2 * slice) work, no
sort), the ranks give the sorted order; group flags compare neighbouring slices; then the same
count / scan / assign / groups kernels, and Y is gathered slice by slice (Compress's gather).
sorted=0 argsorts the first occurrences as above.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .compress import _gather_ir
from .ir import Threads
from .nonzero import PER_THREAD, THREADS, _count_ir, _i64, _local, _numel, _scan_ir, block_scan
from .prelude import install_cuda_postproc
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = ("float32", "float64", "int32", "int64", "int8", "uint8", "int16", "uint16")
ELEM_THREADS = 256
NAMES = ("Y", "indices", "inverse_indices", "counts")


@dataclass(frozen=True)
class UniqueSelection(Selection):
    dtype: str
    x_index: int
    present: tuple  # the ONNX outputs used (0 Y, 1 indices, 2 inverse_indices, 3 counts), in order
    axis: int | None  # None: the flattened input
    sorted: bool
    threads: int = THREADS  # NonZero's count / scan kernels on the group flags
    per: int = PER_THREAD

    @property
    def data_dependent(self) -> list:
        # Y (its `axis` dim with an axis), indices and counts: one size output after the outputs
        n_out = len(self.present)
        return [
            {"output": j, "dim": self.axis if (k == 0 and self.axis is not None) else 0, "size_output": n_out}
            for j, k in enumerate(self.present)
            if k in (0, 1, 3)
        ]

    def describe(self) -> str:
        order = "sorted" if self.sorted else "first-occurrence order"
        outs = ", ".join(NAMES[k] for k in self.present)
        if self.axis is not None:
            return (
                f"unique (axis {self.axis}, {order}, outputs {outs}; slices ranked by a block per slice, "
                "block-wide scans, size tensor)"
            )
        return f"unique (flattened, {order}, outputs {outs}; argsort, block-wide scans, size tensor)"


def select(node: NodeView) -> UniqueSelection | Decline:
    ops = node.operands
    if len(ops) != 1 or not ops[0].is_param:
        return Decline("Unique needs a runtime input")
    xshape, dtype = ops[0].shape, ops[0].dtype
    # The int default makes attr() check the value (BadValue on a float or a string axis).
    axis = node.attr("axis", 0) if any(a.name == "axis" for a in node.node.attribute) else None
    if axis is not None:
        if not -len(xshape) <= axis < len(xshape):
            return Decline(f"axis {axis} for rank {len(xshape)}")
        axis %= len(xshape)
    if dtype not in DTYPES:
        return Decline(f"dtype {dtype}")
    if len(xshape) == 0:
        return Decline("scalar input")
    sort_used = axis is None or not int(node.attr("sorted", 1))
    if sort_used and any(not isinstance(d, int) for d in xshape):
        # TVM's GPU argsort on a symbolic size guards its launches with host `if`s and counts its
        # merge passes as ceil(log2(N)) in float on the host: no launch plan can say that.
        return Decline(
            f"input shape {list(map(str, xshape))} is symbolic and this Unique (flattened, or sorted=0) sorts with "
            "TVM's GPU argsort, whose host code branches on the size and counts merge passes as ceil(log2(N)): "
            "a launch plan cannot express that; give the input static dims (e.g. polygraphy surgeon sanitize "
            "--override-input-shapes), or use Unique with an axis and sorted=1 (no sort)"
        )
    present = tuple(k for k, nm in enumerate(node.node.output) if nm)
    if len(present) != len(node.outputs) or not present:
        return Decline("unexpected outputs")
    return UniqueSelection(
        dtype=dtype, x_index=ops[0].index, present=present, axis=axis, sorted=bool(int(node.attr("sorted", 1)))
    )


def _flag(xv, perm, p):
    """Sorted position p starts a group."""
    prev = tirx.max(p - 1, _i64(0))
    return tirx.Or(p == _i64(0), xv[perm[p]] != xv[perm[prev]])


def _atomic_min(buf, idx, val, mode):
    if mode == "gpu":
        T.evaluate(T.call_extern("int64", "tpat_atomic_min_i64", T.address_of(buf[idx]), val))
    else:
        T.buffer_store(buf, tirx.min(buf[idx], val), [idx])


def _assign_ir(det, n, xv, perm, offsets, gid, starts, first, mode, flag=None):
    """flag(p): sorted position p starts a group (default: its value differs from the one before)."""
    flag = flag or (lambda p: _flag(xv, perm, p))
    tb, per = det.threads, det.per
    tile = tb * per
    steps = tb.bit_length() - 1
    fin = steps % 2
    gpu = mode == "gpu"
    nb = (n + (tile - 1)) // tile
    with IRBuilder() as ib:
        with T.seq_scope():
            # kernel 1: first[g] = N
            th0 = Threads(mode, (n + (ELEM_THREADS - 1)) // ELEM_THREADS, ELEM_THREADS)
            with th0 as bx:

                def init(tx):
                    q = tirx.Cast("int64", bx) * ELEM_THREADS + tirx.Cast("int64", tx)
                    with T.If(q < n):
                        with T.Then():
                            T.buffer_store(first, n, [q])

                th0.each_thread(init)
            # kernel 2: groups of the sorted positions
            th = Threads(mode, nb, tb)
            with th as bx:
                b = tirx.Cast("int64", bx)
                tot = T.decl_buffer([2, tb], "int64", scope="shared" if gpu else "global")
                run, R = _local(mode, tb)
                with T.If(b * tile < n):
                    with T.Then():
                        base = b * tile

                        def local(tx):
                            c = _i64(0)
                            for e in range(per):
                                p = base + tirx.Cast("int64", tx) * per + e
                                c = c + tirx.Cast("int64", tirx.And(p < n, flag(tirx.min(p, n - 1))))
                            T.buffer_store(tot, c, [0, tirx.Cast("int32", tx)])

                        th.each_thread(local)
                        th.barrier()
                        block_scan(th, tot, tb, steps)

                        def write(tx):
                            t = tirx.Cast("int32", tx)
                            T.buffer_store(
                                run, offsets[b] + tirx.Select(t > 0, tot[fin, tirx.max(t - 1, 0)], _i64(0)), R(tx)
                            )
                            for e in range(per):
                                p = base + tirx.Cast("int64", tx) * per + e
                                with T.If(p < n):
                                    with T.Then():
                                        f = flag(p)
                                        with T.If(f):
                                            with T.Then():
                                                T.buffer_store(starts, p, [run[tuple(R(tx))]])
                                                T.buffer_store(run, run[tuple(R(tx))] + 1, R(tx))
                                        g = run[tuple(R(tx))] - 1
                                        T.buffer_store(gid, g, [p])
                                        _atomic_min(first, g, perm[p], mode)

                        th.each_thread(write)
    return ib.get()


def _elementwise(mode, n, body):
    """One thread per index q < n: body(q)."""
    with IRBuilder() as ib:
        th = Threads(mode, (n + (ELEM_THREADS - 1)) // ELEM_THREADS, ELEM_THREADS)
        with th as bx:

            def each(tx):
                q = tirx.Cast("int64", bx) * ELEM_THREADS + tirx.Cast("int64", tx)
                with T.If(q < n):
                    with T.Then():
                        body(q)

            th.each_thread(each)
    return ib.get()


def _emit_scan(bb, det, counts, mode):
    """The exclusive scan of the per-block counts: (offsets, size) as Relax values."""

    def scan_stage(ct):
        nb = ct.shape[0]
        return te.extern(
            [(nb,), ()],
            [ct],
            lambda ins, outs: _scan_ir(det, ins[0], outs[0], outs[1], nb, mode),
            dtype=["int64", "int64"],
            name="tpat_unique_scan",
        )

    scanned = bb.emit_te(scan_stage, counts, primfunc_name_hint="tpat_unique_scan")
    return bb.emit(relax.TupleGetItem(scanned, 0)), bb.emit(relax.TupleGetItem(scanned, 1))


def emit(bb, params, det: UniqueSelection, mode="gpu"):
    if det.axis is not None:
        return _emit_axis(bb, params, det, mode)
    if mode == "gpu":
        install_cuda_postproc()  # TVM's own CUDA build sees the atomic helper too
    x = params[det.x_index]
    n_expr = _numel(x.ty.shape.values)
    xf = bb.emit(relax.op.reshape(x, [n_expr]))
    # small integers sort as int32 (same order; TVM's CPU sort has no 8/16-bit kernels)
    keys = bb.emit(relax.op.astype(xf, "int32")) if det.dtype in ("int8", "uint8", "int16", "uint16") else xf
    perm = bb.emit(relax.op.argsort(keys, axis=0, descending=False, dtype="int64"))
    tile = det.threads * det.per

    def count_stage(xt, pt):
        n = xt.shape[0]
        nb = (n + (tile - 1)) // tile
        return te.extern(
            [(nb,)],
            [xt, pt],
            lambda ins, outs: _count_ir(det, n, ins[0], outs[0], nb, mode, pred=lambda p: _flag(ins[0], ins[1], p)),
            dtype="int64",
            name="tpat_unique_count",
        )

    counts = bb.emit_te(count_stage, xf, perm, primfunc_name_hint="tpat_unique_count")

    offsets, size = _emit_scan(bb, det, counts, mode)

    def assign_stage(xt, pt, ot):
        n = xt.shape[0]
        return te.extern(
            [(n,), (n,), (n,)],
            [xt, pt, ot],
            lambda ins, outs: _assign_ir(det, n, ins[0], ins[1], ins[2], outs[0], outs[1], outs[2], mode),
            dtype=["int64", "int64", "int64"],
            name="tpat_unique_assign",
        )

    assigned = bb.emit_te(assign_stage, xf, perm, offsets, primfunc_name_hint="tpat_unique_assign")
    gid = bb.emit(relax.TupleGetItem(assigned, 0))
    starts = bb.emit(relax.TupleGetItem(assigned, 1))
    first = bb.emit(relax.TupleGetItem(assigned, 2))

    order = rank = None
    if not det.sorted:
        order = bb.emit(relax.op.argsort(first, axis=0, descending=False, dtype="int64"))

        def rank_stage(ot, st):
            n = ot.shape[0]

            def ir(ins, outs):
                o, s, r = ins[0], ins[1], outs[0]
                return _elementwise(mode, n, lambda q: _rank_body(T, o, s, r, q))

            return te.extern([(n,)], [ot, st], ir, dtype="int64", name="tpat_unique_rank")

        rank = bb.emit_te(rank_stage, order, size, primfunc_name_hint="tpat_unique_rank")

    dtype = det.dtype

    def groups_stage(xt, pt, st_, ft, sz, *maybe_order):
        n = xt.shape[0]

        def ir(ins, outs):
            xv, pv, sv, fv, zv = ins[:5]
            ov = ins[5] if len(ins) > 5 else None
            y, ind, cnt = outs

            def body(r):
                u = zv[()]
                with T.If(r < u):
                    with T.Then():
                        g = ov[r] if ov is not None else r
                        s = sv[g]
                        e = tirx.Select(g + 1 < u, sv[tirx.min(g + 1, n - 1)], n)
                        T.buffer_store(y, xv[pv[s]], [r])
                        T.buffer_store(ind, fv[g], [r])
                        T.buffer_store(cnt, e - s, [r])

            return _elementwise(mode, n, body)

        return te.extern(
            [(n,), (n,), (n,)],
            [xt, pt, st_, ft, sz, *maybe_order],
            ir,
            dtype=[dtype, "int64", "int64"],
            name="tpat_unique_groups",
        )

    extra = [order] if order is not None else []
    groups = bb.emit_te(groups_stage, xf, perm, starts, first, size, *extra, primfunc_name_hint="tpat_unique_groups")

    def inverse_stage(pt, gt, *maybe_rank):
        n = pt.shape[0]

        def ir(ins, outs):
            pv, gv = ins[0], ins[1]
            rv = ins[2] if len(ins) > 2 else None
            return _elementwise(
                mode, n, lambda q: T.buffer_store(outs[0], rv[gv[q]] if rv is not None else gv[q], [pv[q]])
            )

        return te.extern([(n,)], [pt, gt, *maybe_rank], ir, dtype="int64", name="tpat_unique_inverse")

    inverse = bb.emit_te(
        inverse_stage, perm, gid, *([rank] if rank is not None else []), primfunc_name_hint="tpat_unique_inverse"
    )
    all_outs = [
        bb.emit(relax.TupleGetItem(groups, 0)),
        bb.emit(relax.TupleGetItem(groups, 1)),
        inverse,
        bb.emit(relax.TupleGetItem(groups, 2)),
    ]
    return bb.emit(relax.Tuple([all_outs[k] for k in det.present] + [size]))


def _rank_body(T, order, size, rank, q):
    """rank[order[q]] = q for the U groups (their position in first-occurrence order)."""
    with T.If(q < size[()]):
        with T.Then():
            T.buffer_store(rank, q, [order[q]])


# --------------------------------------------------------------------------------------------
# Unique along an axis: the slices X[:, j, :] (row-major over the other dims) are the values.


def _slice_elem(xf, a_len, inner, j, e):
    return xf[((e // inner) * a_len + j) * inner + e % inner]


def _rank_ir(det, xf_buf, a_len, inner, slen, rank, mode):
    """One block per slice j: rank[j] = #{k : slice k < slice j, or equal and k < j}
    (lexicographic; the threads split the k, a block-wide tree sum)."""
    tb = ELEM_THREADS
    gpu = mode == "gpu"
    with IRBuilder() as ib:
        th = Threads(mode, a_len, tb)
        with th as bx:
            xf = T.decl_buffer([slen * a_len], det.dtype, data=xf_buf.data)
            j = tirx.Cast("int64", bx)
            cnt = T.decl_buffer([tb], "int64", scope="shared" if gpu else "global")
            res = T.decl_buffer([tb], "int32", scope="shared" if gpu else "global")

            def count(tx):
                t = tirx.Cast("int32", tx)
                T.buffer_store(cnt, _i64(0), [t])
                with T.serial(_i64(0), (a_len + (tb - 1)) // tb) as it:
                    k = it * tb + tirx.Cast("int64", tx)
                    with T.If(k < a_len):
                        with T.Then():
                            T.buffer_store(res, tirx.const(0, "int32"), [t])
                            with T.serial(_i64(0), slen) as e:
                                a = _slice_elem(xf, a_len, inner, k, e)
                                b = _slice_elem(xf, a_len, inner, j, e)
                                sign = tirx.Select(
                                    a < b,
                                    tirx.const(-1, "int32"),
                                    tirx.Select(b < a, tirx.const(1, "int32"), tirx.const(0, "int32")),
                                )
                                T.buffer_store(res, tirx.Select(res[t] != 0, res[t], sign), [t])
                            less = tirx.Or(res[t] < 0, tirx.And(res[t] == 0, k < j))
                            T.buffer_store(cnt, cnt[t] + tirx.Cast("int64", less), [t])

            th.each_thread(count)
            th.barrier()
            s = tb // 2
            while s >= 1:

                def add(tx, s=s):
                    t = tirx.Cast("int32", tx)
                    with T.If(t < s):
                        with T.Then():
                            T.buffer_store(cnt, cnt[t] + cnt[t + s], [t])

                th.each_thread(add)
                th.barrier()
                s //= 2

            def store(tx):
                with T.If(tirx.Cast("int32", tx) == 0):
                    with T.Then():
                        T.buffer_store(rank, cnt[0], [j])

            th.each_thread(store)
    return ib.get()


def _emit_axis(bb, params, det, mode):
    if mode == "gpu":
        install_cuda_postproc()
    x = params[det.x_index]
    ax = det.axis
    tile = det.threads * det.per

    def parts(xt):
        shape = list(xt.shape)
        return _numel(shape[:ax]), _numel(shape[ax : ax + 1]), _numel(shape[ax + 1 :])

    def rank_stage(xt):
        outer, a_len, inner = parts(xt)
        return te.extern(
            [(a_len,)],
            [xt],
            lambda ins, outs: _rank_ir(det, ins[0], a_len, inner, outer * inner, outs[0], mode),
            dtype="int64",
            name="tpat_unique_rank_slices",
        )

    srank = bb.emit_te(rank_stage, x, primfunc_name_hint="tpat_unique_rank_slices")

    def perm_stage(rt):
        n = rt.shape[0]
        return te.extern(
            [(n,)],
            [rt],
            lambda ins, outs: _elementwise(mode, n, lambda q: T.buffer_store(outs[0], q, [ins[0][q]])),
            dtype="int64",
            name="tpat_unique_perm",
        )

    perm = bb.emit_te(perm_stage, srank, primfunc_name_hint="tpat_unique_perm")

    def flags_stage(xt, pt):
        outer, a_len, inner = parts(xt)
        slen = outer * inner

        def ir(ins, outs):
            xv, pv, fl = ins[0], ins[1], outs[0]

            def body(p):
                T.buffer_store(fl, tirx.Cast("int64", p == 0), [p])
                with T.If(p > 0):
                    with T.Then():
                        with T.serial(_i64(0), slen) as e:
                            a = _slice_elem(xv_flat, a_len, inner, pv[p], e)
                            b = _slice_elem(xv_flat, a_len, inner, pv[p - 1], e)
                            T.buffer_store(fl, tirx.Select(a != b, _i64(1), fl[p]), [p])

            with IRBuilder() as ib:
                th = Threads(mode, (a_len + (ELEM_THREADS - 1)) // ELEM_THREADS, ELEM_THREADS)
                with th as bx:
                    xv_flat = T.decl_buffer([slen * a_len], det.dtype, data=xv.data)

                    def each(tx):
                        q = tirx.Cast("int64", bx) * ELEM_THREADS + tirx.Cast("int64", tx)
                        with T.If(q < a_len):
                            with T.Then():
                                body(q)

                    th.each_thread(each)
            return ib.get()

        return te.extern([(a_len,)], [xt, pt], ir, dtype="int64", name="tpat_unique_flags")

    flags = bb.emit_te(flags_stage, x, perm, primfunc_name_hint="tpat_unique_flags")

    def count_stage(ft):
        n = ft.shape[0]
        nb = (n + (tile - 1)) // tile
        return te.extern(
            [(nb,)],
            [ft],
            lambda ins, outs: _count_ir(det, n, ins[0], outs[0], nb, mode, pred=lambda p: ins[0][p] != _i64(0)),
            dtype="int64",
            name="tpat_unique_count",
        )

    counts = bb.emit_te(count_stage, flags, primfunc_name_hint="tpat_unique_count")

    offsets, size = _emit_scan(bb, det, counts, mode)

    def assign_stage(ft, pt, ot):
        n = ft.shape[0]
        return te.extern(
            [(n,), (n,), (n,)],
            [ft, pt, ot],
            lambda ins, outs: _assign_ir(
                det, n, ins[0], ins[1], ins[2], outs[0], outs[1], outs[2], mode, flag=lambda p: ins[0][p] != _i64(0)
            ),
            dtype=["int64", "int64", "int64"],
            name="tpat_unique_assign",
        )

    assigned = bb.emit_te(assign_stage, flags, perm, offsets, primfunc_name_hint="tpat_unique_assign")
    gid = bb.emit(relax.TupleGetItem(assigned, 0))
    starts = bb.emit(relax.TupleGetItem(assigned, 1))
    first = bb.emit(relax.TupleGetItem(assigned, 2))
    order = grank = None
    if not det.sorted:
        order = bb.emit(relax.op.argsort(first, axis=0, descending=False, dtype="int64"))

        def grank_stage(ot, st):
            n = ot.shape[0]
            return te.extern(
                [(n,)],
                [ot, st],
                lambda ins, outs: _elementwise(mode, n, lambda q: _rank_body(T, ins[0], ins[1], outs[0], q)),
                dtype="int64",
                name="tpat_unique_rank",
            )

        grank = bb.emit_te(grank_stage, order, size, primfunc_name_hint="tpat_unique_rank")

    def groups_stage(pt, st_, ft, sz, *maybe_order):
        n = pt.shape[0]

        def ir(ins, outs):
            pv, sv, fv, zv = ins[:4]
            ov = ins[4] if len(ins) > 4 else None
            sel, ind, cnt = outs

            def body(r):
                u = zv[()]
                with T.If(r < u):
                    with T.Then():
                        g = ov[r] if ov is not None else r
                        s_ = sv[g]
                        e = tirx.Select(g + 1 < u, sv[tirx.min(g + 1, n - 1)], n)
                        T.buffer_store(sel, pv[s_], [r])
                        T.buffer_store(ind, fv[g], [r])
                        T.buffer_store(cnt, e - s_, [r])

            return _elementwise(mode, n, body)

        return te.extern(
            [(n,), (n,), (n,)],
            [pt, st_, ft, sz, *maybe_order],
            ir,
            dtype=["int64", "int64", "int64"],
            name="tpat_unique_groups",
        )

    groups = bb.emit_te(
        groups_stage,
        perm,
        starts,
        first,
        size,
        *([order] if order is not None else []),
        primfunc_name_hint="tpat_unique_groups",
    )
    sel = bb.emit(relax.TupleGetItem(groups, 0))

    def y_stage(xt, selt, st):
        a_len = parts(xt)[1]
        return te.extern(
            [list(xt.shape)],
            [xt, selt, st],
            lambda ins, outs: _gather_ir(ax, det.dtype, xt.shape, a_len, ins[0], ins[1], ins[2], outs[0], mode),
            dtype=det.dtype,
            name="tpat_unique_y",
        )

    y = bb.emit_te(y_stage, x, sel, size, primfunc_name_hint="tpat_unique_y")

    def inverse_stage(pt, gt, *maybe_rank):
        n = pt.shape[0]

        def ir(ins, outs):
            pv, gv = ins[0], ins[1]
            rv = ins[2] if len(ins) > 2 else None
            return _elementwise(
                mode, n, lambda q: T.buffer_store(outs[0], rv[gv[q]] if rv is not None else gv[q], [pv[q]])
            )

        return te.extern([(n,)], [pt, gt, *maybe_rank], ir, dtype="int64", name="tpat_unique_inverse")

    inverse = bb.emit_te(
        inverse_stage, perm, gid, *([grank] if grank is not None else []), primfunc_name_hint="tpat_unique_inverse"
    )
    all_outs = [y, bb.emit(relax.TupleGetItem(groups, 1)), inverse, bb.emit(relax.TupleGetItem(groups, 2))]
    return bb.emit(relax.Tuple([all_outs[k] for k in det.present] + [size]))


class UniqueLowering(Lowering):
    name = "unique"
    ops = ("Unique",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


UNIQUE = UniqueLowering()
