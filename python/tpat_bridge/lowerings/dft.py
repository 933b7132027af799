"""TPAT's own TVM lowerings of ONNX DFT (opset 17 and 20) and STFT (opset 17): FFTs written with
TVM's IR builder inside one `te.extern` stage (TVM generates the CUDA; `mode="cpu"` builds the same
kernels with serial loops for LLVM).

TVM 0.27's Relax frontend has no DFT or STFT converter (`frontend_import_failed`); TensorRT 10
rejects both, TensorRT 11 / RTX take STFT only with a real float32 signal and constant frame_step
and window. The input is seen as (outer, L, inner, c) around the signal axis (c = 1 real, 2
complex), the output as (outer, K, inner, 2). STFT's (batch, frame) pairs are the transforms, each
read from frame * frame_step on, times the window.

The building block (`_pass_ir`) is one kernel whose thread block takes G transforms of length N in
shared memory (float32 for 16-bit inputs, float64 for float64):
  1. load, coalesced (along the signal when inner == 1, across G adjacent columns otherwise),
     zero-padded / truncated to n = dft_length;
  2. mixed-radix Stockham stages, one per factor R of N (4s first, then 2, 3, 5, 7, 11, 13; other
     primes up to MAX_DIRECT_RADIX as a stage where a thread per point sums R terms): with Ns the
     product of the earlier factors, butterfly j reads buf[j + r N/R], multiplies by w^r,
     w = exp(-+2 pi i (j mod Ns) / (Ns R)) (one sin/cos, its powers by complex products), takes
     the length-R DFT in registers (constant coefficients, 0 and +-1 folded) and writes
     buf[(j / Ns) Ns R + j mod Ns + k Ns]. Each thread loads its butterflies' inputs into
     registers, a barrier, then writes in place: one buffer, G N <= 6144 (float64: 3072);
  3. store of the bins k < K (onesided: n / 2 + 1), times 1/n for inverse.
The (r)fourstep / bluestein kernels use the interleaved layout (`_Pass.ilv`): point i of transform g
at i S + g, a warp's threads on consecutive g, free of bank conflicts; the others keep g N + i.
Twiddle angles come from exact integers m / q and are taken in (-pi, pi], where CUDA's
__sinf/__cosf (emitted for float32 on the GPU) are accurate to 2^-21.

Strategies (`_plan`, recorded in describe()):
  fft        n fits shared memory and has no prime factor above MAX_DIRECT_RADIX: one kernel;
  fourstep   a longer such n = n1 n2 (both <= 768 where possible): (A) per column an n1-point FFT, times exp(-+2 pi i n2 k1 / n),
             into a workspace; (B) per row an n2-point FFT, bin k1 + n1 k2: two kernels;
  rfft1      (DFT) a real float32/16-bit input, inner == 1, 6144 < n/2 <= 8192 (dft_long): one kernel,
             2 blocks per transform when n/2 is even (bins by parity after a first radix-2 step by
             decimation in frequency; else one block in dynamic shared memory), _rfft1_ir;
  rfourstep  a real input of even length over shared memory: the n/2-point complex four-step FFT of
             z_j = x_2j + i x_2j+1 (_rfourstep), the even/odd split in pass B's store;
  bluestein  otherwise (a large prime factor): X_k = w_k sum_j (x_j w_j) conj(w_{k-j}),
             w_j = exp(-+pi i j^2 / n), as an m-point cyclic convolution (m = _bluestein_size:
             the smallest 2^a 3^b 5^c >= 2n - 1 or a power of two at most 1/8 longer; the FFT of
             the chirp is a plan constant computed in float64): one kernel when m fits shared
             memory (FFT, product in the inverse FFT's first gather, inverse FFT), else four (two
             four-step FFTs through two workspaces);
  direct     only for a symbolic dim between the axis and the last one, n <= MAX_DIRECT_LENGTH:
             the definition as a dlight-scheduled TE sum, O(n) per bin.
dft_length and axis must be constants. Inverse with onesided is the IRFFT of ONNX 1.21's DFT text
(onnx/onnx#7574; torch.onnx's export of torch.fft.irfft): a one-sided complex spectrum in, the real
signal of length dft_length (default 2 (L - 1)) out, last dim 1. It loads the Hermitian extension
(bin i < n/2 + 1: X_i, else conj(X_{n-i}); bins past the input's L are 0, as numpy.fft.irfft
pads/crops to n/2 + 1) into the same complex inverse FFT and stores its real part: the imaginary
parts of X_0 and X_{n/2} drop out, as in numpy. ONNX 1.20's shape inference and ONNX Runtime 1.24
reject that node; planning types it (planning/shapes.py) and its reference data are numpy's irfft.
"""

from __future__ import annotations

import math
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass

import numpy as np
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = ("float32", "float16", "bfloat16", "float64")
SHARED_BYTES = 48 * 1024  # static shared memory of one block
MAX_DIRECT_RADIX = 31  # a larger prime factor: Bluestein
BUTTERFLY_RADICES = (4, 2, 3, 5, 7, 11, 13)  # in this order; other primes: a direct stage
MAX_THREADS = 1024
MAX_DIRECT_LENGTH = 4096  # the O(n) per bin sum (symbolic dims between axis and last) up to this n
BLOCK_POINTS = 1024  # aim: about this many points per block when there are enough transforms
MIN_BLOCKS = 264  # 2 per SM of an H100/H200: fewer transforms per block below that
# rfft1: a real input whose half-length FFT is over static shared memory but at most this long
# runs as one block per transform in dynamic shared memory (sm_80+: 99 KB or more per block)
RFFT1_MAX_POINTS = 8192
RFFT1_MAX_BYTES = 96 * 1024  # the padded layout of the largest stage included
# stages of up to this radix in registers, 9 too (dft_long on the H200: 8x8x8x8 with 512 threads
# 11.2 us, 16x16x16 with 256 threads 11.7 us: reports/gpu-2026-11-29/dft5-2-README.md)
RFFT1_MAX_RADIX = 8
RFFT1_SPLIT = 2  # blocks per transform where the half-length M is even (bins split by parity)


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
    n: int  # dft_length (STFT: frame_length)
    length: int  # the signal's length on `axis`
    k: int  # output bins (n, or n // 2 + 1 when onesided; irfft: n real points)
    inverse: bool
    onesided: bool
    complex: bool  # the input's last dim is 2 (else 1: real)
    x_index: int
    inner: int = 1  # product of the dims between the axis and the last (static)
    kind: str = "direct"  # fft | rfft | rfft1 | fourstep | rfourstep | bluestein | bluestein4 | direct
    m: int = 0  # the FFT's length: n, or Bluestein's convolution length
    n1: int = 0  # four-step split m = n1 * n2
    n2: int = 0
    group: int = 1  # G: transforms per block (single-kernel kinds)
    threads: int = 0
    # STFT: transforms are (batch, frame) pairs
    stft: bool = False
    frames: int = 0
    step: int = 0
    window_index: int | None = None  # main's parameter of a runtime window
    window: tuple | None = None  # a constant window's values (a plan constant)
    wdtype: str = "float32"

    @property
    def workspaces(self) -> int:
        return {"fourstep": 1, "rfourstep": 1, "bluestein4": 2}.get(self.kind, 0)

    @property
    def irfft(self) -> bool:
        """Inverse and onesided: one-sided complex spectrum in, n real points out (last dim 1)."""
        return self.inverse and self.onesided and not self.stft

    def describe(self) -> str:
        flags = (
            "irfft " if self.irfft else ("inverse " if self.inverse else "") + ("onesided " if self.onesided else "")
        )
        op = "stft" if self.stft else "dft"
        where = f"frame_step={self.step}, frames={self.frames}" if self.stft else f"axis={self.axis}"
        head = f"{op} ({flags}{where}, n={self.n}, "
        rad = lambda v: "x".join(str(r) for r in factors(v)) or "1"  # noqa: E731
        rad1 = lambda v: "x".join(str(r) for r in _rfft1_radices(v))  # noqa: E731
        if self.kind == "rfft":
            how = (
                f"real input as a {self.m}-point complex FFT (radices {rad(self.m)}), {self.group} transform(s) x "
                f"{self.threads} threads per block"
            )
        elif self.kind == "fft":
            how = f"Stockham FFT radices {rad(self.n)}, {self.group} transform(s) x {self.threads} threads per block"
        elif self.kind == "fourstep":
            how = f"four-step FFT {self.n1} x {self.n2} (radices {rad(self.n1)} | {rad(self.n2)}), 2 kernels"
        elif self.kind == "rfft1":
            sp = _rfft1_split(self.m)
            per = (
                f"{sp} blocks per transform (bins by parity: {self.m // sp} points each, radices "
                if sp > 1
                else "one block per transform (radices "
            )
            how = (
                f"real input as a {self.m}-point complex FFT in {per}{rad1(self.m // sp)}), {self.threads} threads, "
                f"{'dynamic ' if _rfft1_dynamic(self.m) else ''}shared memory, 1 kernel"
            )
        elif self.kind == "rfourstep":
            how = (
                f"real input as a {self.m}-point complex four-step FFT {self.n1} x {self.n2} (radices "
                f"{rad(self.n1)} | {rad(self.n2)}), rows k1 and n1 - k1 in one block, 2 kernels"
            )
        elif self.kind == "bluestein":
            how = f"Bluestein, {self.m}-point FFTs (radices {rad(self.m)}) in one kernel"
        elif self.kind == "bluestein4":
            how = f"Bluestein, {self.m}-point four-step FFTs {self.n1} x {self.n2}, 4 kernels"
        else:
            how = "direct sum: O(n) per bin"
        return head + how + ")"


