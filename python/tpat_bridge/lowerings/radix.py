"""A stable GPU argsort of a 1-D tensor for TPAT's lowerings (Unique): an LSD radix sort whose
number of passes follows the data's range at run time.

TVM 0.27's GPU argsort (Relax `argsort`) is a merge sort of many passes: about 1.2 ms for 2^20
int64 values on an H200. Here every value becomes a signed 64-bit sort key with the same order
(integers widened; floats: their bits, negatives with the magnitude bits flipped; NaN made one
positive NaN, so NaNs sort last; -0.0 the same key as +0.0), and the sort works on d = key - min (as
unsigned 64-bit, so any range fits):

  1. min/max of the keys: per thread, warp shuffles, one 64-bit atomicMin/atomicMax per warp;
  2. up to 16 passes of 4 bits each (2 for 8-bit types, 4 for 16-bit, 8 for 32-bit). Pass p runs
     only when d's range has bits at 4p or above (pass 0 always): the kernels of the other passes
     exit at once. A pass is two launches: (a) per block of 256 threads x 16 consecutive
     elements, the count of each digit (per-thread columns of a shared [16, 256] table, no
     atomics) -> hist[digit, block]; the last block to finish (each block fences its counts and
     counts itself in with one atomicAdd on the pass's arrival counter) scans hist (digit-major)
     into global offsets; (b) each block recounts, scans its table (digit-major) and writes every
     element, in order, to offset[digit, block] + the count of its digit in earlier threads +
     earlier in the thread: a stable counting sort;
  3. the permutation of the last pass that ran is copied out.

Small ranges (Unique's typical categorical data) take one or two passes. Pass 0 reads X itself;
later passes ping-pong between two (d, index) buffers. `mode="cpu"` builds the same IR with serial
loops over blocks and threads (plain min/max for the atomics, serial sums for the shuffles) for the
LLVM tests.
"""

from __future__ import annotations

import tvm
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads
from .nonzero import _numel, block_scan

