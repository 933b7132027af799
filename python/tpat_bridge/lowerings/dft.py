"""TPAT's own TVM lowerings of ONNX DFT (opset 17 and 20) and STFT (opset 17): a mixed-radix
Stockham FFT in shared memory, written with TVM's IR builder inside a `te.extern` stage.

TVM 0.27's Relax frontend has no DFT or STFT converter (`frontend_import_failed`), and TensorRT 10
rejects DFT (STFT only with a real signal and constant frame_step / window). The input is seen as
(outer, L, inner, c) around the signal axis (c = 1 real, 2 complex), the output as
(outer, K, inner, 2); STFT's frames are transforms too (transform t = (batch, frame), its signal
read from `frame * frame_step` on, times the window).

One kernel; a thread block takes G transforms of length n (G * n complex values in shared memory,
float32 for 16-bit inputs, float64 for float64):

  1. load: x (zero-padded or truncated to n = dft_length; times the window for STFT), coalesced
     (consecutive threads on consecutive addresses: along the signal when inner == 1, across the
     G transforms' columns otherwise);
  2. Stockham stages, one per factor R of n (4s first, then 2, 3, 5, 7, 11, 13; any other prime
     factor p <= MAX_DIRECT_RADIX too): with Ns the product of the earlier factors, butterfly j
     reads buf[j + r n/R], multiplies by w^r, w = exp(-+2 pi i (j mod Ns) / (Ns R)) (one sin/cos
     per butterfly, its powers by complex products), takes the length-R DFT in registers (the
     constants folded: multiplications by 0, 1, -1 vanish), and writes buf[(j / Ns) Ns R + j mod Ns
     + k Ns]. Every thread first loads all its butterflies' inputs into registers, a barrier,
     then writes in place (a second barrier): one buffer, so n * G <= SHARED_POINTS;
     a prime factor above 13 is one "direct" stage: a thread per output point sums R terms;
  3. store: bins k < K (onesided: n / 2 + 1), times 1/n for inverse, coalesced like the load.

Twiddles: the angle is 2 pi (an integer m < Ns R) / (Ns R), so it stays exact for long signals.
Lengths whose largest prime factor is above MAX_DIRECT_RADIX, or that do not fit in shared memory
(n > SHARED_POINTS: 6144 complex float32, 3072 float64), keep the direct O(n) per bin TE sum
(`_direct_te`, dlight-scheduled); their describe() says so.
dft_length and axis must be constants; inverse with onesided (not defined by ONNX Runtime) is
declined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = ("float32", "float16", "bfloat16", "float64")
SHARED_BYTES = 48 * 1024  # static shared memory of one block
MAX_DIRECT_RADIX = 128  # a larger prime factor: the direct TE sum
BUTTERFLY_RADICES = (4, 2, 3, 5, 7, 11, 13)  # in this order; other primes: a direct stage
MAX_THREADS = 1024
BLOCK_POINTS = 1024  # aim: about this many points per block when there are enough transforms
MIN_BLOCKS = 264  # 2 per SM of an H100/H200: fewer transforms per block below that


def _acc(dtype):
    return "float64" if dtype == "float64" else "float32"


def shared_points(dtype):
    return SHARED_BYTES // (2 * (8 if dtype == "float64" else 4))


def factors(n):
    out = []
    for r in BUTTERFLY_RADICES:
        while n % r == 0:
            out.append(r)
            n //= r
    p = 17
    while n > 1 and p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 2
    if n > 1:
        out.append(n)
    return out


@dataclass(frozen=True)
class DFTSelection(Selection):
    dtype: str
    axis: int  # the signal axis (normalized, never the last)
    n: int  # dft_length
    length: int  # the signal's length on `axis`
    k: int  # output bins (n, or n // 2 + 1 when onesided)
    inverse: bool
    onesided: bool
    complex: bool  # the input's last dim is 2 (else 1: real)
    x_index: int
    inner: int = 1  # product of the dims between the axis and the last (static)
    radices: tuple = ()  # the FFT's stages; () for the direct sum
    group: int = 1  # G: transforms per block
    threads: int = 0
    # STFT: transforms are (batch, frame) pairs
    stft: bool = False
    frames: int = 0
    step: int = 0
    window_index: int | None = None  # main's parameter of a runtime window
    window: tuple | None = None  # a constant window's values (a plan constant)
    wdtype: str = "float32"

    @property
    def fft(self) -> bool:
        return bool(self.radices) or self.n == 1

    def describe(self) -> str:
        kind = ("inverse " if self.inverse else "") + ("onesided " if self.onesided else "")
        op = "stft" if self.stft else "dft"
        where = f"frame_step={self.step}, frames={self.frames}" if self.stft else f"axis={self.axis}"
        if not self.fft:
            return f"{op} ({kind}{where}, n={self.n}, direct sum: O(n) per bin)"
        rad = "x".join(str(r) for r in self.radices) or "1"
        return (
            f"{op} ({kind}{where}, n={self.n}, Stockham FFT radices {rad}, {self.group} transform(s) "
            f"x {self.threads} threads per block, shared memory)"
        )


def _const_int(op, what):
    if not op.is_const:
        return None
    return op.scalar_int(what)


def _plan(dtype, n, transforms, inner):
    """(radices, G, threads) of the shared-memory FFT, or None (the direct sum)."""
    cap = shared_points(dtype)
    fs = factors(n)
    if n > cap or (fs and max(fs) > MAX_DIRECT_RADIX):
        return None
    gmax = max(1, cap // n)
    g = max(1, min(gmax, -(-BLOCK_POINTS // n)))
    if isinstance(transforms, int):
        g = min(g, max(1, transforms // MIN_BLOCKS))
    if inner > 1:  # columns: G adjacent ones per block keep the loads coalesced
        g = max(g, min(8, inner, gmax))
    pts = g * n
    threads = min(MAX_THREADS, max(32, -(-(-(-pts // 4)) // 32) * 32))
    return tuple(fs), g, threads


def select(n: NodeView) -> DFTSelection | Decline:
    ops = n.operands
    if not ops or not ops[0].is_param:
        return Decline("DFT needs a runtime input")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES or n.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    r = len(xshape)
    if r < 2 or xshape[-1] not in (1, 2):
        return Decline("input must be [..., signal, 1 or 2]")
    if n.opset(20) < 20:
        axis = int(n.attr("axis", 1))
    elif len(ops) > 2 and not ops[2].is_absent:
        axis = _const_int(ops[2], "DFT's axis")
        if axis is None:
            return Decline("axis must be a constant scalar")
    else:
        axis = -2
    if not -r <= axis < r or axis % r == r - 1:
        return Decline(f"axis {axis} of a rank-{r} input")
    axis %= r
    length = xshape[axis]
    if not isinstance(length, int) or length < 1:
        return Decline("the signal axis must be static")
    size = length
    if len(ops) > 1 and not ops[1].is_absent:
        size = _const_int(ops[1], "DFT's dft_length")
        if size is None:
            return Decline("dft_length must be a constant scalar")
    if not 1 <= size < 2**31:
        return Decline(f"dft_length {size}")
    inverse, onesided = int(n.attr("inverse", 0)), int(n.attr("onesided", 0))
    if inverse and onesided:
        return Decline("inverse with onesided")
    k = size // 2 + 1 if onesided else size
    mid = xshape[axis + 1 : -1]
    inner = 1
    plan = None
    if all(isinstance(d, int) for d in mid):
        inner = int(math.prod(mid))
        lead = xshape[:axis]
        transforms = int(math.prod(lead)) * inner if all(isinstance(d, int) for d in lead) else None
        if inner < 2**31:
            plan = _plan(dtype, size, transforms, inner)
    radices, g, threads = plan if plan else ((), 1, 0)
    return DFTSelection(
        dtype=dtype,
        axis=axis,
        n=size,
        length=length,
        k=k,
        inverse=bool(inverse),
        onesided=bool(onesided),
        complex=xshape[-1] == 2,
        x_index=ops[0].index,
        inner=inner,
        radices=radices if plan else (),
        group=g,
        threads=threads,
    )


def select_stft(n: NodeView) -> DFTSelection | Decline:
    """STFT(signal [batch, L, 1|2], frame_step, window?, frame_length?) -> [batch, frames, K, 2]."""
    ops = n.operands
    if not ops or not ops[0].is_param:
        return Decline("STFT needs a runtime signal")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES or n.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    if len(xshape) != 3 or xshape[-1] not in (1, 2):
        return Decline("signal must be [batch, length, 1 or 2]")
    length = xshape[1]
    if not isinstance(length, int) or length < 1:
        return Decline("the signal length must be static")
    if len(ops) < 2 or not ops[1].is_const:
        return Decline("frame_step must be a constant scalar")
    step = ops[1].scalar_int("STFT's frame_step")
    if not 1 <= step < 2**31:
        return Decline(f"frame_step {step}")
    win = ops[2] if len(ops) > 2 and not ops[2].is_absent else None
    flen = None
    if len(ops) > 3 and not ops[3].is_absent:
        flen = _const_int(ops[3], "STFT's frame_length")
        if flen is None:
            return Decline("frame_length must be a constant scalar")
    wlen = None
    if win is not None:
        if len(win.shape) != 1 or not isinstance(win.shape[0], int):
            return Decline("window must be 1-D with a static length")
        wlen = win.shape[0]
        if win.dtype != dtype:
            return Decline(f"window dtype {win.dtype}")
    if flen is None:
        flen = wlen
    if flen is None:
        return Decline("neither window nor frame_length gives the frame length")
    if wlen is not None and wlen != flen:
        return Decline(f"window length {wlen} != frame_length {flen}")
    if not 1 <= flen <= length:
        return Decline(f"frame_length {flen} for a signal of {length}")
    onesided = int(n.attr("onesided", 1))
    if onesided and xshape[-1] == 2:
        return Decline("onesided with a complex signal")
    frames = 1 + (length - flen) // step
    k = flen // 2 + 1 if onesided else flen
    batch = xshape[0]
    transforms = batch * frames if isinstance(batch, int) else None
    plan = _plan(dtype, flen, transforms, 1)
    if plan is None:
        return Decline(f"frame_length {flen} (a prime factor above {MAX_DIRECT_RADIX} or over shared memory)")
    radices, g, threads = plan
    wvals = None
    if win is not None and win.is_const:
        wv = np.asarray(win.value, np.float64).reshape(-1)
        if not np.all(np.isfinite(wv)):
            return Decline("window has non-finite values")
        wvals = tuple(float(v) for v in wv)
    return DFTSelection(
        dtype=dtype,
        axis=1,
        n=flen,
        length=length,
        k=k,
        inverse=False,
        onesided=bool(onesided),
        complex=xshape[-1] == 2,
        x_index=ops[0].index,
        inner=1,
        radices=radices,
        group=g,
        threads=threads,
        stft=True,
        frames=frames,
        step=step,
        window_index=win.index if win is not None and win.is_param else None,
        window=wvals,
        wdtype=dtype,
    )


# ---------------------------------------------------------------- the direct sum (fallback)


def _direct_te(x, det):
    axis, n, dtype = det.axis, det.n, det.dtype
    acc = _acc(dtype)
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    red = te.reduce_axis((0, min(n, det.length)), name="j")
    sign = 1.0 if det.inverse else -1.0
    shape = list(x.shape[:-1]) + [2]
    shape[axis] = det.k

    def ld(*i):
        v = x(*i)
        return v if dtype == acc else tirx.Cast(acc, v)

    def acc_(*i):
        k, c = i[axis], i[-1]
        xi = list(i[:-1])
        xi[axis] = red
        re = ld(*xi, 0)
        im = ld(*xi, 1) if det.complex else fa(0.0)
        kj = (tirx.Cast("int64", k) * tirx.Cast("int64", red)) % tirx.const(n, "int64")
        ang = tirx.Cast(acc, kj) * fa(2.0 * math.pi / n)
        cs, sn = tirx.cos(ang), tirx.sin(ang) * fa(sign)
        val = tirx.Select(c == 0, re * cs - im * sn, re * sn + im * cs)
        return te.sum(val, axis=red)

    s = te.compute(shape, acc_, name="tpat_dft_sum")
    scale = 1.0 / n if det.inverse else 1.0

    def out(*i):
        v = s(*i) * fa(scale) if scale != 1.0 else s(*i)
        return v if dtype == acc else tirx.Cast(dtype, v)

    return te.compute(shape, out, name="tpat_dft")


# ---------------------------------------------------------------- the FFT kernel


def _cmul(a, b):
    return (a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0])


def _scaled_sum(terms, acc):
    """sum of c * v over (c, v) with Python float constants c: 0 dropped, +-1 without a multiply."""
    out = None
    for c, v in terms:
        if abs(c) < 1e-15:
            continue
        if c == 1.0:
            t, neg = v, False
        elif c == -1.0:
            t, neg = v, True
        else:
            t, neg = tirx.const(c, acc) * v, False
        if out is None:
            out = -t if neg else t
        else:
            out = out - t if neg else out + t
    return out if out is not None else tirx.const(0.0, acc)


def _dft_consts(R, sign):
    """(cos, sin) of sign * 2 pi r k / R, exact where they are 0 or +-1."""
    tab = {}
    for m in range(R):
        if (4 * m) % R == 0:  # a multiple of a quarter turn
            quarter = (4 * m // R) % 4
            c, s = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][quarter]
        else:
            a = 2.0 * math.pi * m / R
            c, s = math.cos(a), math.sin(a)
        tab[m] = (c, sign * s)
    return tab


def _fft_ir(det, outer, x, win, out, mode):
    N, G, TB, K = det.n, det.group, det.threads, det.k
    dtype, acc = det.dtype, _acc(det.dtype)
    c_in = 2 if det.complex else 1
    L, inner = det.length, det.inner
    sign = 1.0 if det.inverse else -1.0
    gpu = mode == "gpu"
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    cast = lambda v, dt=dtype: v if dt == acc else tirx.Cast(acc, v)  # noqa: E731
    pts = G * N
    if det.stft:
        total = outer * i64(det.frames)
        xlen = outer * i64(L * c_in)
    else:
        total = outer * i64(inner)
        xlen = outer * i64(L * inner * c_in)
    olen = total * i64(K * 2)
    nblocks = (total + i64(G - 1)) // i64(G)
    # registers per thread: the largest stage's values
    per_bf = {R: -(-(pts // R) // TB) for R in set(det.radices)}
    regs = max([per_bf[R] * R for R in per_bf] + [1])
    regs = max(regs, -(-pts // TB))
    with IRBuilder() as ib:
        th = Threads(mode, tirx.Cast("int32", nblocks) if gpu else nblocks, TB)
        with th as bx:
            xf = T.decl_buffer([xlen], dtype, data=x.data)
            of = T.decl_buffer([olen], dtype, data=out.data)
            wf = T.decl_buffer([N], det.wdtype, data=win.data) if win is not None else None
            scope = "shared" if gpu else "global"
            bre = T.decl_buffer([pts], acc, scope=scope)
            bim = T.decl_buffer([pts], acc, scope=scope)
            rshape = [regs] if gpu else [TB, regs]
            rre = T.decl_buffer(rshape, acc, scope="local" if gpu else "global")
            rim = T.decl_buffer(rshape, acc, scope="local" if gpu else "global")
            b64 = tirx.Cast("int64", bx)

            def R_(tx, i):
                return [i] if gpu else [tirx.Cast("int32", tx), i]

            def gi(e, count):
                """(transform within the block g, index within it) of block-local element e."""
                if det.stft or inner == 1:
                    return e // i32(count), e % i32(count)
                return e % i32(G), e // i32(G)

            def load(tx):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, -(-pts // TB)) as p:
                    e = p * i32(TB) + t32
                    with T.If(e < i32(pts)):
                        with T.Then():
                            g, i = gi(e, N)
                            t = b64 * i64(G) + tirx.Cast("int64", g)
                            ok = tirx.all(t < total, i < i32(min(L, N)))
                            if det.stft:
                                o, f = t // i64(det.frames), t % i64(det.frames)
                                addr = (o * i64(L) + f * i64(det.step) + tirx.Cast("int64", i)) * i64(c_in)
                            else:
                                o, q = t // i64(inner), t % i64(inner)
                                addr = ((o * i64(L) + tirx.Cast("int64", i)) * i64(inner) + q) * i64(c_in)
                            addr = tirx.Select(ok, addr, i64(0))
                            re = cast(xf[addr])
                            im = cast(xf[addr + i64(1)]) if det.complex else fa(0.0)
                            if win is not None:  # STFT's window (a runtime input or a plan constant)
                                wv = cast(wf[tirx.min(i, i32(N - 1))], det.wdtype)
                                re, im = re * wv, (im * wv if det.complex else im)
                            T.buffer_store(bre, tirx.Select(ok, re, fa(0.0)), [g * i32(N) + i])
                            T.buffer_store(bim, tirx.Select(ok, im, fa(0.0)), [g * i32(N) + i])

            th.each_thread(load)
            th.barrier()
            Ns = 1
            for R in det.radices:
                nbf = pts // R  # butterflies of the block in this stage
                span = N // R
                per = per_bf[R]

                def gather(tx, R=R, nbf=nbf, span=span, per=per):
                    t32 = tirx.Cast("int32", tx)
                    with T.unroll(0, per) as p:
                        b = p * i32(TB) + t32
                        with T.If(b < i32(nbf)):
                            with T.Then():
                                g, j = b // i32(span), b % i32(span)
                                base = g * i32(N) + j
                                for r in range(R):
                                    T.buffer_store(rre, bre[base + i32(r * span)], R_(tx, p * i32(R) + i32(r)))
                                    T.buffer_store(rim, bim[base + i32(r * span)], R_(tx, p * i32(R) + i32(r)))

                if R in BUTTERFLY_RADICES:

                    def butterfly(tx, R=R, nbf=nbf, span=span, per=per, Ns=Ns):
                        t32 = tirx.Cast("int32", tx)
                        consts = _dft_consts(R, sign)
                        with T.unroll(0, per) as p:
                            b = p * i32(TB) + t32
                            with T.If(b < i32(nbf)):
                                with T.Then():
                                    g, j = b // i32(span), b % i32(span)
                                    s = j % i32(Ns) if Ns > 1 else i32(0)
                                    ix = lambda r: R_(tx, p * i32(R) + i32(r))  # noqa: E731
                                    vals = [(rre[tuple(ix(0))], rim[tuple(ix(0))])]
                                    if Ns > 1:
                                        ang = tirx.Cast(acc, s) * fa(sign * 2.0 * math.pi / (Ns * R))
                                        w1 = (tirx.cos(ang), tirx.sin(ang))
                                        # w^r by products, kept in a small local array
                                        tw = T.decl_buffer([2 * R], acc, scope="local" if gpu else "global")
                                        T.buffer_store(tw, w1[0], [2])
                                        T.buffer_store(tw, w1[1], [3])
                                        for r in range(2, R):
                                            nw = _cmul((tw[2 * r - 2], tw[2 * r - 1]), (tw[2], tw[3]))
                                            T.buffer_store(tw, nw[0], [2 * r])
                                            T.buffer_store(tw, nw[1], [2 * r + 1])
                                        for r in range(1, R):
                                            v = _cmul((rre[tuple(ix(r))], rim[tuple(ix(r))]), (tw[2 * r], tw[2 * r + 1]))
                                            T.buffer_store(tw, v[0], [0])  # slot 0 is free: re first
                                            T.buffer_store(rim, v[1], ix(r))
                                            T.buffer_store(rre, tw[0], ix(r))
                                    vals = [(rre[tuple(ix(r))], rim[tuple(ix(r))]) for r in range(R)]
                                    dst = g * i32(N) + (j // i32(Ns)) * i32(Ns * R) + s
                                    for kk in range(R):
                                        cs = [consts[(r * kk) % R] for r in range(R)]
                                        yre = _scaled_sum(
                                            [(cs[r][0], vals[r][0]) for r in range(R)]
                                            + [(-cs[r][1], vals[r][1]) for r in range(R)],
                                            acc,
                                        )
                                        yim = _scaled_sum(
                                            [(cs[r][1], vals[r][0]) for r in range(R)]
                                            + [(cs[r][0], vals[r][1]) for r in range(R)],
                                            acc,
                                        )
                                        T.buffer_store(bre, yre, [dst + i32(kk * Ns)])
                                        T.buffer_store(bim, yim, [dst + i32(kk * Ns)])

                    th.each_thread(gather)
                    th.barrier()
                    th.each_thread(butterfly)
                    th.barrier()
                else:  # a large prime factor: a thread per output point sums R terms

                    per_pt = -(-pts // TB)

                    def direct(tx, R=R, span=span, per_pt=per_pt, Ns=Ns):
                        t32 = tirx.Cast("int32", tx)
                        with T.unroll(0, per_pt) as p:
                            e = p * i32(TB) + t32
                            with T.If(e < i32(pts)):
                                with T.Then():
                                    g, m = e // i32(N), e % i32(N)
                                    a, rest = m // i32(Ns * R), m % i32(Ns * R)
                                    kk, s = rest // i32(Ns), rest % i32(Ns)
                                    src = g * i32(N) + a * i32(Ns) + s
                                    ph = s + kk * i32(Ns)  # angle of term r: r * ph / (Ns R)
                                    are = T.decl_buffer([1], acc, scope="local" if gpu else "global")
                                    aim = T.decl_buffer([1], acc, scope="local" if gpu else "global")
                                    T.buffer_store(are, fa(0.0), [0])
                                    T.buffer_store(aim, fa(0.0), [0])
                                    with T.serial(0, R) as r:
                                        mm = (r * ph) % i32(Ns * R)
                                        ang = tirx.Cast(acc, mm) * fa(sign * 2.0 * math.pi / (Ns * R))
                                        v = (bre[src + r * i32(span)], bim[src + r * i32(span)])
                                        y = _cmul(v, (tirx.cos(ang), tirx.sin(ang)))
                                        T.buffer_store(are, are[0] + y[0], [0])
                                        T.buffer_store(aim, aim[0] + y[1], [0])
                                    T.buffer_store(rre, are[0], R_(tx, p))
                                    T.buffer_store(rim, aim[0], R_(tx, p))

                    def put(tx, per_pt=per_pt):
                        t32 = tirx.Cast("int32", tx)
                        with T.unroll(0, per_pt) as p:
                            e = p * i32(TB) + t32
                            with T.If(e < i32(pts)):
                                with T.Then():
                                    T.buffer_store(bre, rre[tuple(R_(tx, p))], [e])
                                    T.buffer_store(bim, rim[tuple(R_(tx, p))], [e])

                    th.each_thread(direct)
                    th.barrier()
                    th.each_thread(put)
                    th.barrier()
                Ns *= R
            scale = 1.0 / N if det.inverse else 1.0
            kpts = G * K

            def store(tx):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, -(-kpts // TB)) as p:
                    e = p * i32(TB) + t32
                    g, k = gi(e, K)
                    t = b64 * i64(G) + tirx.Cast("int64", g)
                    with T.If(tirx.all(e < i32(kpts), t < total)):
                        with T.Then():
                            if det.stft:
                                addr = (t * i64(K) + tirx.Cast("int64", k)) * i64(2)
                            else:
                                o, q = t // i64(inner), t % i64(inner)
                                addr = ((o * i64(K) + tirx.Cast("int64", k)) * i64(inner) + q) * i64(2)
                            src = g * i32(N) + k
                            for part, buf in ((0, bre), (1, bim)):
                                v = buf[src] * fa(scale) if scale != 1.0 else buf[src]
                                T.buffer_store(of, v if acc == dtype else tirx.Cast(dtype, v), [addr + i64(part)])

            th.each_thread(store)
    return ib.get()


def _fft_stage(det, mode):
    def stage(xt, wt=None):
        if det.stft:
            outer = xt.shape[0]
            oshape = [outer, det.frames, det.k, 2]
        else:
            outer = tirx.const(1, "int64")
            for d in xt.shape[: det.axis]:
                outer = outer * d
            oshape = list(xt.shape[:-1]) + [2]
            oshape[det.axis] = det.k
        ins = [xt] + ([wt] if wt is not None else [])
        return te.extern(
            [oshape],
            ins,
            lambda i, o: _fft_ir(det, tirx.Cast("int64", outer), i[0], i[1] if len(i) > 1 else None, o[0], mode),
            dtype=det.dtype,
            name="tpat_dft",
        )

    return stage


def emit(bb, params, det, mode="gpu"):
    name = "tpat_stft" if det.stft else "tpat_dft"
    x = params[det.x_index]
    if not det.fft:
        return bb.emit_te(lambda t: _direct_te(t, det), x, primfunc_name_hint=name)
    if det.stft and (det.window_index is not None or det.window is not None):
        if det.window_index is not None:
            w = params[det.window_index]
        else:
            from tvm import relax

            w = relax.const(np.asarray(det.window, dtype=det.wdtype), det.wdtype)
        return bb.emit_te(_fft_stage(det, mode), x, w, primfunc_name_hint=name)
    return bb.emit_te(_fft_stage(det, mode), x, primfunc_name_hint=name)


class DFTLowering(Lowering):
    name = "dft"
    ops = ("DFT",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


class STFTLowering(Lowering):
    name = "stft"
    ops = ("STFT",)

    def select(self, node):
        return select_stft(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


DFT = DFTLowering()
STFT = STFTLowering()