def _const_int(op, what):
    if not op.is_const:
        return None
    return op.scalar_int(what)


def _smooth(n):
    fs = factors(n)
    return not fs or max(fs) <= MAX_DIRECT_RADIX


def _split(m, cap):
    """(n1, n2) with n1 * n2 = m, both smooth and fitting shared memory. Preferred: both at most
    cap / 8, so that each pass's block takes at least 8 adjacent columns (pass A) or rows (pass B)
    and its scattered global accesses come in runs of 8 complex values; else n2 the largest <= 4096."""
    for lim in (cap // 8, min(cap, 4096)):
        for n2 in range(min(lim, m), 1, -1):
            if m % n2 == 0 and m // n2 <= (lim if lim == cap // 8 else cap) and _smooth(n2) and _smooth(m // n2):
                return m // n2, n2
    return None


def _good_size(k):
    """The smallest 2^a 3^b 5^c >= k."""
    best, p2 = None, 1
    while p2 < 2 * k:
        p3 = p2
        while p3 < 2 * k:
            p5 = p3
            while p5 < k:
                p5 *= 5
            best = p5 if best is None else min(best, p5)
            p3 *= 3
        p2 *= 2
    return best


def _bluestein_size(n):
    """Bluestein's convolution length: the smallest power of two >= 2n - 1 when it is at most 1/8
    above the smallest 2^a 3^b 5^c (1009: 2048 = 4^5 x 2, one radix-4 butterfly per thread and
    stage, rather than 2025 = 3^4 x 5^2), else that 2^a 3^b 5^c."""
    good, pow2 = _good_size(2 * n - 1), 1 << (2 * n - 2).bit_length()
    return pow2 if pow2 * 8 <= good * 9 else good


def _ilv_cap(cap):
    """The longest transform whose interleaved layout (a pad word per 32) fits `cap` points."""
    return cap * 32 // 33


def _plan(dtype, n, transforms, inner, real=False, rfft1=False):
    """The strategy's fields (kind, m, n1, n2, group, threads), or None (no plan). rfft1: the
    one-block real FFT in dynamic shared memory may be chosen (DFT, not STFT)."""
    cap = shared_points(dtype)
    mg = min(8, inner) if inner > 1 else 1  # columns: G adjacent ones per block keep loads coalesced
    if real and n % 2 == 0 and n >= 4 and n // 2 <= cap and _smooth(n // 2):
        g, tb = _pass_shape(n // 2, cap, transforms, mg)
        return dict(kind="rfft", m=n // 2, group=g, threads=tb)
    if n <= cap and _smooth(n):
        g, tb = _pass_shape(n, cap, transforms, mg)
        return dict(kind="fft", m=n, group=g, threads=tb)
    if rfft1 and real and n % 2 == 0 and inner == 1 and dtype != "float64" and _rfft1_fits(n // 2):
        return dict(kind="rfft1", m=n // 2, threads=_rfft1_threads(n // 2 // _rfft1_split(n // 2)))
    if real and n % 2 == 0 and _smooth(n // 2):
        sp = _rsplit(n // 2, cap)
        if sp:
            return dict(kind="rfourstep", m=n // 2, n1=sp[0], n2=sp[1])
    if _smooth(n):
        sp = _split(n, _ilv_cap(cap))
        if sp:
            return dict(kind="fourstep", m=n, n1=sp[0], n2=sp[1])
    m = _bluestein_size(n)
    if _ilv_size(m, 1) <= cap:
        g, tb = _pass_shape(m, cap, transforms, mg, ilv=True)
        return dict(kind="bluestein", m=m, group=g, threads=tb)
    sp = _split(m, _ilv_cap(cap))
    if sp and m < 2**30:
        return dict(kind="bluestein4", m=m, n1=sp[0], n2=sp[1])
    return None


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
    if not isinstance(length, int) or not 1 <= length < 2**31:
        return Decline("the signal axis must be static (and below 2^31)")
    inverse, onesided = int(n.attr("inverse", 0)), int(n.attr("onesided", 0))
    irfft = bool(inverse and onesided)
    if irfft and xshape[-1] != 2:
        return Decline("inverse with onesided (irfft) needs a complex input")
    size = 2 * (length - 1) if irfft else length  # ONNX 1.21: irfft's default length
    if len(ops) > 1 and not ops[1].is_absent:
        size = _const_int(ops[1], "DFT's dft_length")
        if size is None:
            return Decline("dft_length must be a constant scalar")
    if not 1 <= size < 2**31:
        return Decline(f"dft_length {size}")
    if irfft and n.outputs[0].get("shape") and n.outputs[0]["shape"][-1] not in (1, None):
        return Decline("irfft's output must end in 1 (a real signal)")
    k = size if irfft else size // 2 + 1 if onesided else size
    mid = xshape[axis + 1 : -1]
    inner = 1
    plan = None
    if all(isinstance(d, int) for d in mid):
        inner = math.prod(mid)
        if not 1 <= inner < 2**31:
            return Decline(f"{inner} transforms per index before the axis")
        lead = xshape[:axis]
        transforms = math.prod(lead) * inner if all(isinstance(d, int) for d in lead) else None
        plan = _plan(dtype, size, transforms, inner, real=xshape[-1] == 1, rfft1=True)
        if plan is None:
            return Decline(
                f"dft_length {size}: longer than the four-step FFT's {_ilv_cap(shared_points(dtype)) * 4096} points"
            )
    elif irfft:
        return Decline("irfft with a symbolic dim between the axis and the last one")
    elif size > MAX_DIRECT_LENGTH:
        return Decline(f"a symbolic dim between the axis and the last one, and n = {size} > {MAX_DIRECT_LENGTH}")
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
        **(plan or {}),
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
    if not isinstance(length, int) or not 1 <= length < 2**31:
        return Decline("the signal length must be static (and below 2^31)")
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
    plan = _plan(dtype, flen, transforms, 1, real=xshape[-1] == 1)
    if plan is None:
        return Decline(f"frame_length {flen}: too long for the FFT kernels")
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
        **plan,
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


def _real_split(a, b, k, n, sign, acc, mode):
    """A real signal's bins from its half-length complex FFT Z (z_j = x_2j + i x_2j+1): with
    a = Z_k and b = Z_(M-k), (E_k, w^k O_k), E_k = (Z_k + conj Z_M-k) / 2, O_k = (Z_k - conj
    Z_M-k) / 2i, w = exp(sign 2 pi i / n); X_k = E_k + w^k O_k, X_k+M = E_k - w^k O_k."""
    half = tirx.const(0.5, acc)
    e = ((a[0] + b[0]) * half, (a[1] - b[1]) * half)
    o = ((a[1] + b[1]) * half, (b[0] - a[0]) * half)
    return e, _cmul(o, _turn(k, n, sign, acc, mode))


def _scaled_sum(terms, acc):
    """sum of c * v over (c, v) with Python float constants c: 0 dropped, +-1 without a multiply."""
    out = None
    for c, v in terms:
        if abs(c) < 1e-15:
            continue
        if c in (1.0, -1.0):
            t, neg = v, c < 0
        else:
            t, neg = tirx.const(c, acc) * v, False
        if out is None:
            out = tirx.const(0.0, acc) - t if neg else t
        else:
            out = out - t if neg else out + t
    return out if out is not None else tirx.const(0.0, acc)


def _dft_consts(R, sign):
    """m -> (cos, sin) of sign * 2 pi m / R, exact where they are 0 or +-1."""
    tab = {}
    for m in range(R):
        if (4 * m) % R == 0:  # a multiple of a quarter turn
            c, s = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][(4 * m // R) % 4]
        else:
            a = 2.0 * math.pi * m / R
            c, s = math.cos(a), math.sin(a)
        tab[m] = (c, sign * s)
    return tab


def _turn(m, q, sign, acc, mode):
    """(cos, sin) of sign * 2 pi m / q for an integer expression 0 <= m < q (q a Python int), the
    angle taken in (-pi, pi]. On the GPU in float32 CUDA's __cosf/__sinf (one MUFU instruction
    each, absolute error 2^-21.41 there; the plugin is built without --use_fast_math, so cosf/sinf
    would be the accurate versions with their range reduction and slow path); float64 and the CPU
    twin keep cos/sin."""
    dt = str(m.ty)
    mm = tirx.Select(m * tirx.const(2, dt) > tirx.const(q, dt), m - tirx.const(q, dt), m)
    ang = tirx.Cast(acc, mm) * tirx.const(sign * 2.0 * math.pi / q, acc)
    if mode == "gpu" and acc == "float32":
        return tirx.call_pure_extern(acc, "__cosf", ang), tirx.call_pure_extern(acc, "__sinf", ang)
    return tirx.cos(ang), tirx.sin(ang)


@dataclass
class _Pass:
    """One kernel: blocks of `threads` threads, each `group` transforms of length n in shared memory.
    load(u, i) -> (re, im, ok): point i (int32) of transform u (int64); steps: ("fft", sign) or
    ("mul", fn(i, re, im) -> (re, im)); store(u, k, re, im): the stores of bin k < kout.
    load_gmajor / store_gmajor: element order of the global accesses (True: a transform's points
    adjacent; False: the group's transforms adjacent, for column accesses)."""

    n: int
    group: int
    threads: int
    total: object
    load: object
    store: object
    kout: int
    steps: list
    load_gmajor: bool = True
    store_gmajor: bool = True
    declare: object = None  # declares the flat buffer views inside the kernel
    raw_store: object = False  # True: store(u, k, get), get(idx) -> (re, im) of any point of the
    # transform; "slots": store(u, k, get, g), get(g', idx) of any transform g' of the block
    ilv: bool = False  # interleaved shared layout: point i of transform g at i * S + g (see _ilv_stride)


def _ilv_stride(G):
    """The row stride S of the interleaved layout (point i of transform g at i S + g): G when G is a
    multiple of 32 or odd, else G + 1 (odd: a warp reading one transform's consecutive points hits
    32 different banks). A warp's threads take consecutive g first: rows of one point, no conflict.
    G = 1: point i at i + i / 32 (a pad word per 32: a stage's stride-R writes hit distinct banks)."""
    return G if G % 32 == 0 or G % 2 == 1 else G + 1


def _ilv_size(N, G):
    return N + N // 32 if G == 1 else N * _ilv_stride(G)


def _ilv_addr(G):
    """(g, i) -> the shared address of point i of transform g in the interleaved layout."""
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    if G == 1:
        return lambda g, i: i + (i >> i32(5))
    S = _ilv_stride(G)
    return lambda g, i: i * i32(S) + g


def _pass_shape(n, cap, transforms=None, min_group=1, ilv=False):
    g = max(1, min(max(1, cap // n), -(-BLOCK_POINTS // n)))
    if isinstance(transforms, int):
        g = min(g, max(1, transforms // MIN_BLOCKS))
    g = max(g, min(min_group, max(1, cap // n)))
    while ilv and g > 1 and _ilv_size(n, g) > cap:  # the interleaved layout's padding fits too
        g -= 1
    pts = g * n
    threads = min(MAX_THREADS, max(32, -(-(-(-pts // 4)) // 32) * 32))
    return g, threads


def _pass_ir(ps: _Pass, acc, mode):
    N, G, TB = ps.n, ps.group, ps.threads
    gpu = mode == "gpu"
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    pts = G * N
    rad = factors(N)
    fft_steps = [st for st in ps.steps if st[0] == "fft"]
    regs = -(-pts // TB)
    if fft_steps:
        for R in rad:
            regs = max(regs, -(-(pts // R) // TB) * R)
    nblocks = (ps.total + i64(G - 1)) // i64(G)
    loc = "local" if gpu else "global"
    with IRBuilder() as ib:
        th = Threads(mode, tirx.Cast("int32", nblocks) if gpu else nblocks, TB)
        with th as bx:
            if ps.declare is not None:
                ps.declare()
            scope = "shared" if gpu else "global"
            ilv = _ilv_addr(G) if ps.ilv else None
            bre = T.decl_buffer([_ilv_size(N, G) if ps.ilv else pts], acc, scope=scope)
            bim = T.decl_buffer([_ilv_size(N, G) if ps.ilv else pts], acc, scope=scope)

            def A(g, i):  # shared address of point i of the block's transform g
                return ilv(g, i) if ps.ilv else g * i32(N) + i

            rshape = [regs] if gpu else [TB, regs]
            rre = T.decl_buffer(rshape, acc, scope=loc)
            rim = T.decl_buffer(rshape, acc, scope=loc)
            b64 = tirx.Cast("int64", bx)

            def R_(tx, i):
                return [i] if gpu else [tirx.Cast("int32", tx), i]

            def split(e, count, gmajor):
                return (e // i32(count), e % i32(count)) if gmajor else (e % i32(G), e // i32(G))

            def load(tx):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, -(-pts // TB)) as p:
                    e = p * i32(TB) + t32
                    with T.If(e < i32(pts)):
                        with T.Then():
                            g, i = split(e, N, ps.load_gmajor)
                            u = b64 * i64(G) + tirx.Cast("int64", g)
                            re, im, ok = ps.load(u, i)
                            ok = tirx.all(u < ps.total, ok) if ok is not None else u < ps.total
                            T.buffer_store(bre, tirx.Select(ok, re, fa(0.0)), [A(g, i)])
                            T.buffer_store(bim, tirx.Select(ok, im, fa(0.0)), [A(g, i)])

            th.each_thread(load)
            th.barrier()
            pre = None
            for si, st in enumerate(ps.steps):
                if st[0] == "fft":
                    _stages(th, mode, bre, bim, rre, rim, R_, N, G, TB, rad, st[1], acc, ilv, pre)
                    pre = None
                elif (
                    ps.ilv
                    and si + 1 < len(ps.steps)
                    and ps.steps[si + 1][0] == "fft"
                    and rad
                    and rad[0] in BUTTERFLY_RADICES
                ):
                    pre = st[1]  # applied by the next FFT's first gather: no pass of its own
                else:
                    fn = st[1]

                    def mul(tx, fn=fn):  # into the registers, a barrier, back (like a stage)
                        t32 = tirx.Cast("int32", tx)
                        with T.unroll(0, -(-pts // TB)) as p:
                            e = p * i32(TB) + t32
                            with T.If(e < i32(pts)):
                                with T.Then():
                                    if ps.ilv:  # g fastest: (g, i) = (e mod G, e / G)
                                        a = A(e % i32(G), e // i32(G))
                                        re, im = fn(e // i32(G), bre[a], bim[a])
                                    else:
                                        re, im = fn(e % i32(N), bre[e], bim[e])
                                    T.buffer_store(rre, re, R_(tx, p))
                                    T.buffer_store(rim, im, R_(tx, p))

                    def put(tx):
                        t32 = tirx.Cast("int32", tx)
                        with T.unroll(0, -(-pts // TB)) as p:
                            e = p * i32(TB) + t32
                            with T.If(e < i32(pts)):
                                with T.Then():
                                    a = A(e % i32(G), e // i32(G)) if ps.ilv else e
                                    T.buffer_store(bre, rre[tuple(R_(tx, p))], [a])
                                    T.buffer_store(bim, rim[tuple(R_(tx, p))], [a])

                    th.each_thread(mul)
                    th.barrier()
                    th.each_thread(put)
                    th.barrier()
            kpts = G * ps.kout

            def store(tx):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, -(-kpts // TB)) as p:
                    e = p * i32(TB) + t32
                    g, k = split(e, ps.kout, ps.store_gmajor)
                    u = b64 * i64(G) + tirx.Cast("int64", g)
                    with T.If(tirx.all(e < i32(kpts), u < ps.total)):
                        with T.Then():
                            if ps.raw_store == "slots":  # any point of any transform of the block
                                ps.store(u, k, lambda gg, idx: (bre[A(gg, idx)], bim[A(gg, idx)]), g)
                            elif ps.raw_store:
                                ps.store(u, k, lambda idx, g=g: (bre[A(g, idx)], bim[A(g, idx)]))
                            else:
                                ps.store(u, k, bre[A(g, k)], bim[A(g, k)])

            th.each_thread(store)
    return ib.get()


def _stages(th, mode, bre, bim, rre, rim, R_, N, G, TB, radices, sign, acc, ilv=None, pre=None):
    """The Stockham stages of every length-N transform in the shared buffers (in place). ilv: the
    interleaved layout's address function (g, i) -> address, butterfly b of transform b mod G.
    pre(i, re, im) -> (re, im): a pointwise step on point i, applied by the first stage's gather."""
    gpu = mode == "gpu"
    loc = "local" if gpu else "global"
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    pts = G * N
    Ns = 1
    for R in radices:
        nbf = pts // R  # butterflies of the block in this stage
        span = N // R
        per = -(-nbf // TB)
        if R in BUTTERFLY_RADICES:

            def gather(tx, R=R, nbf=nbf, span=span, per=per, pre=pre):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, per) as p:
                    b = p * i32(TB) + t32
                    with T.If(b < i32(nbf)):
                        with T.Then():
                            base = (b // i32(span)) * i32(N) + b % i32(span)
                            for r in range(R):
                                a = ilv(b % i32(G), b // i32(G) + i32(r * span)) if ilv else base + i32(r * span)
                                v = (bre[a], bim[a])
                                if pre is not None:
                                    v = pre(b // i32(G) + i32(r * span), *v)
                                T.buffer_store(rre, v[0], R_(tx, p * i32(R) + i32(r)))
                                T.buffer_store(rim, v[1], R_(tx, p * i32(R) + i32(r)))

            def butterfly(tx, R=R, nbf=nbf, span=span, per=per, Ns=Ns):
                t32 = tirx.Cast("int32", tx)
                consts = _dft_consts(R, sign)
                with T.unroll(0, per) as p:
                    b = p * i32(TB) + t32
                    with T.If(b < i32(nbf)):
                        with T.Then():
                            g, j = (b % i32(G), b // i32(G)) if ilv else (b // i32(span), b % i32(span))
                            s = j % i32(Ns) if Ns > 1 else i32(0)

                            def ix(r, p=p, tx=tx):
                                return R_(tx, p * i32(R) + i32(r))

                            if Ns > 1:  # twiddles w^r, w = exp(sign 2 pi i s / (Ns R)); w^r by products
                                tw = T.decl_buffer([2 * R], acc, scope=loc)
                                w1 = _turn(s, Ns * R, sign, acc, mode)
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
                            pos = (j // i32(Ns)) * i32(Ns * R) + s
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
                                a = ilv(g, pos + i32(kk * Ns)) if ilv else dst + i32(kk * Ns)
                                T.buffer_store(bre, yre, [a])
                                T.buffer_store(bim, yim, [a])

            th.each_thread(gather)
            th.barrier()
            th.each_thread(butterfly)
            th.barrier()
        else:  # another prime factor: a thread per output point sums R terms
            per_pt = -(-pts // TB)

            def direct(tx, R=R, span=span, per_pt=per_pt, Ns=Ns):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, per_pt) as p:
                    e = p * i32(TB) + t32
                    with T.If(e < i32(pts)):
                        with T.Then():
                            g, m = (e % i32(G), e // i32(G)) if ilv else (e // i32(N), e % i32(N))
                            a, rest = m // i32(Ns * R), m % i32(Ns * R)
                            kk, s = rest // i32(Ns), rest % i32(Ns)
                            src = g * i32(N) + a * i32(Ns) + s

                            def at(r, g=g, a=a, s=s, src=src, span=span):
                                return ilv(g, a * i32(Ns) + s + r * i32(span)) if ilv else src + r * i32(span)

                            ph = s + kk * i32(Ns)  # the angle of term r: r * ph / (Ns R) turns
                            acc2 = T.decl_buffer([2], acc, scope=loc)
                            T.buffer_store(acc2, fa(0.0), [0])
                            T.buffer_store(acc2, fa(0.0), [1])
                            with T.serial(0, R) as r:
                                w = _turn((r * ph) % i32(Ns * R), Ns * R, sign, acc, mode)
                                y = _cmul((bre[at(r)], bim[at(r)]), w)
                                T.buffer_store(acc2, acc2[0] + y[0], [0])
                                T.buffer_store(acc2, acc2[1] + y[1], [1])
                            T.buffer_store(rre, acc2[0], R_(tx, p))
                            T.buffer_store(rim, acc2[1], R_(tx, p))

            def put(tx, per_pt=per_pt):
                t32 = tirx.Cast("int32", tx)
                with T.unroll(0, per_pt) as p:
                    e = p * i32(TB) + t32
                    with T.If(e < i32(pts)):
                        with T.Then():
                            a = ilv(e % i32(G), e // i32(G)) if ilv else e
                            T.buffer_store(bre, rre[tuple(R_(tx, p))], [a])
                            T.buffer_store(bim, rim[tuple(R_(tx, p))], [a])

            th.each_thread(direct)
            th.barrier()
            th.each_thread(put)
            th.barrier()
        Ns *= R
        pre = None  # only the first stage's gather


# ---------------------------------------------------------------- rfft1: one block per long real transform


def _rfft1_radices(m):
    """The stages of rfft1's m-point FFT: m's prime factors (all <= 13) packed first-fit, largest
    first, into radices of at most RFFT1_MAX_RADIX (or 9), largest stage first (4096: 8x8x8x8)."""
    bins = []
    for f in sorted((q for f in factors(m) for q in ((2, 2) if f == 4 else (f,))), reverse=True):
        i = next((i for i, b in enumerate(bins) if b * f <= RFFT1_MAX_RADIX or b * f == 9), None)
        if i is None:
            bins.append(f)
        else:
            bins[i] *= f
    return sorted(bins, reverse=True)


def _rfft1_threads(m):
    """A thread per butterfly of the largest stage (rounded up to whole warps, at most 1024)."""
    return min(MAX_THREADS, -(-(m // _rfft1_radices(m)[0]) // 32) * 32)


def _rfft1_stages(m):
    """[(R, Ns)] of the Stockham stages (Ns: the product of the earlier radices)."""
    out, ns = [], 1
    for r in _rfft1_radices(m):
        out.append((r, ns))
        ns *= r
    return out


def _pad_addr(a, pad):
    """Shared address of point a in a layout with `pad` words after every 32 (numpy or int)."""
    return a + pad * (a >> 5)


def _bank_cost(addrs):
    """Shared-memory wavefronts of one warp-wide access per row of `addrs` ([accesses, 32] int, -1 =
    inactive lane): the most distinct addresses any one bank gets (one word per lane)."""
    cost = 0
    for row in addrs:
        a = np.unique(row[row >= 0])
        if a.size:
            cost += int(np.bincount(a % 32, minlength=32).max())
    return cost


def _rfft1_pads(m, tb):
    """The shared layout's padding (words per 32) after each stage, the one that makes that stage's
    writes and the next step's reads (the next stage's gather or the store's Z_k and Z_m-k) cost the
    fewest wavefronts for warp 0 (every warp's pattern is the same up to a shift), the smallest pad
    on ties: the Stockham writes of a stage with Ns < 32 are strided (8192: 16 x 16 x 16 x 2 is
    conflict-free with pads 1, 4, 0, 0)."""
    stages = _rfft1_stages(m)
    lanes = np.arange(32)
    pads = []
    for si, (R, Ns) in enumerate(stages):
        nbf = m // R
        writes = []
        for p in range(-(-nbf // tb)):
            j = p * tb + lanes
            ok = j < nbf
            for k in range(R):
                d = (j // Ns) * Ns * R + j % Ns + k * Ns
                writes.append(np.where(ok, d, -1))
        reads = []
        if si + 1 < len(stages):
            R2 = stages[si + 1][0]
            nb2 = m // R2
            for p in range(-(-nb2 // tb)):
                b = p * tb + lanes
                for r in range(R2):
                    reads.append(np.where(b < nb2, b + r * nb2, -1))
        else:
            for p in range(-(-(m + 1) // tb)):
                k = (p * tb + lanes) % m
                reads += [k, (m - k) % m]
        best = None
        for pad in (0, 1, 2, 4, 8):
            if (m + pad * (m // 32)) * 8 > RFFT1_MAX_BYTES:
                break
            c = sum(_bank_cost(np.where(a >= 0, _pad_addr(a, pad), -1)) for a in (np.array(writes), np.array(reads)))
            if best is None or c < best[0]:
                best = (c, pad)
        pads.append(best[1])
    return pads


def _rfft1_split(m):
    """Blocks per transform of rfft1's m-point FFT: RFFT1_SPLIT where m is even, else 1."""
    return RFFT1_SPLIT if m % RFFT1_SPLIT == 0 else 1


def _rfft1_size(m):
    """Shared words per buffer (re or im) of rfft1's block: its m / split points in the padded layout."""
    mh = m // _rfft1_split(m)
    return max(_pad_addr(mh - 1, p) + 1 for p in _rfft1_pads(mh, _rfft1_threads(mh)))


def _rfft1_dynamic(m):
    return _rfft1_size(m) * 8 > SHARED_BYTES


def _rfft1_fits(m):
    """rfft1 takes the half-length m: over static shared memory as one transform, at most
    RFFT1_MAX_POINTS, prime factors up to 13, a block's padded layout within RFFT1_MAX_BYTES."""
    fs = factors(m)
    mh = m // _rfft1_split(m)
    return (
        shared_points("float32") < m <= RFFT1_MAX_POINTS
        and bool(fs)
        and max(fs) <= BUTTERFLY_RADICES[-1]
        and (mh + mh // 32) * 8 <= RFFT1_MAX_BYTES
    )


def _small_dft(vals, sign, acc, loc):
    """y_k = sum_r v_r w^(r k), w = exp(sign 2 pi i / R), of R = len(vals) values in registers, as
    expressions. R prime or 4: the definition with constant coefficients (0 and +-1 folded); a
    composite R = R1 R2: R1 DFTs of R2 points into a local buffer (registers), constant twiddles
    w^(r1 k2), R2 DFTs of R1 points (r = r1 + R1 r2, k = k2 + R2 k1)."""
    R = len(vals)
    split = next((q for q in (4, 2, 3, 5, 7, 11, 13) if R % q == 0 and q < R), None)
    if split is None or R == 4:
        consts = _dft_consts(R, sign)
        out = []
        for kk in range(R):
            cs = [consts[(r * kk) % R] for r in range(R)]
            yre = _scaled_sum(
                [(cs[r][0], vals[r][0]) for r in range(R)] + [(-cs[r][1], vals[r][1]) for r in range(R)], acc
            )
            yim = _scaled_sum(
                [(cs[r][1], vals[r][0]) for r in range(R)] + [(cs[r][0], vals[r][1]) for r in range(R)], acc
            )
            out.append((yre, yim))
        return out
    R2 = split
    R1 = R // R2
    tw = _dft_consts(R, sign)
    z = []
    for r1 in range(R1):
        sub = _small_dft([vals[r1 + R1 * r2] for r2 in range(R2)], sign, acc, loc)
        buf = T.decl_buffer([2 * R2], acc, scope=loc)
        for k2, (a, b) in enumerate(sub):
            c, sn = tw[(r1 * k2) % R]
            T.buffer_store(buf, _scaled_sum([(c, a), (-sn, b)], acc), [2 * k2])
            T.buffer_store(buf, _scaled_sum([(sn, a), (c, b)], acc), [2 * k2 + 1])
        z.append([(buf[2 * k2], buf[2 * k2 + 1]) for k2 in range(R2)])
    out = [None] * R
    for k2 in range(R2):
        for k1, y in enumerate(_small_dft([z[r1][k2] for r1 in range(R1)], sign, acc, loc)):
            out[k2 + R2 * k1] = y
    return out


def _rfft1_ir(M, S, TB, total, load_z, emit_bin, K, n, sign, acc, mode, declare):
    """S blocks per transform (_rfft1_split): the M = n / 2 point complex FFT of z_j = x_2j + i x_2j+1
    in shared memory, then X_k = E_k + w^k O_k (_real_split) for the bins k < K. S = 2: block c of a
    transform takes the bins Z_2k'+c, the FFT of the Mh = M / 2 points y_j = z_j + z_j+Mh (c = 0) or
    (z_j - z_j+Mh) exp(sign 2 pi i j / M) (c = 1), the first radix-2 step by decimation in frequency;
    as M is even, Z_M-k is in the same block as Z_k, and the block stores the bins k = c mod 2.
    Stockham stages (_rfft1_stages of Mh): butterfly b of a stage reads points b + r Mh/R (the first
    stage straight from global memory: load_z(u, j) -> (re, im)), multiplies by w^(r s), s = b mod
    Ns, w = exp(sign 2 pi i / (Ns R)) (sin/cos of w and w^q, q = R's first factor; the other powers
    by at most 3 products), takes the radix-R DFT in registers and writes point (b / Ns) Ns R + s +
    k Ns in the layout of _rfft1_pads. Where a thread's butterflies share s or their s differ by
    multiples of TB, its twiddles come from one sin/cos times exact constants; likewise the first
    step's and the store's. emit_bin(u, k, re, im) stores bin k."""
    gpu = mode == "gpu"
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    Mh = M // S
    stages = _rfft1_stages(Mh)
    pads = _rfft1_pads(Mh, TB)
    size = max(_pad_addr(Mh - 1, p) + 1 for p in pads)
    regs = max(-(-(Mh // R) // TB) * R for R, _ in stages)
    loc = "local" if gpu else "global"
    nb = total * tirx.const(S, "int64") if S > 1 else total
    with IRBuilder() as ib:
        th = Threads(mode, tirx.Cast("int32", nb) if gpu else nb, TB)
        with th as bx:
            declare()
            scope = ("shared" if size * 8 <= SHARED_BYTES else "shared.dyn") if gpu else "global"
            bre = T.decl_buffer([size], acc, scope=scope)
            bim = T.decl_buffer([size], acc, scope=scope)
            rshape = [regs] if gpu else [TB, regs]
            rre = T.decl_buffer(rshape, acc, scope=loc)
            rim = T.decl_buffer(rshape, acc, scope=loc)
            b64 = tirx.Cast("int64", bx)
            u = b64 // tirx.const(S, "int64") if S > 1 else b64
            c = tirx.Cast("int32", b64 % tirx.const(S, "int64")) if S > 1 else i32(0)

            def R_(tx, i):
                return [i] if gpu else [tirx.Cast("int32", tx), i]

            def at(a, pad):
                return a + (a >> i32(5)) * i32(pad) if pad else a

            def guard(cond, needed):
                """`with` this: the statements under T.If(cond), or unconditional when not needed."""
                return T.If(cond) if needed else _nullcontext()

            def then(needed):
                return T.Then() if needed else _nullcontext()

            def first(tx, R, nbf, per):  # the first stage's gather: from global memory
                t32 = tirx.Cast("int32", tx)
                if S > 1:
                    wb = T.decl_buffer([2], acc, scope=loc)
                    cw, sw = _turn(t32, M, sign, acc, mode)
                    T.buffer_store(wb, cw, [0])
                    T.buffer_store(wb, sw, [1])
                for p in range(per):
                    b = t32 + i32(p * TB)
                    cut = (p + 1) * TB > nbf
                    with guard(b < i32(nbf), cut):
                        with then(cut):
                            for r in range(R):
                                j = b + i32(r * nbf)
                                v = load_z(u, j)
                                if S > 1:  # y_j: z_j + z_j+Mh, or (z_j - z_j+Mh) exp(sign 2 pi i j / M)
                                    z1 = load_z(u, j + i32(Mh))
                                    ang = (p * TB + r * nbf) % M
                                    w = (wb[0], wb[1])
                                    if ang:
                                        cst = _cexp(sign, ang, M)
                                        w = _cmul(w, (fa(cst[0]), fa(cst[1])))
                                    d = _cmul((v[0] - z1[0], v[1] - z1[1]), w)
                                    v = (
                                        tirx.Select(c == i32(0), v[0] + z1[0], d[0]),
                                        tirx.Select(c == i32(0), v[1] + z1[1], d[1]),
                                    )
                                T.buffer_store(rre, v[0], R_(tx, i32(p * R + r)))
                                T.buffer_store(rim, v[1], R_(tx, i32(p * R + r)))

            for si, (R, Ns) in enumerate(stages):
                nbf = Mh // R
                per = -(-nbf // TB)
                rpad = pads[si - 1] if si else None

                def gather(tx, R=R, nbf=nbf, per=per, rpad=rpad):
                    t32 = tirx.Cast("int32", tx)
                    with T.unroll(0, per) as p:
                        b = p * i32(TB) + t32
                        with T.If(b < i32(nbf)):
                            with T.Then():
                                for r in range(R):
                                    a = at(b + i32(r * nbf), rpad)
                                    T.buffer_store(rre, bre[a], R_(tx, p * i32(R) + i32(r)))
                                    T.buffer_store(rim, bim[a], R_(tx, p * i32(R) + i32(r)))

                def butterfly(tx, R=R, Ns=Ns, nbf=nbf, per=per, wpad=pads[si]):
                    t32 = tirx.Cast("int32", tx)
                    q = next((f for f in (4, 2, 3, 5, 7, 11, 13) if R % f == 0 and f < R), R)
                    base = None  # (cos, sin) of the thread's own angle when the butterflies share it
                    if Ns > 1 and (TB % Ns == 0 or Ns % TB == 0):
                        bw = T.decl_buffer([4], acc, scope=loc)
                        s0 = t32 % i32(Ns) if TB % Ns == 0 else t32
                        for slot, mult in ((0, 1), (2, q))[: 2 if q < R else 1]:
                            cw, sw = _turn(s0 * i32(mult), Ns * R, sign, acc, mode)
                            T.buffer_store(bw, cw, [slot])
                            T.buffer_store(bw, sw, [slot + 1])
                        base = bw
                    with T.unroll(0, per) as p:
                        b = p * i32(TB) + t32
                        with T.If(b < i32(nbf)):
                            with T.Then():
                                s = b % i32(Ns) if Ns > 1 else i32(0)

                                def ix(r, p=p, tx=tx):
                                    return R_(tx, p * i32(R) + i32(r))

                                if Ns > 1:  # w^r = (w^q)^a w^c (r = a q + c), w and w^q from sin/cos
                                    tw = T.decl_buffer([2 * R], acc, scope=loc)
                                    pw = {}
                                    for r in range(1, R):
                                        a_, c_ = divmod(r, q)
                                        if r in (1, q):
                                            if base is None:
                                                w = _turn(s * i32(r), Ns * R, sign, acc, mode)
                                            else:
                                                w = (base[0 if r == 1 else 2], base[1 if r == 1 else 3])
                                                if Ns % TB == 0 and TB % Ns != 0:  # s = t + p TB: times w^(r p TB)
                                                    w = _rot_const(w, p, r * TB, Ns * R, sign, acc, per)
                                        elif c_ == 0:
                                            w = _cmul(pw[r - q], pw[q])
                                        elif a_ == 0:
                                            w = _cmul(pw[r - 1], pw[1])
                                        else:
                                            w = _cmul(pw[a_ * q], pw[c_])
                                        T.buffer_store(tw, w[0], [2 * r])
                                        T.buffer_store(tw, w[1], [2 * r + 1])
                                        pw[r] = (tw[2 * r], tw[2 * r + 1])
                                    for r in range(1, R):
                                        v = _cmul((rre[tuple(ix(r))], rim[tuple(ix(r))]), pw[r])
                                        T.buffer_store(tw, v[0], [0])  # slot 0 is free: re first
                                        T.buffer_store(rim, v[1], ix(r))
                                        T.buffer_store(rre, tw[0], ix(r))
                                vals = [(rre[tuple(ix(r))], rim[tuple(ix(r))]) for r in range(R)]
                                dst = (b // i32(Ns)) * i32(Ns * R) + s
                                for k, (yre, yim) in enumerate(_small_dft(vals, sign, acc, loc)):
                                    a = at(dst + i32(k * Ns), wpad)
                                    T.buffer_store(bre, yre, [a])
                                    T.buffer_store(bim, yim, [a])

                if si:
                    th.each_thread(gather)
                    th.barrier()  # in place: every thread has read its points before any writes
                else:
                    th.each_thread(lambda tx, R=R, nbf=nbf, per=per: first(tx, R, nbf, per))
                th.each_thread(butterfly)
                th.barrier()
            spad = pads[-1]

            def store(tx):  # bin k = S q + c, q = t + p TB: w^k = w^(S t + c) exp(sign 2 pi i S p TB / n)
                t32 = tirx.Cast("int32", tx)
                bw = T.decl_buffer([2], acc, scope=loc)
                cw, sw = _turn(t32 * i32(S) + c if S > 1 else t32, n, sign, acc, mode)
                T.buffer_store(bw, cw, [0])
                T.buffer_store(bw, sw, [1])
                for p in range(-(-K // (S * TB))):
                    q = t32 + i32(p * TB)
                    k = q * i32(S) + c if S > 1 else q
                    lo, hi = S * p * TB, S * (p * TB + TB) - 1  # the range of k
                    kk = k if hi < M else (k - i32(M) if lo >= M else tirx.Select(k >= i32(M), k - i32(M), k))
                    lk = (kk - c) // i32(S) if S > 1 else kk  # Z_kk's place in the block
                    # Z_(M - kk) mod M's place: Mh - c - lk, or 0 where kk = 0 (k = 0 or M) can occur
                    part = i32(Mh) - c - lk if S > 1 else i32(Mh) - lk
                    if lo == 0 or lo <= M <= hi:
                        part = tirx.Select(lk + c == i32(0), i32(0), part)
                    cut = hi >= K
                    with guard(k < i32(K), cut):
                        with then(cut):
                            ka, kb = at(lk, spad), at(part, spad)
                            a, b = (bre[ka], bim[ka]), (bre[kb], bim[kb])
                            ang = (lo % n) if S == 1 else (S * p * TB) % n
                            w = (bw[0], bw[1])
                            if ang:
                                cst = _cexp(sign, ang, n)
                                w = _cmul(w, (fa(cst[0]), fa(cst[1])))
                            e, o = _real_split_eo(a, b, acc)
                            wo = _cmul(o, w)
                            emit_bin(u, k, e[0] + wo[0], e[1] + wo[1])

            th.each_thread(store)
    return ib.get()


def _cexp(sign, m, q):
    """(cos, sin) of sign 2 pi m / q as Python floats."""
    return math.cos(2 * math.pi * m / q), sign * math.sin(2 * math.pi * m / q)


def _rot_const(w, p, step, q, sign, acc, count):
    """w exp(sign 2 pi i p step / q) for the unrolled loop variable p (0 <= p < count): a table of
    exact constants selected by p (after unrolling: one constant complex product, none for p = 0)."""
    cs = [
        (math.cos(2 * math.pi * ((i * step) % q) / q), sign * math.sin(2 * math.pi * ((i * step) % q) / q))
        for i in range(count)
    ]
    if count == 1:
        return w
    cre, cim = tirx.const(cs[-1][0], acc), tirx.const(cs[-1][1], acc)
    for i in range(count - 2, -1, -1):
        cre = tirx.Select(p == tirx.const(i, str(p.ty)), tirx.const(cs[i][0], acc), cre)
        cim = tirx.Select(p == tirx.const(i, str(p.ty)), tirx.const(cs[i][1], acc), cim)
    return _cmul(w, (cre, cim))


def _real_split_eo(a, b, acc):
    """(E_k, O_k) of _real_split without the twiddle."""
    half = tirx.const(0.5, acc)
    return ((a[0] + b[0]) * half, (a[1] - b[1]) * half), ((a[1] + b[1]) * half, (b[0] - a[0]) * half)


def _rsplit(m, cap):
    """The real four-step's split m = n1 n2: n1 even, both smooth and at most 1/8 of shared
    memory, as even as possible (8192 = 64 x 128: 512 blocks in each pass for 64 series), pass B's
    group an even divisor of n1; else None."""
    lim = _ilv_cap(cap) // 8
    best = None
    for n1 in range(2, min(lim, m) + 1, 2):
        n2 = m // n1
        if m % n1 or n2 > lim or not (_smooth(n1) and _smooth(n2)) or not _rfourstep_group(n1, n2, cap):
            continue
        if best is None or min(n1, n2) > min(best) or (min(n1, n2) == min(best) and n2 > best[1]):
            best = (n1, n2)
    return best


def _rfourstep_group(n1, n2, cap):
    """Pass B's rows per block of the real four-step (an even divisor of n1: pairs of rows), else 0."""
    g = _pass_shape(n2, cap, None, min_group=min(8, n1), ilv=True)[0]
    while g > 1 and (g % 2 or n1 % g):
        g -= 1
    return g if g % 2 == 0 and n1 % 2 == 0 else 0


def _rfourstep(n, n1, n2, cap, total, signal, sign, emit, K, flat, wkey, acc, mode, declare):
    """A real signal of even length n as the M = n / 2 = n1 n2 point complex FFT of
    z_j = x_2j + i x_2j+1, four-step (as _fourstep, M points): (A) per column an n1-point FFT times
    exp(sign 2 pi i c k1 / M) into the workspace; (B) per row k1 an n2-point FFT, Z at k1 + n1 k2.
    X_k = E_k + w^k O_k, X_k+M = E_k - w^k O_k (w = exp(sign 2 pi i / n), E_k = (Z_k + conj
    Z_M-k) / 2, O_k = (Z_k - conj Z_M-k) / 2i) needs Z_M-k: row n1 - k1 (k1 > 0; column
    n2 - 1 - k2) or row 0 (column -k2 mod n2). Pass B's block therefore holds pairs of rows: slot
    2p + m of a series is row p / n1 - p (p > 0; m = 0 / 1), rows 0 and n1 / 2 for p = 0 (each its
    own partner). emit(t, k, re, im) stores bin k < K."""
    M = n1 * n2
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    ga, ta = _pass_shape(n1, cap, None, min_group=min(16, n2), ilv=True)
    gb = _rfourstep_group(n1, n2, cap)
    tb_ = _pass_shape(n2, cap, None, min_group=gb, ilv=True)[1]

    def load_a(u, i):  # the pair (x_2j, x_2j+1), j = i n2 + c
        t, c = u // i64(n2), u % i64(n2)
        j = tirx.Cast("int64", i) * i64(n2) + c
        re0, _, ok0 = signal(t, j * i64(2))
        re1, _, ok1 = signal(t, j * i64(2) + i64(1))
        return tirx.Select(ok0, re0, fa(0.0)), tirx.Select(ok1, re1, fa(0.0)), None

    def store_a(u, k1, re, im):
        t, c = u // i64(n2), u % i64(n2)
        w = _turn((c * tirx.Cast("int64", k1)) % i64(M), M, sign, acc, mode)
        y = _cmul((re, im), w)
        a = ((t * i64(n1) + tirx.Cast("int64", k1)) * i64(n2) + c) * i64(2)
        T.buffer_store(flat[wkey], y[0], [a])
        T.buffer_store(flat[wkey], y[1], [a + i64(1)])

    def row(s):  # the row k1 of slot s (int64)
        p, m = s // i64(2), s % i64(2)
        return tirx.Select(p == i64(0), m * i64(n1 // 2), tirx.Select(m == i64(0), p, i64(n1) - p))

    def load_b(u, i):
        t, s = u // i64(n1), u % i64(n1)
        a = ((t * i64(n1) + row(s)) * i64(n2) + tirx.Cast("int64", i)) * i64(2)
        return flat[wkey][a], flat[wkey][a + i64(1)], None

    def store_b(u, k2, get, g):
        t, s = u // i64(n1), u % i64(n1)
        k1 = row(s)
        partner = tirx.Select(s < i64(2), g, g ^ i32(1))  # the slot holding row n1 - k1
        kp = tirx.Select(k1 == i64(0), (i32(n2) - k2) % i32(n2), i32(n2 - 1) - k2)
        a, b = get(g, k2), get(partner, kp)
        k = k1 + i64(n1) * tirx.Cast("int64", k2)
        e, wo = _real_split(a, b, k, n, sign, acc, mode)
        emit(t, k, e[0] + wo[0], e[1] + wo[1])
        if K > M:  # the upper half (X_M, the Nyquist bin, from k = 0 when onesided)
            with T.If(k + i64(M) < i64(K)):
                with T.Then():
                    emit(t, k + i64(M), e[0] - wo[0], e[1] - wo[1])

    pa = _Pass(n1, ga, ta, total * i64(n2), load_a, store_a, n1, [("fft", sign)], False, False, declare, ilv=True)
    pb = _Pass(n2, gb, tb_, total * i64(n1), load_b, store_b, n2, [("fft", sign)], True, False, declare, "slots", True)
    return [_pass_ir(pa, acc, mode), _pass_ir(pb, acc, mode)]


def _fourstep(n1, n2, cap, total, load, sign, store, kout_guard, flat, wkey, acc, mode, declare):
    """Two kernels for transforms of length n1 * n2 through a workspace `work` ([total, n1 n2, 2]):
    (A) per column n2, an n1-point FFT of x[n1' n2 + n2'], times exp(sign 2 pi i n2 k1 / n);
    (B) per row k1, an n2-point FFT; bin k1 + n1 k2. load(t, i) -> (re, im, ok) of the signal;
    store(t, k, re, im) of bin k (only where kout_guard(k))."""
    n = n1 * n2
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    ga, ta = _pass_shape(n1, cap, None, min_group=min(16, n2), ilv=True)
    gb, tb_ = _pass_shape(n2, cap, None, min_group=min(8, n1), ilv=True)

    def load_a(u, i):
        t, c = u // i64(n2), u % i64(n2)
        return load(t, tirx.Cast("int64", i) * i64(n2) + c)

    def store_a(u, k1, re, im):
        t, c = u // i64(n2), u % i64(n2)
        w = _turn((c * tirx.Cast("int64", k1)) % i64(n), n, sign, acc, mode)
        y = _cmul((re, im), w)
        a = ((t * i64(n1) + tirx.Cast("int64", k1)) * i64(n2) + c) * i64(2)
        T.buffer_store(flat[wkey], y[0], [a])
        T.buffer_store(flat[wkey], y[1], [a + i64(1)])

    def load_b(u, i):
        a = (u * i64(n2) + tirx.Cast("int64", i)) * i64(2)
        return flat[wkey][a], flat[wkey][a + i64(1)], None

    def store_b(u, k2, re, im):
        t, k1 = u // i64(n1), u % i64(n1)
        k = k1 + i64(n1) * tirx.Cast("int64", k2)
        with T.If(kout_guard(k)):
            with T.Then():
                store(t, k, re, im)

    pa = _Pass(n1, ga, ta, total * i64(n2), load_a, store_a, n1, [("fft", sign)], False, False, declare, ilv=True)
    pb = _Pass(n2, gb, tb_, total * i64(n1), load_b, store_b, n2, [("fft", sign)], True, False, declare, ilv=True)
    return [_pass_ir(pa, acc, mode), _pass_ir(pb, acc, mode)]


def _fft_ir(det, outer, x, win, bhat, out, works, mode):
    """Every kernel of the selection's plan (det.kind), as one statement."""
    dtype, acc = det.dtype, _acc(det.dtype)
    n, K, L, inner = det.n, det.k, det.length, det.inner
    c_in = 2 if det.complex else 1
    c_out = 1 if det.irfft else 2
    sign = 1.0 if det.inverse else -1.0
    cap = shared_points(dtype)
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    fa = lambda v: tirx.const(v, acc)  # noqa: E731
    cast = lambda v, dt=dtype: v if dt == acc else tirx.Cast(acc, v)  # noqa: E731
    if det.stft:
        total = outer * i64(det.frames)
        xlen = outer * i64(L * c_in)
    else:
        total = outer * i64(inner)
        xlen = outer * i64(L * inner * c_in)
    olen = total * i64(K * c_out)
    flat = {}

    def declare():  # flat views, declared inside every kernel's builder
        flat["x"] = T.decl_buffer([xlen], dtype, data=x.data)
        flat["o"] = T.decl_buffer([olen], dtype, data=out.data)
        if win is not None:
            flat["w"] = T.decl_buffer([n], det.wdtype, data=win.data)
        if bhat is not None:
            flat["b"] = T.decl_buffer([det.m * 2], acc, data=bhat.data)
        for j, wk in enumerate(works):
            flat[f"k{j}"] = T.decl_buffer([total * i64(det.m * 2)], acc, data=wk.data)

    def signal(u, i):
        """(re, im, ok) of point i (int32/int64) of transform u: zero past min(L, n). irfft: point i
        of the Hermitian extension, X_i below n/2 + 1, else conj(X_{n-i}); zero past L."""
        i = tirx.Cast("int64", i)
        if det.irfft:
            half = n // 2 + 1
            mirror = i >= i64(half)
            src = tirx.Select(mirror, i64(n) - i, i)
            ok = tirx.all(i < i64(n), src < i64(min(L, half)))
            o, q = u // i64(inner), u % i64(inner)
            addr = tirx.Select(ok, ((o * i64(L) + src) * i64(inner) + q) * i64(2), i64(0))
            re, im = cast(flat["x"][addr]), cast(flat["x"][addr + i64(1)])
            return re, tirx.Select(mirror, fa(0.0) - im, im), ok
        ok = i < i64(min(L, n))
        if det.stft:
            o, f = u // i64(det.frames), u % i64(det.frames)
            addr = (o * i64(L) + f * i64(det.step) + i) * i64(c_in)
        else:
            o, q = u // i64(inner), u % i64(inner)
            addr = ((o * i64(L) + i) * i64(inner) + q) * i64(c_in)
        addr = tirx.Select(ok, addr, i64(0))
        xf = flat["x"]
        re = cast(xf[addr])
        im = cast(xf[addr + i64(1)]) if det.complex else fa(0.0)
        if win is not None:
            wv = cast(flat["w"][tirx.Select(ok, i, i64(0))], det.wdtype)
            re, im = re * wv, (im * wv if det.complex else im)
        return re, im, ok

    def emit_out(u, k, re, im, scale):
        k = tirx.Cast("int64", k)
        if det.stft:
            addr = (u * i64(K) + k) * i64(2)
        else:
            o, q = u // i64(inner), u % i64(inner)
            addr = ((o * i64(K) + k) * i64(inner) + q) * i64(c_out)
        for part, v in ((0, re), (1, im))[:c_out]:
            v = v * fa(scale) if scale != 1.0 else v
            T.buffer_store(flat["o"], v if acc == dtype else tirx.Cast(dtype, v), [addr + i64(part)])

    def chirp(j):
        """exp(sign pi i j^2 / n) = exp(sign 2 pi i (j^2 mod 2n) / 2n)."""
        j = tirx.Cast("int64", j)
        return _turn((j * j) % i64(2 * n), 2 * n, sign, acc, mode)

    scale = 1.0 / n if det.inverse else 1.0
    kernels = []
    if det.kind == "fft":
        gm = det.stft or inner == 1
        ps = _Pass(
            n,
            det.group,
            det.threads,
            total,
            signal,
            lambda u, k, re, im: emit_out(u, k, re, im, scale),
            K,
            [("fft", sign)],
            gm,
            gm,
            declare,
        )
        kernels.append(_pass_ir(ps, acc, mode))
    elif det.kind == "rfft":  # z_j = x_2j + i x_2j+1; X_k = E_k + exp(-+2 pi i k / n) O_k (E, O of z's FFT)
        M = det.m

        def load_pair(u, i):
            i = tirx.Cast("int64", i)
            re0, _, ok0 = signal(u, i * i64(2))
            re1, _, ok1 = signal(u, i * i64(2) + i64(1))
            return tirx.Select(ok0, re0, fa(0.0)), tirx.Select(ok1, re1, fa(0.0)), None

        def store_r(u, k, get):
            kk = k % tirx.const(M, "int32")
            a, b = get(kk), get((tirx.const(M, "int32") - kk) % tirx.const(M, "int32"))
            e, wo = _real_split(a, b, k, n, sign, acc, mode)
            emit_out(u, k, e[0] + wo[0], e[1] + wo[1], scale)

        gm = det.stft or inner == 1
        ps = _Pass(M, det.group, det.threads, total, load_pair, store_r, K, [("fft", sign)], gm, gm, declare, True)
        kernels.append(_pass_ir(ps, acc, mode))
    elif det.kind == "rfft1":
        # float32 with every point of the signal there and pairs 8-byte aligned: (x_2j, x_2j+1)
        # and (re, im) of a bin as one float2 load / store (through a 2-word local buffer)
        vec = dtype == "float32" and L >= n and L % 2 == 0
        loc = "local" if mode == "gpu" else "global"
        two = lambda base: tirx.Ramp(base, tirx.const(1, str(base.ty)), 2)  # noqa: E731

        def load_z(u, j):  # z_j = x_2j + i x_2j+1
            j = tirx.Cast("int64", j)
            if vec:
                vb = T.decl_buffer([2], acc, scope=loc)
                T.buffer_store(vb, flat["x"][two(u * i64(L) + j * i64(2))], [two(tirx.const(0, "int32"))])
                return vb[0], vb[1]
            re0, _, ok0 = signal(u, j * i64(2))
            re1, _, ok1 = signal(u, j * i64(2) + i64(1))
            return tirx.Select(ok0, re0, fa(0.0)), tirx.Select(ok1, re1, fa(0.0))

        def emit_bin(u, k, re, im):
            if not vec:
                return emit_out(u, k, re, im, scale)
            vb = T.decl_buffer([2], acc, scope=loc)
            T.buffer_store(vb, re * fa(scale) if scale != 1.0 else re, [0])
            T.buffer_store(vb, im * fa(scale) if scale != 1.0 else im, [1])
            a = (u * i64(K) + tirx.Cast("int64", k)) * i64(2)
            T.buffer_store(flat["o"], vb[two(tirx.const(0, "int32"))], [two(a)])

        kernels.append(
            _rfft1_ir(
                det.m,
                _rfft1_split(det.m),
                det.threads,
                total,
                load_z,
                emit_bin,
                K,
                n,
                sign,
                acc,
                mode,
                declare,
            )
        )
    elif det.kind == "rfourstep":
        kernels += _rfourstep(
            n,
            det.n1,
            det.n2,
            cap,
            total,
            signal,
            sign,
            lambda t, k, re, im: emit_out(t, k, re, im, scale),
            K,
            flat,
            "k0",
            acc,
            mode,
            declare,
        )
    elif det.kind == "fourstep":
        kernels += _fourstep(
            det.n1,
            det.n2,
            cap,
            total,
            signal,
            sign,
            lambda t, k, re, im: emit_out(t, k, re, im, scale),
            lambda k: k < i64(K),
            flat,
            "k0",
            acc,
            mode,
            declare,
        )
    else:  # Bluestein: X_k = w_k sum_j (x_j w_j) conj(w_{k-j}), the convolution by an m-point FFT
        m = det.m

        def load_chirped(u, j):
            re, im, ok = signal(u, j)
            return (*_cmul((re, im), chirp(j)), ok)

        def finish(u, k, re, im):
            y = _cmul((re, im), chirp(k))
            emit_out(u, k, y[0], y[1], scale / m)

        def times_bhat(i, re, im):
            b = flat["b"]
            i = tirx.Cast("int64", i)
            return _cmul((re, im), (b[i * i64(2)], b[i * i64(2) + i64(1)]))

        if det.kind == "bluestein":
            ps = _Pass(
                m,
                det.group,
                det.threads,
                total,
                load_chirped,
                finish,
                K,
                [("fft", -1.0), ("mul", times_bhat), ("fft", 1.0)],
                True,
                True,
                declare,
                ilv=True,
            )
            kernels.append(_pass_ir(ps, acc, mode))
        else:  # bluestein4: the m-point FFTs four-step: x -> k1 -> k0 (times bhat) -> k1 -> out

            def to_k0(t, k, re, im):
                y = times_bhat(k, re, im)
                a = (t * i64(m) + tirx.Cast("int64", k)) * i64(2)
                T.buffer_store(flat["k0"], y[0], [a])
                T.buffer_store(flat["k0"], y[1], [a + i64(1)])

            def from_k0(t, i):
                a = (t * i64(m) + tirx.Cast("int64", i)) * i64(2)
                return flat["k0"][a], flat["k0"][a + i64(1)], None

            kernels += _fourstep(
                det.n1,
                det.n2,
                cap,
                total,
                load_chirped,
                -1.0,
                to_k0,
                lambda k: k >= i64(0),
                flat,
                "k1",
                acc,
                mode,
                declare,
            )
            kernels += _fourstep(
                det.n1, det.n2, cap, total, from_k0, 1.0, finish, lambda k: k < i64(K), flat, "k1", acc, mode, declare
            )
    return kernels[0] if len(kernels) == 1 else tirx.SeqStmt(kernels)


def _bhat(det):
    """FFT_m of the conjugate chirp conj(w_j), |j| < n, wrapped into m points (float64 numpy)."""
    n, m = det.n, det.m
    sign = 1.0 if det.inverse else -1.0
    j = np.arange(n, dtype=np.int64)
    w = np.exp(sign * 1j * np.pi * ((j * j) % (2 * n)) / n)
    b = np.zeros(m, np.complex128)
    b[:n] = np.conj(w)
    b[m - n + 1 :] = np.conj(w[1:])[::-1]
    f = np.fft.fft(b)
    return np.stack([f.real, f.imag], -1).reshape(-1)


def _fft_stage(det, mode):
    acc = _acc(det.dtype)

    def stage(xt, *extra):
        if det.stft:
            outer = xt.shape[0]
            oshape = [outer, det.frames, det.k, 2]
            total = outer * det.frames
        else:
            outer = tirx.const(1, "int64")
            for d in xt.shape[: det.axis]:
                outer = outer * d
            oshape = list(xt.shape[:-1]) + [1 if det.irfft else 2]
            oshape[det.axis] = det.k
            total = outer * det.inner
        shapes = [oshape] + [[total, det.m * 2]] * det.workspaces
        has_win = det.stft and (det.window_index is not None or det.window is not None)
        has_b = det.kind in ("bluestein", "bluestein4")

        def body(ins, outs):
            win = ins[1] if has_win else None
            bh = ins[1 + has_win] if has_b else None
            return _fft_ir(det, tirx.Cast("int64", outer), ins[0], win, bh, outs[0], list(outs[1:]), mode)

        res = te.extern(
            shapes,
            [xt, *extra],
            body,
            dtype=[det.dtype] + [acc] * det.workspaces,
            name="tpat_stft" if det.stft else "tpat_dft",
        )
        return res

    return stage


def emit(bb, params, det, mode="gpu"):
    name = "tpat_stft" if det.stft else "tpat_dft"
    x = params[det.x_index]
    if det.kind == "direct":
        return bb.emit_te(lambda t: _direct_te(t, det), x, primfunc_name_hint=name)
    extra = []
    if det.stft and det.window_index is not None:
        extra.append(params[det.window_index])
    elif det.stft and det.window is not None:
        extra.append(relax.const(np.asarray(det.window, dtype=det.wdtype), det.wdtype))
    if det.kind in ("bluestein", "bluestein4"):
        extra.append(relax.const(_bhat(det).astype(_acc(det.dtype)), _acc(det.dtype)))
    out = bb.emit_te(_fft_stage(det, mode), x, *extra, primfunc_name_hint=name)
    return bb.emit(relax.TupleGetItem(out, 0)) if det.workspaces else out


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