TB = 256  # threads per block
PER = 16  # consecutive elements per thread
TILE = TB * PER
BITS = 4  # digit width
DIGITS = 1 << BITS
KEY_BITS = {"int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "float32": 32}  # else 64
DTYPES = ("float32", "float64", "int32", "int64", "int8", "uint8", "int16", "uint16")


def _i64(v):
    return tirx.const(v, "int64")


def _i32(v):
    return tirx.const(v, "int32")


def skey(v, dtype):
    """Signed 64-bit key with the order of the values (floats: NaN last, -0.0 equal to +0.0)."""
    if dtype == "float32":
        b = tirx.reinterpret("int32", v)
        b = tirx.Select(tirx.isnan(v), _i32(0x7FC00000), b)
        b = tirx.Select(v == tirx.const(0.0, "float32"), _i32(0), b)  # -0.0 ties with +0.0
        b = tirx.Select(b < _i32(0), tirx.bitwise_xor(b, _i32(0x7FFFFFFF)), b)
        return tirx.Cast("int64", b)
    if dtype == "float64":
        b = tirx.reinterpret("int64", v)
        b = tirx.Select(tirx.isnan(v), _i64(0x7FF8000000000000), b)
        b = tirx.Select(v == tirx.const(0.0, "float64"), _i64(0), b)
        return tirx.Select(b < _i64(0), tirx.bitwise_xor(b, _i64(0x7FFFFFFFFFFFFFFF)), b)
    return tirx.Cast("int64", v)


def passes(dtype):
    return KEY_BITS.get(dtype, 64) // BITS


def _atomic(op, buf, idx, val, mode):
    if mode == "gpu":
        T.evaluate(T.call_extern("int64", f"tpat_atomic_{op}_i64", T.address_of(buf[idx]), val))
    else:
        f = tirx.min if op == "min" else tirx.max
        T.buffer_store(buf, f(buf[idx], val), [idx])


def _each(th, act, body):
    """body(tx) for every thread, only when act holds (a block-uniform condition: the barriers
    between phases stay outside it, as TVM requires)."""

    def guarded(tx):
        with T.If(act):
            with T.Then():
                body(tx)

    th.each_thread(guarded)


class _Guarded:
    """A block's threads whose every phase runs only when `act` holds (block-uniform); the
    barriers stay outside it."""

    def __init__(self, th, act):
        self.th, self.act = th, act

    def each_thread(self, body):
        _each(self.th, self.act, body)

    def barrier(self):
        self.th.barrier()


def _range(mm):
    """max - min of the keys as uint64 (exact for any int64 range)."""
    return tirx.Cast("uint64", mm[1]) - tirx.Cast("uint64", mm[0])


def _active(mm, p):
    if p == 0:
        return tirx.const(True, "bool")
    return tirx.shift_right(_range(mm), tirx.const(BITS * p, "uint64")) != tirx.const(0, "uint64")


def _minmax_ir(dtype, n, x, mm, ctr, mode):
    gpu = mode == "gpu"
    big, small = _i64(2**63 - 1), _i64(-(2**63))
    with IRBuilder() as ib0:
        th = Threads(mode, 1, 1)
        with th:

            def init(tx):
                T.buffer_store(mm, big, [0])
                T.buffer_store(mm, small, [1])
                for p in range(passes(dtype)):  # the arrival counters of the count kernels
                    T.buffer_store(ctr, _i32(0), [p])

            th.each_thread(init)
    nb = (n + _i64(TILE - 1)) // _i64(TILE)
    with IRBuilder() as ib1:
        th = Threads(mode, nb, TB)
        with th as bx:
            lo = T.decl_buffer([1] if gpu else [TB], "int64", scope="local" if gpu else "global")
            hi = T.decl_buffer([1] if gpu else [TB], "int64", scope="local" if gpu else "global")

            def R(tx):
                return [0] if gpu else [tirx.Cast("int32", tx)]

            def each(tx):
                T.buffer_store(lo, big, R(tx))
                T.buffer_store(hi, small, R(tx))
                base = tirx.Cast("int64", bx) * _i64(TILE)
                with T.unroll(0, PER) as e:  # coalesced: consecutive threads, consecutive elements
                    pos = base + tirx.Cast("int64", e * TB) + tirx.Cast("int64", tx)
                    with T.If(pos < n):
                        with T.Then():
                            k = skey(x[pos], dtype)
                            T.buffer_store(lo, tirx.min(lo[tuple(R(tx))], k), R(tx))
                            T.buffer_store(hi, tirx.max(hi[tuple(R(tx))], k), R(tx))
                if gpu:
                    mask = tirx.const(0xFFFFFFFF, "uint32")
                    for s in (16, 8, 4, 2, 1):
                        for buf, f in ((lo, tirx.min), (hi, tirx.max)):
                            sh = tvm.ir.Call(
                                "tirx.tvm_warp_shuffle_down",
                                [mask, buf[0], _i32(s), _i32(32), _i32(32)],
                                ret_ty="int64",
                            )
                            T.buffer_store(buf, f(buf[0], sh), [0])
                    with T.If(tirx.Cast("int32", tx) % _i32(32) == _i32(0)):
                        with T.Then():
                            _atomic("min", mm, 0, lo[0], mode)
                            _atomic("max", mm, 1, hi[0], mode)
                else:
                    _atomic("min", mm, 0, lo[tuple(R(tx))], mode)
                    _atomic("max", mm, 1, hi[tuple(R(tx))], mode)

            th.each_thread(each)
    return [ib0.get(), ib1.get()]


class _Pass:
    """The per-thread part shared by a pass's count and scatter kernels."""

    def __init__(self, dtype, n, p, x, kin, iin, mm, mode):
        self.dtype, self.n, self.p, self.x, self.kin, self.iin, self.mm = dtype, n, p, x, kin, iin, mm
        self.gpu = mode == "gpu"

    def regs(self, dt):
        """Per-thread array of PER: registers on the GPU, a [TB * PER] array on the CPU."""
        if self.gpu:
            return T.decl_buffer([PER], dt, scope="local"), (lambda tx, e: e)
        return T.decl_buffer([TB * PER], dt, scope="global"), (lambda tx, e: tirx.Cast("int32", tx) * _i32(PER) + e)

    def load(self, bx, tx, kv, iv, at, index=True):
        """kv/iv = d and index of this thread's PER consecutive elements (d = 0 past the end)."""
        base = tirx.Cast("int64", bx) * _i64(TILE) + tirx.Cast("int64", tx) * _i64(PER)
        with T.unroll(0, PER) as e:
            pos = base + tirx.Cast("int64", e)
            with T.If(pos < self.n):
                with T.Then():
                    if self.p == 0:
                        d = tirx.Cast("uint64", skey(self.x[pos], self.dtype)) - tirx.Cast("uint64", self.mm[0])
                        T.buffer_store(kv, d, [at(tx, e)])
                        T.buffer_store(iv, pos, [at(tx, e)])
                    else:
                        T.buffer_store(kv, self.kin[pos], [at(tx, e)])
                        if index:
                            T.buffer_store(iv, self.iin[pos], [at(tx, e)])

    def digit(self, d):
        sh = tirx.shift_right(d, tirx.const(BITS * self.p, "uint64"))
        return tirx.Cast("int32", tirx.bitwise_and(sh, tirx.const(DIGITS - 1, "uint64")))

    def counters(self):
        """Per-thread digit counters (dynamically indexed: local memory on the GPU, never shared,
        so TVM sees no cross-thread hazard); on the CPU a [TB * DIGITS] array."""
        if self.gpu:
            return T.decl_buffer([DIGITS], "int32", scope="local"), (lambda tx, d: d)
        return (
            T.decl_buffer([TB * DIGITS], "int32", scope="global"),
            (lambda tx, d: tirx.Cast("int32", tx) * _i32(DIGITS) + d),
        )

    def count(self, bx, tx, kv, at, lc, lat, cnt):
        """cnt[digit * TB + t] = how many of thread t's elements have that digit (counted in lc)."""
        t = tirx.Cast("int32", tx)
        with T.unroll(0, DIGITS) as dg:
            T.buffer_store(lc, _i32(0), [lat(tx, dg)])
        base = tirx.Cast("int64", bx) * _i64(TILE) + tirx.Cast("int64", tx) * _i64(PER)
        with T.unroll(0, PER) as e:
            with T.If(base + tirx.Cast("int64", e) < self.n):
                with T.Then():
                    c = lat(tx, self.digit(kv[at(tx, e)]))
                    T.buffer_store(lc, lc[c] + _i32(1), [c])
        with T.unroll(0, DIGITS) as dg:
            T.buffer_store(cnt, lc[lat(tx, dg)], [dg * _i32(TB) + t])


def _hist_ir(ps, nb, hist, offs, m, ctr, mode):
    """Pass p's counts: hist[digit, block]; the last block to finish also scans them into offs
    (one launch instead of a count kernel and a scan kernel)."""
    gpu = mode == "gpu"
    with IRBuilder() as ib:
        th = Threads(mode, nb, TB)
        with th as bx:
            act = _active(ps.mm, ps.p)  # block-uniform: every phase guarded, the barriers not
            kv, at = ps.regs("uint64")
            iv, _ = ps.regs("int64")
            lc, lat = ps.counters()
            cnt = T.decl_buffer([DIGITS * TB], "int32", scope="shared" if gpu else "global")
            flag = T.decl_buffer([1], "int32", scope="shared" if gpu else "global")
            mine = T.decl_buffer([1], "int32", scope="local") if gpu else None
            sbufs = _scan_bufs(TB, gpu)

            def first(tx):
                ps.load(bx, tx, kv, iv, at, index=False)
                ps.count(bx, tx, kv, at, lc, lat, cnt)

            _each(th, act, first)
            th.barrier()

            red = T.decl_buffer([TB], "int32", scope="shared" if gpu else "global")
            q = TB // DIGITS  # threads per digit, each summing q entries of its row

            def partial(tx):
                t = tirx.Cast("int32", tx)
                acc = T.decl_buffer([1], "int32", scope="local" if gpu else "global")
                T.buffer_store(acc, _i32(0), [0])
                with T.unroll(0, q) as j:
                    T.buffer_store(acc, acc[0] + cnt[(t // _i32(q)) * _i32(TB) + (t % _i32(q)) * _i32(q) + j], [0])
                T.buffer_store(red, acc[0], [t])

            _each(th, act, partial)
            th.barrier()

            def total(tx):  # thread t < DIGITS adds its digit's partial sums
                t = tirx.Cast("int32", tx)
                with T.If(t < _i32(DIGITS)):
                    with T.Then():
                        acc = T.decl_buffer([1], "int32", scope="local" if gpu else "global")
                        T.buffer_store(acc, _i32(0), [0])
                        with T.unroll(0, q) as j:
                            T.buffer_store(acc, acc[0] + red[t * _i32(q) + j], [0])
                        T.buffer_store(
                            hist, tirx.Cast("int64", acc[0]), [tirx.Cast("int64", t) * nb + tirx.Cast("int64", bx)]
                        )
                        if gpu:  # this thread's hist entry visible to every block before it arrives
                            T.evaluate(T.call_extern("int32", "tpat_atomic_fence_all"))

            _each(th, act, total)
            th.barrier()

            def arrive(tx):
                with T.If(tirx.Cast("int32", tx) == _i32(0)):
                    with T.Then():
                        if gpu:
                            old = T.call_extern("int32", "tpat_atomic_arrive_i32", T.address_of(ctr[ps.p]))
                        else:
                            old = ctr[ps.p]
                            T.buffer_store(ctr, old + _i32(1), [ps.p])
                            old = ctr[ps.p] - _i32(1)
                        T.buffer_store(flag, old, [0])

            _each(th, act, arrive)
            th.barrier()
            # the last block to arrive scans every block's counts (block-uniform: flag is shared)
            if gpu:  # a shared value in a condition: read into a register first (TVM's sync analysis)
                th.each_thread(lambda tx: T.buffer_store(mine, flag[0], [0]))
                got = mine[0]
            else:
                got = flag[0]
            last = tirx.And(act, tirx.Cast("int64", got) == nb - _i64(1))
            _scan_phases(th, TB, last, hist, offs, m, sbufs, mode)
    return ib.get()


def _scan_bufs(tb, gpu):
    """The buffers of `_scan_phases` (declared at the kernel's start)."""
    return (
        T.decl_buffer([2, tb], "int64", scope="shared" if gpu else "global"),
        T.decl_buffer([1] if gpu else [tb], "int64", scope="local" if gpu else "global"),
    )


def _scan_phases(th, tb, act, hist, offs, m, bufs, mode):
    """The phases (barriers between them, outside `act`) of one block of tb threads that writes
    offs = the exclusive scan of hist[m] (digit-major); bufs from `_scan_bufs`."""
    gpu = mode == "gpu"
    steps = tb.bit_length() - 1
    fin = steps % 2
    tot, run = bufs
    per = (m + _i64(tb - 1)) // _i64(tb)

    def R(tx):
        return [0] if gpu else [tirx.Cast("int32", tx)]

    def local(tx):
        T.buffer_store(run, _i64(0), R(tx))
        with T.serial(_i64(0), per) as e:
            q = tirx.Cast("int64", tx) * per + e
            with T.If(q < m):
                with T.Then():
                    T.buffer_store(run, run[tuple(R(tx))] + hist[q], R(tx))
        T.buffer_store(tot, run[tuple(R(tx))], [0, tirx.Cast("int32", tx)])

    _each(th, act, local)
    th.barrier()
    block_scan(_Guarded(th, act), tot, tb, steps)

    def write(tx):
        t = tirx.Cast("int32", tx)
        T.buffer_store(run, tirx.Select(t > 0, tot[fin, tirx.max(t - 1, 0)], _i64(0)), R(tx))
        with T.serial(_i64(0), per) as e:
            q = tirx.Cast("int64", tx) * per + e
            with T.If(q < m):
                with T.Then():
                    v = hist[q]
                    T.buffer_store(offs, run[tuple(R(tx))], [q])
                    T.buffer_store(run, run[tuple(R(tx))] + v, R(tx))

    _each(th, act, write)


def _scatter_ir(ps, nb, offs, kout, iout, mode):
    gpu = mode == "gpu"
    steps = TB.bit_length() - 1
    fin = steps % 2
    with IRBuilder() as ib:
        th = Threads(mode, nb, TB)
        with th as bx:
            act = _active(ps.mm, ps.p)  # block-uniform: every phase guarded, the barriers not
            kv, at = ps.regs("uint64")
            iv, _ = ps.regs("int64")
            lc, lat = ps.counters()
            sc = "shared" if gpu else "global"
            cnt = T.decl_buffer([DIGITS * TB], "int32", scope=sc)
            ex = T.decl_buffer([DIGITS * TB], "int32", scope=sc)
            tot = T.decl_buffer([2, TB], "int64", scope=sc)
            bp = T.decl_buffer([DIGITS], "int32", scope=sc)  # digits before, in the block
            go = T.decl_buffer([DIGITS], "int64", scope=sc)  # global offset of (digit, block)
            run = T.decl_buffer([1] if gpu else [TB], "int32", scope="local" if gpu else "global")
            gl = T.decl_buffer([DIGITS] if gpu else [TB * DIGITS], "int64", scope="local" if gpu else "global")

            def R(tx):
                return [0] if gpu else [tirx.Cast("int32", tx)]

            def first(tx):
                ps.load(bx, tx, kv, iv, at)
                ps.count(bx, tx, kv, at, lc, lat, cnt)

            _each(th, act, first)
            th.barrier()

            def part(tx):  # thread t: table entries [t * DIGITS, (t + 1) * DIGITS)
                t = tirx.Cast("int32", tx)
                T.buffer_store(run, _i32(0), R(tx))
                with T.unroll(0, DIGITS) as j:
                    T.buffer_store(run, run[tuple(R(tx))] + cnt[t * _i32(DIGITS) + j], R(tx))
                T.buffer_store(tot, tirx.Cast("int64", run[tuple(R(tx))]), [0, t])

            _each(th, act, part)
            th.barrier()
            block_scan(th, tot, TB, steps)

            def rewrite(tx):  # ex = the table's exclusive scan (digit-major; a second table, so
                # no thread overwrites what another may still read)
                t = tirx.Cast("int32", tx)
                T.buffer_store(
                    run, tirx.Cast("int32", tirx.Select(t > 0, tot[fin, tirx.max(t - 1, 0)], _i64(0))), R(tx)
                )
                with T.unroll(0, DIGITS) as j:
                    T.buffer_store(ex, run[tuple(R(tx))], [t * _i32(DIGITS) + j])
                    T.buffer_store(run, run[tuple(R(tx))] + cnt[t * _i32(DIGITS) + j], R(tx))

            _each(th, act, rewrite)
            th.barrier()

            def bases(tx):
                t = tirx.Cast("int32", tx)
                with T.If(t < _i32(DIGITS)):
                    with T.Then():
                        T.buffer_store(bp, ex[t * _i32(TB)], [t])
                        T.buffer_store(go, offs[tirx.Cast("int64", t) * nb + tirx.Cast("int64", bx)], [t])

            _each(th, act, bases)
            th.barrier()

            def place(tx):
                t = tirx.Cast("int32", tx)
                # lc[digit] = where this thread's next element of that digit goes
                with T.unroll(0, DIGITS) as dg:
                    T.buffer_store(lc, tirx.Cast("int32", ex[dg * _i32(TB) + t] - bp[dg]), [lat(tx, dg)])
                base = tirx.Cast("int64", bx) * _i64(TILE) + tirx.Cast("int64", tx) * _i64(PER)
                with T.unroll(0, PER) as e:
                    with T.If(base + tirx.Cast("int64", e) < ps.n):
                        with T.Then():
                            dg = ps.digit(kv[at(tx, e)])
                            c = lat(tx, dg)
                            dst = gl[lat(tx, dg)] + tirx.Cast("int64", lc[c])
                            T.buffer_store(kout[0], kv[at(tx, e)], [kout[1] + dst])
                            T.buffer_store(iout[0], iv[at(tx, e)], [iout[1] + dst])
                            T.buffer_store(lc, lc[c] + _i32(1), [c])  # after: dst reads lc[c]

            def place_all(tx):
                with T.unroll(0, DIGITS) as dg:  # the global offsets, copied to registers first
                    T.buffer_store(gl, go[dg], [lat(tx, dg)])
                place(tx)

            _each(th, act, place_all)
    return ib.get()


def _copy_ir(dtype, n, mm, ibuf, perm, mode):
    """perm = the indices written by the last pass that ran (pass p writes buffer p % 2)."""
    last = _i64(0)
    for p in range(1, passes(dtype)):
        last = last + tirx.Cast("int64", _active(mm, p))
    with IRBuilder() as ib:
        th = Threads(mode, (n + _i64(TB - 1)) // _i64(TB), TB)
        with th as bx:

            def each(tx):
                q = tirx.Cast("int64", bx) * _i64(TB) + tirx.Cast("int64", tx)
                with T.If(q < n):
                    with T.Then():
                        T.buffer_store(perm, ibuf[(last % _i64(2)) * n + q], [q])

            th.each_thread(each)
    return ib.get()


def _pass_stmts(dtype, n, nb, m, p, xv, kb, ib_, mm, hist, offs, ctr, mode):
    """The two kernels of pass p (count + scan, scatter): pass p reads half (p + 1) % 2 of the
    ping-pong buffers (pass 0 reads X) and writes half p % 2."""
    src, dst = (p + 1) % 2, p % 2

    class _Half:
        def __init__(self, buf, half):
            self.buf, self.half = buf, half

        def __getitem__(self, q):
            return self.buf[_i64(self.half) * n + q]

    ps = _Pass(dtype, n, p, xv, _Half(kb, src), _Half(ib_, src), mm, mode)
    return [
        _hist_ir(ps, nb, hist, offs, m, ctr, mode),
        _scatter_ir(ps, nb, offs, (kb, _i64(dst) * n), (ib_, _i64(dst) * n), mode),
    ]


def argsort(bb, x, dtype, mode="gpu"):
    """Stable ascending argsort (int64) of the 1-D Relax tensor x (dtype in DTYPES)."""

    def stage(xt):
        n = _numel(list(xt.shape))
        nb = (n + _i64(TILE - 1)) // _i64(TILE)
        m = nb * _i64(DIGITS)

        def ir(ins, outs):
            perm, mm, kb, ib_, hist, offs, ctr = outs
            stmts = _minmax_ir(dtype, n, ins[0], mm, ctr, mode)
            for p in range(passes(dtype)):
                stmts += _pass_stmts(dtype, n, nb, m, p, ins[0], kb, ib_, mm, hist, offs, ctr, mode)
            stmts.append(_copy_ir(dtype, n, mm, ib_, perm, mode))
            return tirx.SeqStmt(stmts)

        return te.extern(
            [(n,), (2,), (_i64(2) * n,), (_i64(2) * n,), (m,), (m,), (passes(dtype),)],
            [xt],
            ir,
            dtype=["int64", "int64", "uint64", "int64", "int64", "int64", "int32"],
            name="tpat_radix_sort",
        )

    res = bb.emit_te(stage, x, primfunc_name_hint="tpat_radix_sort")
    return bb.emit(relax.TupleGetItem(res, 0))
