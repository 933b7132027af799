"""TPAT's own TVM lowering of ONNX Attention (opset 23, and 24 without `nonpad_kv_seqlen`).

TVM 0.27's ONNX frontend maps `Attention` to the com.microsoft contrib op (`KeyError: 'num_heads'`
on the default-domain op), so the planner refuses TVM's path (refusals.py) and this lowering is the
only one. It is the definition as a chain of TE computes, each its own PrimFunc scheduled by dlight
(and searchable by `tpat tune`):

  1. present_key / present_value = concat(past, K / V) along the sequence (4-D), when past is given
     (the scores then read them) or when the node uses them;
  2. scores S[b, h, i, j] = scale * sum_d Q[b, h, i, d] * K[b, h / r, j, d] in float32 (fp16 / bf16
     widened), r = q_num_heads / kv_num_heads (grouped-query attention: q head h reads kv head h / r,
     ONNX's interleaved repeat); 3-D Q/K/V are read in place as (batch, seq, heads * head_size);
  3. W = softcap(S + bias): a float mask is added, a bool mask adds float32's lowest where False,
     causal (j > i + past length) sets float32's lowest, softcap c > 0 gives c * tanh(W / c);
  4. softmax over j in float32 (max, sum of exp, normalize: one PrimFunc, dlight's reduction rules);
  5. Y[b, h, i, e] = sum_j P[b, h, i, j] * V[b, h / r, j, e], written in Y's layout (3-D: (batch, seq,
     heads * v_head_size)); the optional 4th output is S, S + bias, the softcapped W or P
     (qk_matmul_output_mode 0..3), in Q's type.

Without the 4th output one fused kernel replaces the chain (no L x T matrix in memory; docs/lowerings.md
"Attention"): on tensor cores (`_tc_ir`: mma.sync, fp16/bf16 prefill) or on CUDA cores (`_flash_ir`,
with the keys split over blocks and a merge kernel when few rows would leave the GPU idle: decode).

Semantics follow ONNX Runtime (TPAT's reference data): a bool mask's False and the causal mask are
float32's lowest, not -inf (so a row masked everywhere by them averages V, where ONNX's reference
gives NaN), causal replaces a float mask's value where it masks. Where ONNX Runtime has no answer,
ONNX's reference (onnx.reference) is followed: a mask shorter than the total sequence is padded with
-inf (False) as the reference does (ONNX Runtime refuses such a node at run time).
Declined with a reason: nonpad_kv_seqlen (opset 24; ONNX Runtime 1.24 fails on it), float64,
mask types other than bool or Q's type, softmax_precision other than float32 or Q's own type
(computed in float32 either way), q heads not a multiple of kv heads, Q and K head sizes that differ,
symbolic head counts or head sizes, past_key without past_value, qk_matmul_output_mode outside 0..3,
a negative softcap, mode 2 with an explicit softcap of 0 (ONNX's reference and ONNX Runtime differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads, relax_arg
from .protocol import PLAN_TARGET, BadValue, Decline, Lowering, NodeView, Selection

DTYPES = dtypes.FLOATS
LOWEST = float.fromhex("-0x1.fffffep+127")  # float32's lowest, ONNX Runtime's mask value
LOG2E = math.log2(math.e)  # the tensor-core kernel's softmax in log2 units: exp(x) = exp2(x log2 e)
MAX_ELEMENTS = 2**62


@dataclass(frozen=True)
class AttentionSelection(Selection):
    dtype: str
    rank: int  # 3 or 4 (Q, K, V)
    qh: int  # q heads
    kvh: int  # kv heads
    hd: int  # Q / K head size
    vd: int  # V head size
    scale: float
    causal: bool
    softcap: float  # 0: none
    mode: int  # qk_matmul_output_mode
    mask: str | None  # None, "bool" or "float"
    past: bool
    outs: tuple  # which of (Y, present_key, present_value, qk) the node uses
    flash: bool  # the fused kernel (no qk output asked, a tile fits in shared memory)
    ops: list  # Operands Q, K, V, mask, past_key, past_value (absent ones kept)
    bq: int = 16  # fused kernel: query rows per block
    bk: int = 32  # keys per K/V tile
    splits: int = 1  # blocks over the keys of a (batch, kv head, row tile); > 1: a merge kernel
    vec: int = 1  # Q/K/V elements per load
    tc: bool = False  # the tensor-core kernel (prefill) in place of the CUDA-core one
    tcm: int = 1  # tensor-core kernel: row groups of 16 per warp (1: 64 rows per block, 2: 128)
    wg: bool = False  # the Hopper wgmma kernel (plans for sm_90a) in place of the mma.sync one

    def describe(self) -> str:
        kind = f"{self.rank}-D, {self.qh} q heads / {self.kvh} kv heads, head {self.hd}/{self.vd}"
        extra = [
            w
            for w, on in (
                ("causal", self.causal),
                (f"{self.mask} mask", self.mask),
                ("past", self.past),
                (f"softcap={self.softcap:g}", self.softcap > 0),
                (f"qk output mode {self.mode}", self.outs[3]),
            )
            if on
        ]
        if self.wg:
            how = (
                f"fused online softmax on Hopper tensor cores, wgmma m64n{WG_KEYS}k16 / m64n{self.vd}k16, "
                f"{WG_ROWS} rows x {WG_KEYS} keys per tile"
            )
        elif self.tc:
            how = (
                f"fused online softmax on tensor cores, mma.sync m16n8k16, {TC_ROWS * self.tcm} rows x {TC_KEYS} "
                "keys per tile"
            )
        elif self.flash:
            how = f"fused online softmax, {self.bq} rows x {self.bk} keys per tile, {self.vec}-wide loads"
            if self.splits > 1:
                how += f", keys split over {self.splits} blocks + merge"
        else:
            how = "composition, float32 softmax"
        return f"attention ({kind}{', ' + ', '.join(extra) if extra else ''}; {how})"


def _has(node, name):
    return any(a.name == name for a in node.attribute)


def _static(d):
    return isinstance(d, int)


def select(n: NodeView) -> AttentionSelection | Decline:
    ops = list(n.operands) + [None] * (7 - len(n.operands))
    ops = [o if o is not None else _ABSENT for o in ops]
    if len(n.operands) > 7 or any(o.is_absent for o in ops[:3]):
        return Decline("Attention arity (Q, K and V are required)")
    if not ops[6].is_absent:
        return Decline("nonpad_kv_seqlen (opset 24) is not implemented (ONNX Runtime 1.24 fails on it too)")
    q, k, v, mask, pk, pv = ops[:6]
    dtype = q.dtype
    if dtype not in DTYPES:
        return Decline(f"dtype {dtype} (TPAT lowers float32, float16, bfloat16)")
    for o, what in ((k, "K"), (v, "V"), (pk, "past_key"), (pv, "past_value")):
        if not o.is_absent and o.dtype != dtype:
            return Decline(f"{what} is {o.dtype}, Q is {dtype}")
    used = tuple(bool(x) for x in (list(n.node.output) + [""] * 4)[:4])
    if len(n.node.output) > 4 or not used[0]:
        return Decline("Attention arity (Y is required)")
    for o in n.outputs:
        if o["dtype"] != dtype:
            return Decline(f"output {o['name']} is {o['dtype']}, Q is {dtype}")
    rank = len(q.shape)
    if rank not in (3, 4) or len(k.shape) != rank or len(v.shape) != rank:
        return Decline(f"Q, K, V ranks {len(q.shape)}, {len(k.shape)}, {len(v.shape)} (3 or 4, all equal)")
    qh_attr, kvh_attr = int(n.attr("q_num_heads", 0)), int(n.attr("kv_num_heads", 0))
    if rank == 3:
        if qh_attr <= 0 or kvh_attr <= 0:
            return Decline("3-D inputs need q_num_heads and kv_num_heads > 0")
        qh, kvh = qh_attr, kvh_attr
        hid = [q.shape[2], k.shape[2], v.shape[2]]
        if not all(_static(x) for x in hid):
            return Decline("3-D hidden sizes must be static")
        if hid[0] % qh or hid[1] % kvh or hid[2] % kvh:
            return Decline(f"hidden sizes {hid} are not multiples of the head counts {qh}/{kvh}")
        hd, hk, vd = hid[0] // qh, hid[1] // kvh, hid[2] // kvh
    else:
        qh, kvh, hd, hk, vd = q.shape[1], k.shape[1], q.shape[3], k.shape[3], v.shape[3]
        if not all(_static(x) for x in (qh, kvh, hd, hk, vd, v.shape[1])):
            return Decline("head counts and head sizes must be static")
        if v.shape[1] != kvh:
            return Decline(f"K has {kvh} heads, V {v.shape[1]}")
        if (qh_attr and qh_attr != qh) or (kvh_attr and kvh_attr != kvh):
            return Decline(f"q_num_heads/kv_num_heads {qh_attr}/{kvh_attr} differ from the inputs' {qh}/{kvh}")
    if qh <= 0 or kvh <= 0 or qh % kvh:
        return Decline(f"q heads {qh} are not a multiple of kv heads {kvh}")
    if hd != hk or hd <= 0 or vd <= 0:
        return Decline(f"Q head size {hd}, K head size {hk} (must be equal and > 0)")
    if pk.is_absent != pv.is_absent:
        return Decline("past_key and past_value must come together")
    past = not pk.is_absent
    if past:
        if len(pk.shape) != 4 or len(pv.shape) != 4:
            return Decline("past_key/past_value must be 4-D")
        if pk.shape[1] != kvh or pv.shape[1] != kvh or pk.shape[3] != hd or pv.shape[3] != vd:
            return Decline(f"past shapes {pk.shape}/{pv.shape} do not fit {kvh} kv heads of size {hd}/{vd}")
        if pk.shape[2] != pv.shape[2]:
            return Decline("past_key and past_value sequence lengths differ")
    mkind = None
    if not mask.is_absent:
        if mask.dtype == "bool":
            mkind = "bool"
        elif mask.dtype == dtype:
            mkind = "float"
        else:
            return Decline(f"attn_mask type {mask.dtype} (bool or Q's {dtype})")
        if not 1 <= len(mask.shape) <= 4:
            return Decline(f"attn_mask rank {len(mask.shape)}")
    causal = int(n.attr("is_causal", 0))
    if causal not in (0, 1):
        return Decline(f"is_causal={causal}")
    scale = float(n.attr("scale", 1.0)) if _has(n.node, "scale") else 1.0 / math.sqrt(hd)
    softcap = float(n.attr("softcap", 0.0))
    if softcap < 0:
        return Decline(f"softcap={softcap} (negative)")
    mode = int(n.attr("qk_matmul_output_mode", 0))
    if mode not in (0, 1, 2, 3):
        return Decline(f"qk_matmul_output_mode={mode}")
    if mode == 2 and _has(n.node, "softcap") and softcap == 0:
        return Decline("qk_matmul_output_mode=2 with softcap=0 (ONNX's reference and ONNX Runtime differ)")
    prec = int(n.attr("softmax_precision", 1))
    if prec not in (1, dtypes.DTYPES[dtype].onnx):
        return Decline(f"softmax_precision={prec} (float32 or Q's type; computed in float32)")
    for t in (q, k, v):  # per tensor: the product over all three overflowed at 1024 tokens
        static = [d for d in t.shape if _static(d)]
        if any(d < 0 for d in static) or math.prod(static) >= MAX_ELEMENTS:
            return Decline("sizes out of range")
    lq = q.shape[1 if rank == 3 else 2]
    cur = k.shape[1 if rank == 3 else 2]
    total = cur + pk.shape[2] if past and _static(cur) and _static(pk.shape[2]) else (None if past else cur)
    fplan = None
    if not used[3]:
        fplan = flash_plan(
            hd,
            vd,
            dtypes.size(dtype),
            q.shape[0] if _static(q.shape[0]) else None,
            kvh,
            lq if _static(lq) else None,
            qh // kvh,
            total if _static(total) else None,
        )
    bq, bk, splits, vec = fplan or (16, 32, 1, 1)
    # tensor cores for a block's worth of rows or more (prefill; rows unknown: assumed prefill), else
    # the CUDA-core kernel (flash-decoding for a few rows)
    rows = lq * (qh // kvh) if _static(lq) else None
    tc = fplan is not None and tc_fits(dtype, hd, vd) and (rows is None or rows >= TC_ROWS)
    tcm = 1
    if tc:
        splits = 1
        # 32 rows per warp (128 per block) once a kv group has a full 128-row tile (or its rows are
        # unknown: prefill assumed): each K/V fragment feeds two mma.sync
        tcm = 2 if rows is None or rows >= 2 * TC_ROWS else 1
    wg = (
        tc
        and PLAN_TARGET.get() in WG_TARGETS
        and wg_fits(dtype, hd, vd, scale, mkind, softcap, past, used)
        and (rows is None or rows >= WG_ROWS)
    )
    return AttentionSelection(
        dtype=dtype,
        rank=rank,
        qh=qh,
        kvh=kvh,
        hd=hd,
        vd=vd,
        scale=scale,
        causal=bool(causal),
        softcap=softcap,
        mode=mode,
        mask=mkind,
        past=past,
        outs=used,
        flash=fplan is not None,
        ops=ops[:6],
        bq=bq,
        bk=bk,
        splits=splits,
        vec=vec,
        tc=tc,
        tcm=tcm,
        wg=wg,
    )


class _Absent:
    is_absent, is_param, is_const, shape, dtype = True, False, False, None, None


_ABSENT = _Absent()


def _f32(v):
    dt = str(v.ty.dtype) if hasattr(v, "ty") and hasattr(v.ty, "dtype") else v.dtype
    return v if dt == "float32" else tirx.Cast("float32", v)


def _i64(v):
    return tirx.Cast("int64", v)


def _reader(t, rank, heads, hsize):
    """(b, h, s, d) -> element of a Q/K/V tensor in its layout (3-D: (b, s, h * hsize + d))."""
    if rank == 4:
        return lambda b, h, s, d: t[b, h, s, d]
    return lambda b, h, s, d: t[b, s, h * hsize + d]


def _seq(t, rank):
    return t.shape[2] if rank == 4 else t.shape[1]


def _present_te(past, cur, sel, hsize, name):
    """concat(past, cur) along the sequence, 4-D (b, kvh, P + S, hsize)."""
    rd = _reader(cur, sel.rank, sel.kvh, hsize)
    p = past.shape[2]
    shape = [past.shape[0], sel.kvh, p + _seq(cur, sel.rank), hsize]

    def f(b, h, s, d):
        return tirx.if_then_else(s < p, past[b, h, tirx.min(s, p - 1), d], rd(b, h, tirx.max(s - p, 0), d))

    return te.compute(shape, f, name=name)


def _scores_te(q, kt, sel, k4):
    """S[b, h, i, j] = scale * Q . K in float32 (B, qh, L, T)."""
    rq = _reader(q, sel.rank, sel.qh, sel.hd)
    rk = (lambda b, h, s, d: kt[b, h, s, d]) if k4 else _reader(kt, sel.rank, sel.kvh, sel.hd)
    lq = _seq(q, sel.rank)
    t = kt.shape[2] if k4 else _seq(kt, sel.rank)
    r = sel.qh // sel.kvh
    d = te.reduce_axis((0, sel.hd), name="d")
    dot = te.compute(
        [q.shape[0], sel.qh, lq, t],
        lambda b, h, i, j: te.sum(_f32(rq(b, h, i, d)) * _f32(rk(b, h // r, j, d)), axis=d),
        name="tpat_attention_qk",
    )
    return te.compute(dot.shape, lambda *i: dot(*i) * tirx.const(sel.scale, "float32"), name="tpat_attention_scaled")


def _bias(sel, s, mask, past_len):
    """W(b, h, i, j) of the scaled scores `s`: mask, causal, softcap (float32)."""
    lowest = tirx.const(LOWEST, "float32")
    ninf = tirx.const(-math.inf, "float32")

    def mask_val(b, h, i, j):
        mr = len(mask.shape)
        full = [b, h, i, j][4 - mr :]
        idx = []
        for k, (x, dim) in enumerate(zip(full, mask.shape)):
            last = k == mr - 1
            if last:
                idx.append(tirx.min(tirx.Cast("int64", x), tirx.Cast("int64", dim) - 1))
            elif _static(dim) or isinstance(dim, tirx.IntImm):
                idx.append(tirx.const(0, "int64") if int(dim) == 1 else tirx.Cast("int64", x))
            else:
                idx.append(tirx.Select(dim == 1, tirx.const(0, "int64"), tirx.Cast("int64", x)))
        m = mask[tuple(idx)]
        inside = j < mask.shape[-1]  # shorter masks are padded with -inf / False (ONNX's reference)
        if sel.mask == "bool":
            return tirx.Select(tirx.all(inside, m), tirx.const(0.0, "float32"), lowest)
        return tirx.Select(inside, _f32(m), ninf)

    def biased(b, h, i, j, w=None):
        w = s(b, h, i, j) if w is None else w
        if mask is not None:
            w = w + mask_val(b, h, i, j)
        if sel.causal:
            w = tirx.Select(_i64(j) > _i64(i) + _i64(past_len), lowest, w)
        return w

    def capped(b, h, i, j, w=None):
        w = biased(b, h, i, j, w)
        if sel.softcap > 0:
            c = tirx.const(sel.softcap, "float32")
            w = c * tirx.tanh(w / c)
        return w

    return biased, capped


def _softmax_te(sel, s, mask, past_len):
    """P = softmax_j(W) in float32 (one PrimFunc: max, sum of exp, normalize)."""
    _, capped = _bias(sel, s, mask, past_len)
    shape = s.shape
    w = te.compute(shape, lambda b, h, i, j: capped(b, h, i, j), name="tpat_attention_w")
    j = te.reduce_axis((0, shape[3]), name="j")
    mx = te.compute(shape[:3], lambda b, h, i: te.max(w[b, h, i, j], axis=j), name="tpat_attention_max")
    j2 = te.reduce_axis((0, shape[3]), name="j2")
    sm = te.compute(
        shape[:3], lambda b, h, i: te.sum(tirx.exp(w[b, h, i, j2] - mx[b, h, i]), axis=j2), name="tpat_attention_sum"
    )
    return te.compute(
        shape, lambda b, h, i, jj: tirx.exp(w[b, h, i, jj] - mx[b, h, i]) / sm[b, h, i], name="tpat_attention_p"
    )


def _qk_out_te(sel, s, mask, past_len, p):
    biased, capped = _bias(sel, s, mask, past_len)
    fn = {
        0: lambda *i: s(*i),
        1: lambda *i: biased(*i),
        2: (lambda *i: capped(*i)) if sel.softcap > 0 else (lambda *i: s(*i)),
        3: lambda *i: p(*i),
    }[sel.mode]
    return te.compute(
        s.shape,
        lambda *i: tirx.Cast(sel.dtype, fn(*i)) if sel.dtype != "float32" else fn(*i),
        name="tpat_attention_qk_out",
    )


def _pv_te(p, vt, sel, v4, q):
    """Y in its layout: 4-D (B, qh, L, vd), 3-D (B, L, qh * vd); sum_j P * V in float32."""
    rv = (lambda b, h, s, d: vt[b, h, s, d]) if v4 else _reader(vt, sel.rank, sel.kvh, sel.vd)
    r = sel.qh // sel.kvh
    j = te.reduce_axis((0, p.shape[3]), name="j")

    def acc(b, h, i, e):
        return te.sum(p[b, h, i, j] * _f32(rv(b, h // r, j, e)), axis=j)

    cast = (lambda x: x) if sel.dtype == "float32" else (lambda x: tirx.Cast(sel.dtype, x))
    y = te.compute([p.shape[0], sel.qh, p.shape[2], sel.vd], acc, name="tpat_attention_pv")
    return te.compute(y.shape, lambda *i: cast(y(*i)), name="tpat_attention_y")


def _layout3_te(y, sel):
    """(B, qh, L, vd) -> (B, L, qh * vd): Y of 3-D inputs."""
    vd = sel.vd
    return te.compute(
        [y.shape[0], y.shape[2], sel.qh * vd], lambda b, i, c: y[b, c // vd, i, c % vd], name="tpat_attention_y3"
    )


# --- the fused kernel (flash-attention style): no L x T score matrix in memory ----------------------
FLASH_THREADS = 128
SMEM_LIMIT = 48 * 1024  # static shared memory per block
TARGET_BLOCKS = 4 * 132  # split the keys until the grid has about this many blocks (4 per H100/H200 SM)
MAX_SPLITS = 64
MERGE_THREADS = 128


def _pow2ceil(n):
    p = 1
    while p < n:
        p *= 2
    return p


def flash_tiles(hd, vd, rows=None):
    """(BQ rows, BK keys) of the fused kernel for head sizes hd/vd, or None when no tile fits in
    48 KiB of static shared memory (q rows, a K and a V tile, scores and probabilities; float32).
    BQ is the query rows of a kv group (L x r) rounded up to a power of two when they are known and
    fewer than 16 (decode: 1 x r rows), else 16."""
    bq0 = 16 if rows is None else max(1, min(16, _pow2ceil(rows)))
    for bq, bk in ((bq0, 32), (bq0, 16), (min(bq0, 8), 16), (min(bq0, 8), 8)):
        smem = 4 * (bq * hd + bk * (hd + 1) + bk * vd + 2 * bq * (bk + 1) + 3 * bq)
        if smem <= SMEM_LIMIT:
            return bq, bk
    return None


def flash_plan(hd, vd, elem, batch, kvh, lq, r, total):
    """(bq, bk, splits, vec) of the fused kernel (None when no tile fits). `batch`, `lq`, `total`
    are ints when static, else None. Splits: the keys of a (batch, kv head, row tile) cut over this
    many blocks (flash-decoding) when the row tiles alone give fewer than TARGET_BLOCKS blocks; each
    split a whole number of key tiles. vec: elements per load of Q/K/V (16 bytes where the head
    sizes allow)."""
    tiles = flash_tiles(hd, vd, lq * r if lq is not None else None)
    if tiles is None:
        return None
    bq, bk = tiles
    groups = max(1, (batch or 1) * kvh * (-(-lq * r // bq) if lq is not None else 1))  # (a 0 dim: 1)
    splits = 1
    if groups < TARGET_BLOCKS:
        splits = min(MAX_SPLITS, -(-TARGET_BLOCKS // groups))
        if total is not None:
            ktiles = max(1, -(-total // bk))
            splits = max(1, min(splits, ktiles))
            splits = -(-ktiles // -(-ktiles // splits))  # every split a whole, equal number of tiles
    vec = 16 // elem
    while vec > 1 and (hd % vec or vd % vec):
        vec //= 2
    return bq, bk, splits, vec


def _vec(base, vec):
    """Index of `vec` consecutive elements from `base` (the index itself when vec is 1)."""
    if isinstance(base, int):
        base = tirx.const(base, "int32")
    dt = str(base.ty.dtype) if hasattr(base, "ty") and hasattr(base.ty, "dtype") else base.dtype
    return base if vec == 1 else tirx.Ramp(base, tirx.const(1, dt), vec)


def _vload(t, rank, b, h, s, d0, hsize, vec):
    """`vec` consecutive elements d0.. of head h, position s of a Q/K/V tensor in its layout."""
    if rank == 4:
        return t[b, h, s, _vec(d0, vec)]
    return t[b, s, _vec(h * tirx.const(hsize, "int64") + d0, vec)]


def _key_to_reg(reg, rix, rank, cur_t, past_t, pres, b, g, key, d0, hs, vec, past_len, last_tile):
    """`vec` elements d0.. of key/value position `key` (kv head g of batch b) into reg[rix]: from the
    past below past_len, else from the current input (rank 3 or 4); present written from the same
    registers when `pres` is given and `last_tile` holds (the flash and tensor-core kernels' loads)."""
    if past_t is None:
        T.buffer_store(reg, _vload(cur_t, rank, b, g, key, d0, hs, vec), [rix])
    else:
        with T.If(key < past_len):
            with T.Then():
                T.buffer_store(reg, past_t[b, g, key, _vec(d0, vec)], [rix])
            with T.Else():
                T.buffer_store(reg, _vload(cur_t, rank, b, g, key - past_len, d0, hs, vec), [rix])
    if pres is not None:
        with T.If(last_tile):
            with T.Then():
                T.buffer_store(pres, reg[rix], [b, g, key, _vec(d0, vec)])


def _flash_ir(sel, ins, outs, mode):
    """IR of the fused kernel (+ the merge kernel when the keys are split). A block owns kv head g of
    batch b, BQ rows and split s of the key tiles; row rho of the group's r * L rows is query
    rho // r of q head g * r + rho % r (the r q heads of a GQA group share every K/V read). Per K/V
    tile of BK keys: K and V read with `vec`-wide (16-byte) loads straight from past / current K, V
    (present_key / present_value written from the same registers by the last row tile's blocks),
    widened into shared memory; a thread per (row, key) score (dot over the head in float32, scale,
    mask, causal, softcap), a thread per row updates the running max and sum (online softmax), then
    each thread rescales its (row, column) accumulators and adds P V. Causal key tiles above a row
    tile's last query are skipped when nothing else (mask, softcap) can make them count. One split:
    Y = acc / sum. Several: each block writes (max, sum, acc) of its rows to the workspace and a
    second kernel, a thread per output element, merges the splits (flash-decoding)."""
    q, k, v = ins[0], ins[1], ins[2]
    rest = list(ins[3:])
    mask = rest.pop(0) if sel.mask else None
    pk, pv = (rest.pop(0), rest.pop(0)) if sel.past else (None, None)
    outs = list(outs)
    y = outs.pop(0)
    pres_k = outs.pop(0) if sel.outs[1] else None
    pres_v = outs.pop(0) if sel.outs[2] else None
    S = sel.splits
    ws_acc, ws_ml = (outs[0], outs[1]) if S > 1 else (None, None)
    gpu = mode == "gpu"
    nt = FLASH_THREADS
    bq, bk, vec = sel.bq, sel.bk, sel.vec
    hd, vd, r = sel.hd, sel.vd, sel.qh // sel.kvh
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    ninf = f32(-math.inf)
    bsz = tirx.Cast("int64", q.shape[0])
    lq = tirx.Cast("int64", _seq(q, sel.rank))
    cur = tirx.Cast("int64", _seq(k, sel.rank))
    past_len = tirx.Cast("int64", pk.shape[2]) if pk is not None else i64(0)
    tot = past_len + cur
    rows = lq * i64(r)
    tiles = (rows + i64(bq - 1)) // i64(bq)
    ktiles = (tot + i64(bk - 1)) // i64(bk)
    chunk = (ktiles + i64(S - 1)) // i64(S)
    na = -(-bq * vd // nt)  # accumulators per thread
    _, capped = _bias(sel, None, mask, past_len)
    # causal tiles above the last query only hold float32's lowest: skipping them is exact unless a
    # mask (a row it masks everywhere) or softcap (lowest becomes -softcap) lets them count
    skip = sel.causal and sel.mask is None and sel.softcap == 0
    writes_present = pres_k is not None or pres_v is not None
    sh = "shared" if gpu else "global"

    with IRBuilder() as ib:
        th = Threads(mode, bsz * i64(sel.kvh) * tiles * i64(S), nt)
        with th as bx:
            blk = tirx.Cast("int64", bx)
            split = blk % i64(S)
            tile = (blk // i64(S)) % tiles
            g = (blk // (i64(S) * tiles)) % i64(sel.kvh)
            b = blk // (i64(S) * tiles * i64(sel.kvh))
            last_tile = tile == tiles - i64(1)
            q_s = T.decl_buffer([bq * hd], "float32", scope=sh)
            k_s = T.decl_buffer([bk * (hd + 1)], "float32", scope=sh)
            v_s = T.decl_buffer([bk * vd], "float32", scope=sh)
            s_s = T.decl_buffer([bq * (bk + 1)], "float32", scope=sh)
            p_s = T.decl_buffer([bq * (bk + 1)], "float32", scope=sh)
            # running max, sum, correction per row: three buffers (the sync planner cannot tell
            # st[i] from st[bq + i'] in one buffer and would ask for a barrier inside a condition)
            m_s, l_s, c_s = (T.decl_buffer([bq], "float32", scope=sh) for _ in range(3))
            acc = T.decl_buffer([na] if gpu else [nt * na], "float32", scope="local" if gpu else "global")
            dot = T.decl_buffer([1], "float32", scope="local" if gpu else "global")
            rsum = T.decl_buffer([1], "float32", scope="local" if gpu else "global")
            reg = T.decl_buffer([vec], sel.dtype, scope="local" if gpu else "global")
            rix = _vec(tirx.const(0, "int32"), vec)

            def A(tx, a):
                return a if gpu else tirx.Cast("int32", tx) * na + a

            def row_of(i):
                rho = tile * i64(bq) + tirx.Cast("int64", i)
                return rho, g * i64(r) + rho % i64(r), rho // i64(r)  # rho, q head, query

            def strided(tx, n, body):
                """body(idx) for idx = tx, tx + nt, ... < n."""
                with T.serial(0, -(-n // nt)) as it:
                    idx = it * nt + tirx.Cast("int32", tx)
                    with T.If(idx < n):
                        with T.Then():
                            body(idx)

            def init(tx):
                def ld(idx):
                    i, c = idx // (hd // vec), idx % (hd // vec)
                    rho, h, qi = row_of(i)
                    d0 = tirx.Cast("int64", c * vec)
                    with T.If(rho < rows):
                        with T.Then():
                            T.buffer_store(reg, _vload(q, sel.rank, b, h, qi, d0, hd, vec), [rix])
                            for u in range(vec):
                                T.buffer_store(q_s, _f32(reg[u]), [i * hd + c * vec + u])
                        with T.Else():
                            for u in range(vec):
                                T.buffer_store(q_s, f32(0), [i * hd + c * vec + u])

                strided(tx, bq * hd // vec, ld)
                t = tirx.Cast("int32", tx)
                with T.If(t < bq):
                    with T.Then():
                        T.buffer_store(m_s, ninf, [t])
                        T.buffer_store(l_s, f32(0), [t])
                with T.serial(0, na) as a:
                    T.buffer_store(acc, f32(0), [A(tx, a)])

            th.each_thread(init)
            th.barrier()
            if skip:
                rho_max = tirx.min(tile * i64(bq) + i64(bq - 1), rows - i64(1))
                seen = (rho_max // i64(r) + past_len + i64(bk)) // i64(bk)  # tiles holding keys <= query
                klim = tirx.min(ktiles, seen)
                if writes_present:  # the last row tile's blocks read (and write) every key
                    klim = tirx.Select(last_tile, ktiles, klim)
            else:
                klim = ktiles
            kbeg = split * chunk
            kend = tirx.min(kbeg + chunk, klim)
            with T.serial(0, tirx.max(kend - kbeg, i64(0))) as it0:
                key0 = (kbeg + tirx.Cast("int64", it0)) * i64(bk)

                def load(tx):
                    def ld(idx, hs, cur_t, past_t, pres, dst, stride):
                        j, c = idx // (hs // vec), idx % (hs // vec)
                        key = key0 + tirx.Cast("int64", j)
                        d0 = tirx.Cast("int64", c * vec)
                        with T.If(key < tot):
                            with T.Then():
                                _key_to_reg(
                                    reg, rix, sel.rank, cur_t, past_t, pres, b, g, key, d0, hs, vec, past_len, last_tile
                                )
                                for u in range(vec):
                                    T.buffer_store(dst, _f32(reg[u]), [j * stride + c * vec + u])
                            with T.Else():
                                for u in range(vec):
                                    T.buffer_store(dst, f32(0), [j * stride + c * vec + u])

                    strided(tx, bk * hd // vec, lambda idx: ld(idx, hd, k, pk, pres_k, k_s, hd + 1))
                    strided(tx, bk * vd // vec, lambda idx: ld(idx, vd, v, pv, pres_v, v_s, vd))

                th.each_thread(load)
                th.barrier()

                def scores(tx):
                    def one(idx):
                        i, j = idx // bk, idx % bk
                        rho, h, qi = row_of(i)
                        key = key0 + tirx.Cast("int64", j)
                        T.buffer_store(dot, f32(0), [0])
                        with T.serial(0, hd) as d:
                            T.buffer_store(dot, dot[0] + q_s[i * hd + d] * k_s[j * (hd + 1) + d], [0])
                        w = capped(b, h, tirx.min(qi, lq - 1), tirx.min(key, tot - 1), dot[0] * f32(sel.scale))
                        ok = tirx.all(rho < rows, key < tot)
                        T.buffer_store(s_s, tirx.if_then_else(ok, w, ninf), [i * (bk + 1) + j])

                    strided(tx, bq * bk, one)

                th.each_thread(scores)
                th.barrier()

                def stats(tx):
                    # registers only inside the loops (the sync planner must see no shared write it
                    # could take for a cross-thread hazard): max, then sum of exp into p_s
                    i = tirx.Cast("int32", tx)
                    with T.If(i < bq):
                        with T.Then():
                            T.buffer_store(dot, m_s[i], [0])
                            with T.serial(0, bk) as j:
                                T.buffer_store(dot, tirx.max(dot[0], s_s[i * (bk + 1) + j]), [0])
                            mx = dot[0]
                            safe = tirx.Select(mx == ninf, f32(0), mx)
                            T.buffer_store(c_s, tirx.exp(m_s[i] - safe), [i])
                            T.buffer_store(m_s, mx, [i])
                            T.buffer_store(rsum, f32(0), [0])  # (dot keeps the max: `safe` reads it)
                            with T.serial(0, bk) as j:
                                pj = tirx.exp(s_s[i * (bk + 1) + j] - safe)
                                T.buffer_store(p_s, pj, [i * (bk + 1) + j])
                                T.buffer_store(rsum, rsum[0] + pj, [0])
                            T.buffer_store(l_s, l_s[i] * c_s[i] + rsum[0], [i])

                th.each_thread(stats)
                th.barrier()

                def pv_(tx):
                    with T.serial(0, na) as a:
                        idx = a * nt + tirx.Cast("int32", tx)
                        with T.If(idx < bq * vd):
                            with T.Then():
                                i, e = idx // vd, idx % vd
                                T.buffer_store(acc, acc[A(tx, a)] * c_s[i], [A(tx, a)])
                                with T.serial(0, bk) as j:
                                    T.buffer_store(
                                        acc,
                                        acc[A(tx, a)] + p_s[i * (bk + 1) + j] * v_s[j * vd + e],
                                        [A(tx, a)],
                                    )

                th.each_thread(pv_)
                th.barrier()

            def write(tx):
                if S > 1:  # the block's partial state: (max, sum) per row, acc per (row, column)
                    t = tirx.Cast("int32", tx)
                    with T.If(t < bq):
                        with T.Then():
                            base = (blk * i64(bq) + tirx.Cast("int64", t)) * i64(2)
                            T.buffer_store(ws_ml, m_s[t], [base])
                            T.buffer_store(ws_ml, l_s[t], [base + i64(1)])
                with T.serial(0, na) as a:
                    idx = a * nt + tirx.Cast("int32", tx)
                    with T.If(idx < bq * vd):
                        with T.Then():
                            if S > 1:
                                T.buffer_store(ws_acc, acc[A(tx, a)], [blk * i64(bq * vd) + tirx.Cast("int64", idx)])
                            else:
                                i, e = idx // vd, idx % vd
                                rho, h, qi = row_of(i)
                                with T.If(rho < rows):
                                    with T.Then():
                                        val = acc[A(tx, a)] / l_s[i]
                                        _store_y(sel, y, val, b, h, qi, tirx.Cast("int64", e))

            th.each_thread(write)
    main = ib.get()
    if S == 1:
        return main
    return tirx.SeqStmt([main, _merge_ir(sel, y, ws_acc, ws_ml, bsz, rows, tiles, mode)])


def _store_y(sel, y, val, b, h, qi, e):
    val = val if sel.dtype == "float32" else tirx.Cast(sel.dtype, val)
    if sel.rank == 4:
        T.buffer_store(y, val, [b, h, qi, e])
    else:
        T.buffer_store(y, val, [b, qi, h * tirx.const(sel.vd, "int64") + e])


def _merge_ir(sel, y, ws_acc, ws_ml, bsz, rows, tiles, mode):
    """The merge of the splits: a thread per (batch, kv head, row, column) of Y; M = the splits'
    largest max, Y = sum_s acc_s exp(m_s - M) / sum_s l_s exp(m_s - M). Reads S x (2 + 1) floats."""
    S, bq, vd, r = sel.splits, sel.bq, sel.vd, sel.qh // sel.kvh
    gpu = mode == "gpu"
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    ninf = f32(-math.inf)
    total = bsz * i64(sel.kvh) * tiles * i64(bq * vd)
    nt = MERGE_THREADS
    with IRBuilder() as ib:
        th = Threads(mode, (total + i64(nt - 1)) // i64(nt), nt)
        with th as bx:
            st = T.decl_buffer([3], "float32", scope="local" if gpu else "global")

            def body(tx):
                idx = tirx.Cast("int64", bx) * i64(nt) + tirx.Cast("int64", tx)
                e = idx % i64(vd)
                i = (idx // i64(vd)) % i64(bq)
                grp = idx // i64(bq * vd)  # (b, g, tile)
                tile = grp % tiles
                g = (grp // tiles) % i64(sel.kvh)
                b = grp // (tiles * i64(sel.kvh))
                rho = tile * i64(bq) + i
                with T.If(tirx.all(idx < total, rho < rows)):
                    with T.Then():
                        ml = lambda s, w: ws_ml[((grp * i64(S) + s) * i64(bq) + i) * i64(2) + i64(w)]  # noqa: E731
                        T.buffer_store(st, ninf, [0])
                        with T.serial(0, S) as s:
                            T.buffer_store(st, tirx.max(st[0], ml(tirx.Cast("int64", s), 0)), [0])
                        safe = tirx.Select(st[0] == ninf, f32(0), st[0])
                        T.buffer_store(st, f32(0), [1])
                        T.buffer_store(st, f32(0), [2])
                        with T.serial(0, S) as s:
                            s64 = tirx.Cast("int64", s)
                            wgt = tirx.exp(ml(s64, 0) - safe)
                            T.buffer_store(st, st[1] + ml(s64, 1) * wgt, [1])
                            a = ws_acc[((grp * i64(S) + s64) * i64(bq) + i) * i64(vd) + e]
                            T.buffer_store(st, st[2] + a * wgt, [2])
                        _store_y(sel, y, st[2] / st[1], b, g * i64(r) + rho % i64(r), rho // i64(r), e)

            th.each_thread(body)
    return ib.get()


# --- the tensor-core kernel (prefill): mma.sync m16n8k16, float32 accumulators -----------------------
TC_ROWS = 64  # query rows per block and row group per warp: 4 warps x 16 (the kernel takes 1 or 2)
TC_KEYS = 64  # keys per K/V tile (one K and one V buffer: each loads while the other is used)
TC_THREADS = 128
_MMA_TYPE = {"float16": "fp16", "bfloat16": "bf16"}


def tc_fits(dtype, hd, vd):
    """The tensor-core kernel takes fp16 / bf16 with head sizes multiples of 16 up to 128 (the K/V
    tiles in 48 KiB of static shared memory, Q and O fragments in registers)."""
    return dtype in _MMA_TYPE and hd % 16 == 0 and vd % 16 == 0 and hd <= 128 and vd <= 128


def _tree(op, xs):
    """op over xs as a balanced tree (a chain of len(xs) dependent instructions becomes log2 deep)."""
    while len(xs) > 1:
        xs = [op(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]
    return xs[0]


def _heavy_first(bx, bsz, kvh, tiles):
    """(row tile, kv head, batch) of block bx in the tensor-core kernels' grid order: the last row
    tiles of every (batch, kv head) first, the row tile the slowest index (under causal masking they
    read the most key tiles); the second half of the grid in reverse (lightest first): a GPU's second
    wave of resident blocks then pairs each heavy block of the first wave with a light one on its SM
    (H200, 128 rows, 2 blocks per SM: 53.5 -> 48.6 us against plain longest-first)."""
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    blk = tirx.Cast("int64", bx)
    nb = bsz * kvh * tiles
    half = (nb + i64(1)) // i64(2)
    blk = tirx.Select(blk < half, blk, nb - i64(1) - (blk - half))
    return tiles - i64(1) - blk // (bsz * kvh), blk % kvh, (blk // kvh) % bsz


def _tc_ir(sel, ins, outs, mode):
    """IR of the tensor-core kernel. A block of 4 warps owns kv head g of batch b and 64 M of the
    group's r * L rows (row rho: query rho // r of q head g * r + rho % r); warp w owns M row groups
    of 16 (rows 16 M w + 16 m ..), M = sel.tcm. K and V in tiles of 64 keys, one buffer each, fetched
    by cp.async (16 bytes, no registers, zero-fill past the end): V(kt) lands while S = Q K(kt)^T and
    the softmax compute, K(kt + 1) while O += P V(kt); past keys and the present outputs go through
    registers (the last row tile's blocks write present_key / present_value from them). Rows padded
    by 8 elements: the ldmatrix.x4 fragment loads (K plain, V .trans; two B fragments each) are free
    of bank conflicts. M = 1: Q staged through the K buffer into A fragments (registers, the whole
    kernel), 34.8 KiB of static shared memory. M = 2 (FlashAttention-2's 128 rows x 64 keys): Q
    stays in its own shared buffer and its A fragments are loaded by ldmatrix per k step (registers
    for 32 rows of O and S instead), 68 KiB of dynamic shared memory; each K/V fragment then feeds
    two mma.sync (half the ldmatrix and cp.async work per row).
    S = Q K^T by mma.sync m16n8k16 (fp16/bf16 in, float32 out); scale, mask, causal, softcap on the
    fragments; online softmax in registers in log2 units (M = 2: a tile with no masked element keeps
    the raw scores, the row max is taken on them and scale * log2 e is folded into exp2's argument,
    one FFMA; other tiles are scaled, masked and capped first); a thread holds 2 rows x 16 keys per row
    group; row max over the 4 lanes of a quad by shuffles; B fragments double-buffered (the ldmatrix
    of step s + 1 issued before the mma.sync of step s); P rounded to Q's type is the A operand of
    O += P V (the accumulator layout of S is the A layout of P), the row sum is of the float32 P.
    Y = O / sum. Causal key tiles above the block's last query are skipped when exact.

    mode "cpu" (LLVM): the same fragment loads and index arithmetic with serial loops for the
    threads; mma.sync is emulated lane by lane from the PTX fragment layouts (each lane gathers the
    A/B elements of its 4 outputs from the lanes that hold them) and the quad shuffles read the
    neighbour lane's value from the previous thread loop, so the CPU check exercises the layouts."""
    q, k, v = ins[0], ins[1], ins[2]
    rest = list(ins[3:])
    mask = rest.pop(0) if sel.mask else None
    pk, pv = (rest.pop(0), rest.pop(0)) if sel.past else (None, None)
    outs = list(outs)
    y = outs.pop(0)
    pres_k = outs.pop(0) if sel.outs[1] else None
    pres_v = outs.pop(0) if sel.outs[2] else None
    gpu = mode == "gpu"
    M = sel.tcm
    nt, BQ, BK = TC_THREADS, TC_ROWS * M, TC_KEYS
    hd, vd, r = sel.hd, sel.vd, sel.qh // sel.kvh
    dt = sel.dtype
    mty = _MMA_TYPE[dt]
    vec = 8
    hs_k, hs_v = hd + 8, vd + 8  # padded shared-memory rows (halves)
    nkk = hd // 16  # k steps of S = Q K^T
    nnv = vd // 8  # n tiles of O
    NS, NP, NO = BK // 8 * 4, BK // 16 * 8, nnv * 4  # S, P, O registers per thread and row group
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    ninf = f32(-math.inf)
    bsz = tirx.Cast("int64", q.shape[0])
    lq = tirx.Cast("int64", _seq(q, sel.rank))
    cur = tirx.Cast("int64", _seq(k, sel.rank))
    past_len = tirx.Cast("int64", pk.shape[2]) if pk is not None else i64(0)
    tot = past_len + cur
    rows = lq * i64(r)
    tiles = (rows + i64(BQ - 1)) // i64(BQ)
    ktiles = (tot + i64(BK - 1)) // i64(BK)
    _, capped = _bias(sel, None, mask, past_len)
    skip = sel.causal and sel.mask is None and sel.softcap == 0
    writes_present = pres_k is not None or pres_v is not None
    # shared memory: M = 1 static (34.8 KiB), M = 2 dynamic (over the 48 KiB static limit)
    sh = ("shared" if M == 1 else "shared.dyn") if gpu else "global"
    reg_scope = "local" if gpu else "global"
    # unmasked tiles keep the raw scores, scale * log2 e folded into exp2 (needs scale > 0: the row
    # max of the raw scores is then the scaled row max's); M = 1 only without it stays at 168
    # registers (3 blocks per SM; 175 with it)
    fold = sel.mask is None and sel.softcap == 0 and sel.scale > 0 and M == 2

    with IRBuilder() as ib:
        th = Threads(mode, bsz * i64(sel.kvh) * tiles, nt)
        with th as bx:
            tile, g, b = _heavy_first(bx, bsz, i64(sel.kvh), tiles)
            last_tile = tile == tiles - i64(1)
            # one K and one V tile; Q is staged in the K buffer first (M = 1) or has its own (M = 2)
            k_h = T.decl_buffer([(max(BK, BQ) if M == 1 else BK) * hs_k], dt, scope=sh)
            v_h = T.decl_buffer([BK * hs_v], dt, scope=sh)
            q_h = k_h if M == 1 else T.decl_buffer([BQ * hs_k], dt, scope=sh)

            def regs(n, dtype):
                """n registers per thread (CPU: an array over the block's threads)."""
                return T.decl_buffer([n] if gpu else [nt * n], dtype, scope=reg_scope)

            qf = regs(nkk * 8 if M == 1 else 32, dt)  # Q A fragments (M = 2: 2 sets x 2 row groups)
            sf = regs(M * NS, "float32")  # S / P accumulators: 8 key tiles x 4 per row group
            pa = regs(M * NP, dt)  # P A fragments
            of = regs(M * NO, "float32")  # O accumulators
            bf = regs(16, dt)  # two B fragments (one ldmatrix.x4), two sets: step s + 1 loads while s computes
            st = regs(M * 8, "float32")  # per row group m and row hi: m, l, reduction scratch, correction
            xch = T.decl_buffer([1] if gpu else [nt * 2 * M], "float32", scope=reg_scope)  # CPU shuffles
            reg = T.decl_buffer([vec], dt, scope=reg_scope)
            rix = _vec(i32(0), vec)

            def R(tx, n, i):
                return i if gpu else tirx.Cast("int32", tx) * n + i

            def ex2_to(buf, i, x):
                """buf[i] = 2^x: ex2.approx.ftz.f32 on the GPU (the plugin build has no --use_fast_math,
                where exp2f is a longer exact sequence with more registers), exp2 on the CPU."""
                if gpu:
                    T.evaluate(T.ptx["ex2.approx.ftz.f32"](buf[i], x))
                else:
                    T.buffer_store(buf, tirx.exp2(x), [i])

            def pipelined(n_out, n_in, load, compute):
                """load(o, i, off) then compute(o, i, off) for the steps (o, i) of an n_out x n_in grid, the
                B fragments at bf[off..off + 8]. GPU: unrolled, step s + 1's fragments loaded into the other
                set before step s's mma.sync (ldmatrix latency behind the tensor cores); CPU: serial loops,
                one set (the emulation has no latency)."""
                if not gpu:
                    with T.serial(0, n_out) as o:
                        with T.serial(0, n_in) as i:
                            load(o, i, 0)
                            compute(o, i, 0)
                    return
                steps = [(o, i) for o in range(n_out) for i in range(n_in)]
                load(*steps[0], 0)
                for s_, st_ in enumerate(steps):
                    if s_ + 1 < len(steps):
                        load(*steps[s_ + 1], 8 * ((s_ + 1) % 2))
                    compute(*st_, 8 * (s_ % 2))

            def lane_of(tx):
                t32 = tirx.Cast("int32", tx)
                return t32 // 32, t32 % 32  # warp, lane

            def row_of(w, lane, m, hi):
                rho = tile * i64(BQ) + tirx.Cast("int64", w * (16 * M) + m * 16 + lane // 4 + 8 * hi)
                return rho, g * i64(r) + rho % i64(r), rho // i64(r)

            def strided(tx, n, body):
                with T.serial(0, -(-n // nt)) as it:
                    idx = it * nt + tirx.Cast("int32", tx)
                    with T.If(idx < n):
                        with T.Then():
                            body(idx)

            def mma(tx, a_buf, a_n, a_off, c_buf, c_n, c_off, b_off):
                """C[c_off..+4] += A[a_off..+8] x B(bf[b_off..+4]) of the warp (m16n8k16, row.col); a_n,
                c_n: the registers per thread of A's and C's buffers."""
                if gpu:
                    T.evaluate(
                        T.ptx_legacy.mma(
                            "m16n8k16",
                            "row",
                            "col",
                            mty,
                            mty,
                            "fp32",
                            a_buf.data,
                            a_off,
                            bf.data,
                            b_off,
                            c_buf.data,
                            c_off,
                            False,
                            dtype="float32",
                        )
                    )
                    return
                w, lane = lane_of(tx)
                gid, tig = lane // 4, lane % 4
                for c in range(4):
                    row = gid + 8 * (c // 2)
                    col = tig * 2 + (c % 2)
                    with T.serial(0, 16) as kx:
                        a_lane = w * 32 + (row % 8) * 4 + (kx % 8) // 2
                        a_i = (kx % 2) + 2 * (row // 8) + 4 * (kx // 8)
                        b_lane = w * 32 + col * 4 + (kx % 8) // 2
                        b_i = (kx % 2) + 2 * (kx // 8)
                        prod = _f32(a_buf[a_lane * a_n + a_off + a_i]) * _f32(bf[b_lane * 16 + b_off + b_i])
                        ci = R(tx, c_n, c_off + c)
                        T.buffer_store(c_buf, c_buf[ci] + prod, [ci])

            def ldsm(tx, trans, src, addr, dst, dst_n, off):
                """dst[off..off + 8] = ldmatrix.x4 (.trans) of the warp from shared memory src: lane l supplies
                the address addr(l) (elements) of row l % 8 of matrix l // 8; register j of lane l is
                matrix j's row l // 4, columns 2 (l % 4), +1 (trans: column l // 4, rows 2 (l % 4), +1).
                dst_n: dst's registers per thread. CPU: each lane reads through the address of the lane
                that supplies its row."""
                if gpu:
                    lane = tirx.Cast("int32", tx) % 32
                    T.evaluate(
                        T.ptx_legacy.ldmatrix(
                            trans, 4, ".b16", dst.data, off, src.access_ptr("r"), addr(lane), dtype=dt
                        )
                    )
                    return
                w, lane = lane_of(tx)
                for j in range(4):
                    for u in range(2):
                        if trans:
                            val = src[addr(8 * j + (lane % 4) * 2 + u) + lane // 4]
                        else:
                            val = src[addr(8 * j + lane // 4) + (lane % 4) * 2 + u]
                        T.buffer_store(dst, val, [R(tx, dst_n, off + 2 * j + u)])

            def quad(op, k_in, k_out):
                """st[k_out] = op over the quad's 4 lanes of st[k_in] (per row group m and row hi:
                k + 4 hi + 8 m)."""
                slots = [4 * hi + 8 * m for m in range(M) for hi in range(2)]
                if gpu:
                    mask_ = tirx.const(0xFFFFFFFF, "uint32")
                    for s_ in slots:
                        x = st[k_in + s_]
                        for d in (1, 2):
                            y_ = tvm.ir.Call(
                                "tirx.tvm_warp_shuffle_xor", [mask_, x, i32(d), i32(32), i32(32)], ret_ty="float32"
                            )
                            T.buffer_store(st, op(x, y_), [k_out + s_])
                            x = st[k_out + s_]
                    return
                ns = len(slots)
                for d in (1, 2):
                    src = k_in if d == 1 else k_out

                    def put(tx_):
                        for n_, s_ in enumerate(slots):
                            T.buffer_store(xch, st[R(tx_, 8 * M, src + s_)], [tirx.Cast("int32", tx_) * ns + n_])

                    def get(tx_):
                        other = tirx.bitwise_xor(tirx.Cast("int32", tx_), i32(d))
                        for n_, s_ in enumerate(slots):
                            mine = st[R(tx_, 8 * M, src + s_)]
                            T.buffer_store(st, op(mine, xch[other * ns + n_]), [R(tx_, 8 * M, k_out + s_)])

                    th.each_thread(put)
                    th.each_thread(get)

            # Q: into shared memory (M = 1: the K buffer, then into A fragments for the whole kernel)
            def ldq(tx):
                def one(idx):
                    i, c = idx // (hd // vec), idx % (hd // vec)
                    rho = tile * i64(BQ) + tirx.Cast("int64", i)
                    h, qi = g * i64(r) + rho % i64(r), rho // i64(r)
                    with T.If(rho < rows):
                        with T.Then():
                            T.buffer_store(
                                reg, _vload(q, sel.rank, b, h, qi, tirx.Cast("int64", c * vec), hd, vec), [rix]
                            )
                        with T.Else():
                            for u in range(vec):
                                T.buffer_store(reg, tirx.const(0, dt), [u])
                    T.buffer_store(q_h, reg[rix], [_vec(i * hs_k + c * vec, vec)])

                strided(tx, BQ * hd // vec, one)

            th.each_thread(ldq)
            th.barrier()

            def qfrag(tx):
                w, lane = lane_of(tx)
                gid, tig = lane // 4, lane % 4
                if M == 1:
                    for kk in range(nkk):
                        for a in range(4):  # a0a1: (g, 2t), a2a3: (g+8, 2t), a4a5: (g, 2t+8), a6a7: (g+8, 2t+8)
                            row = w * 16 + gid + 8 * (a % 2)
                            col = kk * 16 + tig * 2 + 8 * (a // 2)
                            T.buffer_store(
                                qf, k_h[_vec(row * hs_k + col, 2)], [_vec(R(tx, nkk * 8, kk * 8 + a * 2), 2)]
                            )
                for i in range(M * NO):
                    T.buffer_store(of, f32(0), [R(tx, M * NO, i)])
                for m in range(M):
                    for hi in range(2):
                        T.buffer_store(st, ninf, [R(tx, 8 * M, 0 + 4 * hi + 8 * m)])
                        T.buffer_store(st, f32(0), [R(tx, 8 * M, 1 + 4 * hi + 8 * m)])

            th.each_thread(qfrag)
            if M == 1:
                th.barrier()  # every warp has its Q fragments before K overwrites them
            if skip:
                rho_max = tirx.min(tile * i64(BQ) + i64(BQ - 1), rows - i64(1))
                klim = tirx.min(ktiles, (rho_max // i64(r) + past_len + i64(BK)) // i64(BK))
                if writes_present:
                    klim = tirx.Select(last_tile, ktiles, klim)
            else:
                klim = ktiles

            def load(tx, kt, kv):
                """K (kv 0) or V (kv 1) tile kt into its buffer: cp.async (16 bytes, no registers)
                where the keys are the current input's and no present is written, else loads through
                registers; keys past the end or tiles from klim on are zeros."""
                key0 = tirx.Cast("int64", kt) * i64(BK)

                def ld(idx, hs, cur_t, past_t, pres, dst, stride):
                    j, c = idx // (hs // vec), idx % (hs // vec)
                    key = key0 + tirx.Cast("int64", j)
                    d0 = tirx.Cast("int64", c * vec)
                    dst_i = j * stride + c * vec
                    ok = tirx.all(key < tot, kt < klim)
                    if gpu and past_t is None and pres is None:
                        # cp.async with src-size 0 where out of range fills zeros: no store to shared
                        # memory in the loop, so the sync pass puts no barrier into the load loops
                        # (the source clamped to the last key: a valid address, nothing read)
                        src_i = _vload(cur_t, sel.rank, b, g, tirx.min(key, tot - i64(1)), d0, hs, vec).indices
                        src = cur_t.ptr_to(list(src_i[:-1]) + [src_i[-1].base])
                        size = tirx.Cast("uint32", tirx.Select(ok, i32(16), i32(0)))
                        T.evaluate(T.ptx["cp.async.cg.shared.global"](dst.ptr_to([dst_i]), src, 16, size))
                        return
                    with T.If(ok):
                        with T.Then():
                            if past_t is None and pres is None:
                                val = _vload(cur_t, sel.rank, b, g, key, d0, hs, vec)
                                T.buffer_store(dst, val, [_vec(dst_i, vec)])
                            else:
                                _key_to_reg(
                                    reg, rix, sel.rank, cur_t, past_t, pres, b, g, key, d0, hs, vec, past_len, last_tile
                                )
                                T.buffer_store(dst, reg[rix], [_vec(dst_i, vec)])
                        with T.Else():
                            for u in range(vec):
                                T.buffer_store(reg, tirx.const(0, dt), [u])
                            T.buffer_store(dst, reg[rix], [_vec(dst_i, vec)])

                if kv == 0:
                    strided(tx, BK * hd // vec, lambda idx: ld(idx, hd, k, pk, pres_k, k_h, hs_k))
                else:
                    strided(tx, BK * vd // vec, lambda idx: ld(idx, vd, v, pv, pres_v, v_h, hs_v))

            def commit():
                if gpu:
                    T.evaluate(T.ptx.cp.async_.commit_group())

            def arrived():
                """this thread's copies landed, then the block's (a barrier)"""
                if gpu:
                    T.evaluate(T.ptx.cp.async_.wait_group(0))
                th.barrier()

            # one K and one V buffer, their loads overlapping the other's use: V(kt) lands while
            # S = Q K(kt)^T and the softmax compute, K(kt + 1) while O += P V(kt)
            th.each_thread(lambda tx: load(tx, i32(0), 0))
            commit()
            with T.serial(0, klim) as kt0:
                key0 = tirx.Cast("int64", kt0) * i64(BK)
                arrived()  # K(kt) in shared memory; every warp done with V(kt - 1)
                th.each_thread(lambda tx: load(tx, kt0, 1))
                commit()

                def zero_s(tx):
                    for i in range(M * NS):
                        T.buffer_store(sf, f32(0), [R(tx, M * NS, i)])

                th.each_thread(zero_s)

                def qk_load(kk, n16, off):
                    # K's B fragments of key tiles 2 n16, 2 n16 + 1 (b0b1: k = 2t, 2t+1; b2b3: k = 2t+8,
                    # 2t+9; n = g): one ldmatrix.x4, matrix j = keys 8 (2 n16 + j // 2).., dims kk 16 + 8 (j % 2)..
                    def kaddr(l):
                        return (n16 * 16 + 8 * (l // 16) + l % 8) * hs_k + kk * 16 + 8 * ((l // 8) % 2)

                    th.each_thread(lambda tx: ldsm(tx, False, k_h, kaddr, bf, 16, off))
                    if M == 1:
                        return

                    # M = 2: Q's A fragments of step kk for both row groups with the first key tile
                    # (matrix j = rows 8 (j % 2).., dims kk 16 + 8 (j // 2)..), into set kk % 2
                    def qload(tx):
                        w, _ = lane_of(tx)
                        for m in range(M):

                            def qaddr(l, m=m):
                                return (
                                    (w * (16 * M) + m * 16 + l % 8 + 8 * ((l // 8) % 2)) * hs_k
                                    + kk * 16
                                    + 8 * (l // 16)
                                )

                            ldsm(tx, False, q_h, qaddr, qf, 32, _qset(kk) + 8 * m)

                    if gpu:
                        if n16 == 0:
                            th.each_thread(qload)
                    else:
                        with T.If(n16 == 0):
                            with T.Then():
                                th.each_thread(qload)

                def _qset(kk):
                    return 16 * (kk % 2) if gpu else 0

                def qk_mma(kk, n16, off):
                    for m in range(M):
                        a_buf, a_n, a_off = (qf, nkk * 8, kk * 8) if M == 1 else (qf, 32, _qset(kk) + 8 * m)
                        for h2 in range(2):
                            n8 = 2 * n16 + h2
                            th.each_thread(
                                lambda tx: mma(tx, a_buf, a_n, a_off, sf, M * NS, m * NS + n8 * 4, off + 4 * h2)
                            )

                # the k step outside: consecutive mma.sync write different accumulators (the asm is
                # volatile: nvcc keeps their order, so a dependent chain would stall on each)
                pipelined(nkk, BK // 16, qk_load, qk_mma)

                # factor of the scores into log2 units for exp2: scale * log2 e on a raw (folded)
                # tile, 1 on a tile already scaled by the bias step
                inside = tirx.all(tile * i64(BQ) + i64(BQ) <= rows, key0 + i64(BK) <= tot)
                if sel.causal:
                    first_q = tile * i64(BQ) // i64(r)
                    inside = tirx.all(inside, key0 + i64(BK - 1) <= first_q + past_len)
                cf = tirx.Select(inside, f32(sel.scale * LOG2E), f32(1.0)) if fold else f32(1.0)

                def bias(tx):
                    w, lane = lane_of(tx)
                    tig = lane % 4

                    def full():
                        for m in range(M):
                            for hi in range(2):
                                rho, h, qi = row_of(w, lane, m, hi)
                                for n8 in range(BK // 8):
                                    for u in range(2):
                                        key = key0 + tirx.Cast("int64", n8 * 8 + tig * 2 + u)
                                        si = R(tx, M * NS, m * NS + n8 * 4 + 2 * hi + u)
                                        s_ = sf[si] * f32(sel.scale)
                                        wv = capped(b, h, tirx.min(qi, lq - 1), tirx.min(key, tot - 1), s_)
                                        # log2 units; float32's lowest (a masked key) and -inf stay as
                                        # they are (scaled they would overflow to -inf)
                                        wv = tirx.Select(wv > f32(LOWEST / LOG2E), wv * f32(LOG2E), wv)
                                        T.buffer_store(
                                            sf, tirx.if_then_else(tirx.all(rho < rows, key < tot), wv, ninf), [si]
                                        )

                    if sel.mask is None and sel.softcap == 0:
                        # a tile with every row and key inside and (causal) every key at or below the
                        # block's first query needs the scale only (uniform over the block): folded
                        # into exp2's argument, or (scale <= 0) applied here
                        with T.If(inside):
                            with T.Then():
                                if not fold:
                                    for i in range(M * NS):
                                        si = R(tx, M * NS, i)
                                        T.buffer_store(sf, sf[si] * f32(sel.scale * LOG2E), [si])
                                else:
                                    T.evaluate(0)
                            with T.Else():
                                full()
                    else:
                        full()
                    for m in range(M):
                        for hi in range(2):
                            vals = [
                                sf[R(tx, M * NS, m * NS + n8 * 4 + 2 * hi + u)]
                                for n8 in range(BK // 8)
                                for u in range(2)
                            ]
                            T.buffer_store(st, _tree(tirx.max, vals), [R(tx, 8 * M, 2 + 4 * hi + 8 * m)])

                th.each_thread(bias)
                quad(tirx.max, 2, 3)

                def softmax(tx):
                    for m in range(M):
                        for hi in range(2):
                            S = lambda k_: R(tx, 8 * M, k_ + 4 * hi + 8 * m)  # noqa: E731
                            m_old = st[S(0)]
                            mx = tirx.max(m_old, st[S(3)] * cf)
                            safe = tirx.Select(mx == ninf, f32(0), mx)
                            ex2_to(st, S(2), m_old - safe)  # correction
                            T.buffer_store(st, mx, [S(0)])
                            sis = []
                            for n8 in range(BK // 8):
                                for u in range(2):
                                    si = R(tx, M * NS, m * NS + n8 * 4 + 2 * hi + u)
                                    sis.append(si)
                                    ex2_to(sf, si, sf[si] * cf - safe)
                                    # P as the A operand: key chunk kc = n8 // 2, a index 2 hi + 4 (n8 % 2) + u
                                    pi = R(tx, M * NP, m * NP + (n8 // 2) * 8 + 2 * hi + 4 * (n8 % 2) + u)
                                    T.buffer_store(pa, tirx.Cast(dt, sf[si]), [pi])
                            l_ = st[S(1)] * st[S(2)]
                            T.buffer_store(st, l_ + _tree(lambda a, c: a + c, [sf[i] for i in sis]), [S(1)])
                            for nv in range(nnv):
                                for u in range(2):
                                    oi = R(tx, M * NO, m * NO + nv * 4 + 2 * hi + u)
                                    T.buffer_store(of, of[oi] * st[S(2)], [oi])

                th.each_thread(softmax)
                arrived()  # V(kt) in shared memory; every warp done with K(kt)
                # K(kt + 1) (past the block's last tile: zeros, no global reads; a condition around
                # the loads would put the shared-memory sync pass's barrier inside it)
                th.each_thread(lambda tx: load(tx, kt0 + 1, 0))
                commit()

                def pv_load(kc, nv2, off):
                    # V's B fragments of dim tiles 2 nv2, 2 nv2 + 1 (b0b1: keys 2t, 2t+1; b2b3: keys 2t+8,
                    # 2t+9; n = g): one ldmatrix.x4.trans, matrix j = keys kc 16 + 8 (j % 2).., dims 8 (2 nv2 + j // 2)..
                    def vaddr(l):
                        return (kc * 16 + 8 * ((l // 8) % 2) + l % 8) * hs_v + (nv2 * 2 + l // 16) * 8

                    th.each_thread(lambda tx: ldsm(tx, True, v_h, vaddr, bf, 16, off))

                def pv_mma(kc, nv2, off):
                    for m in range(M):
                        for h2 in range(2):
                            nv = 2 * nv2 + h2
                            th.each_thread(
                                lambda tx: mma(
                                    tx, pa, M * NP, m * NP + kc * 8, of, M * NO, m * NO + nv * 4, off + 4 * h2
                                )
                            )

                pipelined(BK // 16, nnv // 2, pv_load, pv_mma)

            if gpu:
                T.evaluate(T.ptx.cp.async_.wait_group(0))  # the last (zero) K copies
            quad(lambda a, c: a + c, 1, 3)

            def write(tx):
                w, lane = lane_of(tx)
                tig = lane % 4
                for m in range(M):
                    for hi in range(2):
                        rho, h, qi = row_of(w, lane, m, hi)
                        with T.If(rho < rows):
                            with T.Then():
                                for nv in range(nnv):
                                    for u in range(2):
                                        val = (
                                            of[R(tx, M * NO, m * NO + nv * 4 + 2 * hi + u)]
                                            / st[R(tx, 8 * M, 3 + 4 * hi + 8 * m)]
                                        )
                                        _store_y(sel, y, val, b, h, qi, tirx.Cast("int64", nv * 8 + tig * 2 + u))

            th.each_thread(write)
    return ib.get()


# ---------------------------------------------------------------------------------------------
# Hopper (sm_90a) tensor-core kernel: wgmma


WG_ROWS = 64  # query rows per block: one warpgroup (4 warps x 16 rows), the m64 of wgmma
WG_THREADS = 128
# keys per K/V tile: S = Q K^T is one m64n64 accumulator per k step. H200, the suite's GQA prefill:
# 64 keys 38.1 us, 128 keys 41.9 (fewer causal keys wasted on the diagonal tiles, 166 registers
# instead of 208: 3 blocks per SM instead of 2); 2 warpgroups per block over 128 rows sharing the
# K/V tiles 46.5 (128 keys) / 49.2 (64); S(kt) queued behind O += P V(kt - 1) 42.4 (ptxas
# serializes the wgmma then: the accumulators of one are read while the other is in flight)
WG_KEYS = 64
WG_TARGETS = ("sm_90a",)  # wgmma exists on sm_90a only


def wg_fits(dtype, hd, vd, scale, mask, softcap, past, outs):
    """The wgmma kernel takes fp16 / bf16 prefill without mask, softcap, past or extra outputs,
    head sizes 64 or 128 (one or two 128-byte swizzle atoms per row) and a positive scale (the
    row max is taken on the raw scores)."""
    return (
        dtype in _MMA_TYPE
        and hd in (64, 128)
        and vd in (64, 128)
        and scale > 0
        and mask is None
        and softcap == 0
        and not past
        and not any(outs[1:])
    )


def _wg_ir(sel, ins, outs, mode):
    """IR of the Hopper kernel (sm_90a; GPU only: the CPU twin has no wgmma). A block of one
    warpgroup (128 threads) owns kv head g of batch b and 64 of the group's r * L rows (row rho:
    query rho // r of q head g * r + rho % r), warp w rows 16 w ... K and V in tiles of 64 keys.
    Shared memory (dynamic, 1024-byte aligned; 49 KiB at head 128): Q (64 x hd), one K (64 x hd) and
    one V (64 x vd) tile, each in 128-byte swizzled atoms (8 rows x 64 elements, 16-byte chunk c of row i at
    c ^ (i % 8); a head of 128 is two atom columns), filled by cp.async (16 bytes, zero-fill past
    the end): V(kt) lands while S = Q K(kt)^T and the softmax compute, K(kt + 1) while O += P V(kt).
    S = Q K^T: hd / 16 wgmma.m64n64k16 with both operands from shared memory (descriptors, Q and K
    K-major); online softmax on the accumulator registers (a thread holds rows lane / 4 (+ 8) of
    its warp, 16 keys each: the mma.sync m16n8 layout per 8 keys), the raw scores' row max over
    the quad by shuffles, exp2(s * scale log2 e - m) one FFMA + ex2.approx; P rounded to Q's type
    is the register A operand of O += P V (the accumulator layout of S is the A fragment layout),
    4 wgmma.m64n{vd}k16 with V from shared memory, transposed (V is N-major). Y = O / sum.
    wgmma.wait_group 0 after each product (no two in flight; the accumulators pass a volatile mov
    after the wait so no read is scheduled above it). 166 registers at head 128: 3 blocks per SM.
    Causal key tiles above the block's last query are skipped; the mask is applied only on tiles
    that cross the diagonal or the end."""
    assert mode == "gpu", "the wgmma kernel has no CPU form"
    q, k, v = ins[0], ins[1], ins[2]
    y = outs[0]
    nt, BQ, BK = WG_THREADS, WG_ROWS, WG_KEYS
    hd, vd, r = sel.hd, sel.vd, sel.qh // sel.kvh
    dt = sel.dtype
    wty = "f16" if dt == "float16" else "bf16"
    vec = 8
    NS, NO, NP = BK // 2, vd // 2, BK // 2  # S, O f32 accumulators and P halves per thread
    qo, ko = 0, BQ * hd
    vo = ko + BK * hd
    total = vo + BK * vd
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    u32 = lambda v: tirx.const(v, "uint32")  # noqa: E731
    u64 = lambda v: tirx.const(v, "uint64")  # noqa: E731
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    ninf = f32(-math.inf)
    c2 = f32(sel.scale * LOG2E)
    bsz = tirx.Cast("int64", q.shape[0])
    lq = tirx.Cast("int64", _seq(q, sel.rank))
    tot = tirx.Cast("int64", _seq(k, sel.rank))
    rows = lq * i64(r)
    tiles = (rows + i64(BQ - 1)) // i64(BQ)
    ktiles = (tot + i64(BK - 1)) // i64(BK)

    with IRBuilder() as ib:
        th = Threads(mode, bsz * i64(sel.kvh) * tiles, nt)
        with th as bx:
            tile, g, b = _heavy_first(bx, bsz, i64(sel.kvh), tiles)
            tx = th.tx
            t32 = tirx.Cast("int32", tx)
            w, lane = t32 // 32, t32 % 32  # warp w (of all warpgroups) owns rows 16 w ..

            sm = T.decl_buffer([total + 512], dt, scope="shared.dyn")
            raw = T.bind(T.cuda.cvta_generic_to_shared(sm.access_ptr("r")))
            base = T.bind(tirx.bitwise_and(raw + u32(1023), u32(0xFFFFFC00)))
            pad = T.bind(tirx.Cast("int32", (base - raw) // u32(2)))
            # descriptor bits 62-63 = 1: 128-byte swizzle; start address >> 4 in bits 0-13
            dbase = T.bind(tirx.bitwise_or(tirx.Cast("uint64", base // u32(16)), u64(1 << 62)))

            sf = T.decl_buffer([NS], "float32", scope="local")
            of = T.decl_buffer([NO], "float32", scope="local")
            pa = T.decl_buffer([NP], dt, scope="local")
            st = T.decl_buffer([8], "float32", scope="local")  # per row hi: m, l, max / sum scratch

            def desc(byte_off, lbo, sbo):
                return dbase + u64(byte_off // 16 + ((lbo // 16) << 16) + ((sbo // 16) << 32))

            def swz(nrows, row, c):
                """element offset of 16-byte chunk c of row `row` in a swizzled tile of nrows rows"""
                return (c // 8) * (nrows * 64) + row * 64 + tirx.bitwise_xor(c % 8, row % 8) * 8

            def strided(n, body):
                with T.serial(0, -(-n // nt)) as it:
                    idx = it * nt + t32
                    if n % nt == 0:
                        body(idx)
                    else:
                        with T.If(idx < n):
                            with T.Then():
                                body(idx)

            def cp(dst_off, t, h, s, d0, ok, hs):
                src_i = _vload(t, sel.rank, b, h, s, d0, hs, vec).indices
                src = t.ptr_to(list(src_i[:-1]) + [src_i[-1].base])
                size = tirx.Cast("uint32", tirx.Select(ok, i32(16), i32(0)))
                T.evaluate(T.ptx["cp.async.cg.shared.global"](sm.ptr_to([pad + dst_off]), src, 16, size))

            def load_q():
                def one(idx):
                    i, c = idx // (hd // vec), idx % (hd // vec)
                    rho = tile * i64(BQ) + tirx.Cast("int64", i)
                    rc = tirx.min(rho, rows - i64(1))
                    h, qi = g * i64(r) + rc % i64(r), rc // i64(r)
                    cp(qo + swz(BQ, i, c), q, h, qi, tirx.Cast("int64", c * vec), rho < rows, hd)

                strided(BQ * hd // vec, one)

            def load_kv(kt, which):
                key0 = tirx.Cast("int64", kt) * i64(BK)
                t, hs, off = (k, hd, ko) if which == 0 else (v, vd, vo)

                def one(idx):
                    j, c = idx // (hs // vec), idx % (hs // vec)
                    key = key0 + tirx.Cast("int64", j)
                    ok = tirx.all(key < tot, kt < klim)
                    cp(off + swz(BK, j, c), t, g, tirx.min(key, tot - i64(1)), tirx.Cast("int64", c * vec), ok, hs)

                strided(BK * hs // vec, one)

            def commit():
                T.evaluate(T.ptx.cp.async_.commit_group())

            def arrived():
                """this thread's copies landed and are visible to the async proxy (wgmma), then the
                block's (a barrier)"""
                T.evaluate(T.ptx.cp.async_.wait_group(0))
                T.evaluate(T.ptx.fence.proxy.async_.shared__cta())
                th.barrier()

            def settle(buf, n):
                """after wgmma.wait_group: each accumulator through a volatile mov, so that no read of
                it is scheduled above the wait"""
                for i in range(n):
                    T.evaluate(T.ptx["mov.f32"](buf[i], buf[i]))

            def quad(op, src, dst):
                mask_ = tirx.const(0xFFFFFFFF, "uint32")
                for hi in range(2):
                    x = st[src + 4 * hi]
                    for d in (1, 2):
                        y_ = tvm.ir.Call(
                            "tirx.tvm_warp_shuffle_xor", [mask_, x, i32(d), i32(32), i32(32)], ret_ty="float32"
                        )
                        T.buffer_store(st, op(x, y_), [dst + 4 * hi])
                        x = st[dst + 4 * hi]

            if sel.causal:
                rho_max = tirx.min(tile * i64(BQ) + i64(BQ - 1), rows - i64(1))
                klim = tirx.min(ktiles, (rho_max // i64(r) + i64(BK)) // i64(BK))
            else:
                klim = ktiles

            load_q()
            load_kv(i32(0), 0)
            commit()
            for i in range(NO):
                T.buffer_store(of, f32(0), [i])
            for hi in range(2):
                T.buffer_store(st, ninf, [4 * hi])
                T.buffer_store(st, f32(0), [1 + 4 * hi])

            wg = f"wgmma.mma_async.sync.aligned.m64n{{}}k16.f32.{wty}.{wty}"
            with T.serial(0, klim) as kt0:
                key0 = tirx.Cast("int64", kt0) * i64(BK)
                arrived()  # K(kt) (and Q) in shared memory; every warp done with V(kt - 1)
                load_kv(kt0, 1)
                commit()
                # S = Q K^T: k step kk reads 16 elements (32 bytes) of a 128-byte swizzled row; the
                # descriptor's start moves by 32 bytes within the atom (the hardware swizzles the
                # absolute address bits, the atoms 1024-byte aligned); 8-row groups 1024 bytes apart
                T.evaluate(T.ptx.wgmma.fence.sync.aligned())
                for kk in range(hd // 16):
                    a = desc(2 * (qo + (kk // 4) * BQ * 64) + (kk % 4) * 32, 16, 1024)
                    bd = desc(2 * (ko + (kk // 4) * BK * 64) + (kk % 4) * 32, 16, 1024)
                    T.evaluate(T.ptx[wg.format(BK)](*[sf[i] for i in range(NS)], a, bd, kk > 0, 1, 1, 0, 0))
                T.evaluate(T.ptx.wgmma.commit_group.sync.aligned())
                T.evaluate(T.ptx.wgmma.wait_group.sync.aligned(0))
                settle(sf, NS)

                # mask on tiles crossing the end or (causal) the block's first query's diagonal
                inside = tirx.all(tile * i64(BQ) + i64(BQ) <= rows, key0 + i64(BK) <= tot)
                if sel.causal:
                    inside = tirx.all(inside, key0 + i64(BK - 1) <= tile * i64(BQ) // i64(r))
                with T.If(tirx.Not(inside)):
                    with T.Then():
                        for hi in range(2):
                            rho = tile * i64(BQ) + tirx.Cast("int64", w * 16 + lane // 4 + 8 * hi)
                            qi = rho // i64(r)
                            for n8 in range(BK // 8):
                                for u in range(2):
                                    key = key0 + tirx.Cast("int64", n8 * 8 + (lane % 4) * 2 + u)
                                    ok = key < tot
                                    if sel.causal:
                                        ok = tirx.all(ok, key <= qi)
                                    si = n8 * 4 + 2 * hi + u
                                    T.buffer_store(sf, tirx.Select(ok, sf[si], ninf), [si])
                for hi in range(2):
                    vals = [sf[n8 * 4 + 2 * hi + u] for n8 in range(BK // 8) for u in range(2)]
                    T.buffer_store(st, _tree(tirx.max, vals), [2 + 4 * hi])
                quad(tirx.max, 2, 3)
                for hi in range(2):
                    m_old = st[4 * hi]
                    mx = tirx.max(m_old, st[3 + 4 * hi])
                    safe = tirx.Select(mx == ninf, f32(0), mx) * c2
                    T.evaluate(T.ptx["ex2.approx.ftz.f32"](st[2 + 4 * hi], m_old * c2 - safe))  # correction
                    T.buffer_store(st, mx, [4 * hi])
                    sis = []
                    for n8 in range(BK // 8):
                        for u in range(2):
                            si = n8 * 4 + 2 * hi + u
                            sis.append(si)
                            T.evaluate(T.ptx["ex2.approx.ftz.f32"](sf[si], sf[si] * c2 - safe))
                            # P as the A fragment: k step n8 // 2, a index 2 hi + 4 (n8 % 2) + u
                            pi = (n8 // 2) * 8 + 2 * hi + 4 * (n8 % 2) + u
                            T.buffer_store(pa, tirx.Cast(dt, sf[si]), [pi])
                    l_ = st[1 + 4 * hi] * st[2 + 4 * hi]
                    T.buffer_store(st, l_ + _tree(lambda a_, c_: a_ + c_, [sf[i] for i in sis]), [1 + 4 * hi])
                    for nv in range(vd // 8):
                        for u in range(2):
                            oi = nv * 4 + 2 * hi + u
                            T.buffer_store(of, of[oi] * st[2 + 4 * hi], [oi])
                arrived()  # V(kt) in shared memory; every warp done with K(kt)
                load_kv(kt0 + 1, 0)
                commit()
                # O += P V (V N-major: transposed B)
                # V N-major (transposed B), CUTLASS's canonical SW128 MN-major layout
                # ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)): LBO from one 64-dim atom column to the next
                # (BK rows of 128 bytes), SBO from 8 keys to the next 8 (1024 bytes). (Swapped, the
                # H200 answer was wrong: max error 4.8.)
                v_lbo, v_sbo = BK * 128, 1024
                T.evaluate(T.ptx.wgmma.fence.sync.aligned())
                for kc in range(BK // 16):
                    bd = desc(2 * (vo + kc * 16 * 64), v_lbo, v_sbo)
                    a_regs = [
                        tirx.reinterpret("uint32", pa[tirx.Ramp(i32(kc * 8 + 2 * j), i32(1), 2)]) for j in range(4)
                    ]
                    T.evaluate(T.ptx[wg.format(vd)](*[of[i] for i in range(NO)], *a_regs, bd, True, 1, 1, 1))
                T.evaluate(T.ptx.wgmma.commit_group.sync.aligned())
                T.evaluate(T.ptx.wgmma.wait_group.sync.aligned(0))
                settle(of, NO)

            T.evaluate(T.ptx.cp.async_.wait_group(0))  # the last (zero) K copies
            quad(lambda a_, c_: a_ + c_, 1, 3)
            for hi in range(2):
                rho = tile * i64(BQ) + tirx.Cast("int64", w * 16 + lane // 4 + 8 * hi)
                h, qi = g * i64(r) + rho % i64(r), rho // i64(r)
                with T.If(rho < rows):
                    with T.Then():
                        for nv in range(vd // 8):
                            for u in range(2):
                                val = of[nv * 4 + 2 * hi + u] / st[3 + 4 * hi]
                                _store_y(sel, y, val, b, h, qi, tirx.Cast("int64", nv * 8 + (lane % 4) * 2 + u))
    return ib.get()


def _flash_emit(bb, sel, q, k, v, mask, pk, pv, mode):
    """The fused kernel as one te.extern stage: (Y[, present_key][, present_value]), the partial
    states of the splits as workspace outputs after them."""
    args = [q, k, v] + ([mask] if mask is not None else []) + ([pk, pv] if pk is not None else [])

    def stage(*ts):
        b = ts[0].shape[0]
        lq = _seq(ts[0], sel.rank)
        shapes = [[b, sel.qh, lq, sel.vd] if sel.rank == 4 else [b, lq, sel.qh * sel.vd]]
        dts = [sel.dtype]
        tot = _seq(ts[1], sel.rank) + (ts[-2].shape[2] if sel.past else 0)
        for n_, hs in ((1, sel.hd), (2, sel.vd)):
            if sel.outs[n_]:
                shapes.append([b, sel.kvh, tot, hs])
                dts.append(sel.dtype)
        if sel.splits > 1:
            rows = tirx.Cast("int64", lq) * (sel.qh // sel.kvh)
            blocks = tirx.Cast("int64", b) * sel.kvh * ((rows + sel.bq - 1) // sel.bq) * sel.splits
            simp = tvm.sym.analyzer.Analyzer().simplify
            shapes += [[simp(blocks * (sel.bq * sel.vd))], [simp(blocks * (sel.bq * 2))]]
            dts += ["float32", "float32"]
        bufs = [tirx.decl_buffer(t.shape, t.dtype, name=f"b{k_}", elem_offset=0) for k_, t in enumerate(ts)]
        obufs = [tirx.decl_buffer(s, dt, name=f"o{k_}", elem_offset=0) for k_, (s, dt) in enumerate(zip(shapes, dts))]
        return te.extern(
            shapes,
            list(ts),
            # the CPU twin of the wgmma kernel is the mma.sync kernel's emulation (same arithmetic)
            lambda ins, outs: (_wg_ir if sel.wg and mode == "gpu" else _tc_ir if sel.tc else _flash_ir)(
                sel, list(ins), list(outs), mode
            ),
            dtype=dts,
            name="tpat_attention_flash",
            in_buffers=bufs,
            out_buffers=obufs,
        )

    res = bb.emit_te(stage, *args, primfunc_name_hint="tpat_attention_flash")
    n = 1 + int(sel.outs[1]) + int(sel.outs[2])
    if n == 1 and sel.splits == 1:
        return [res]
    return [bb.emit(relax.TupleGetItem(res, k_)) for k_ in range(n)]


def emit(bb, params, sel, mode="gpu"):
    """The node's outputs in order (Y[, present_key, present_value][, qk]): a tuple when several."""
    q, k, v, mask, pk, pv = (None if o.is_absent else relax_arg(params, o) for o in sel.ops)
    if sel.flash:  # reads past / current K, V itself and writes the present outputs in that pass
        outs = _flash_emit(bb, sel, q, k, v, mask, pk, pv, mode)
        return outs[0] if len(outs) == 1 else relax.Tuple(outs)
    present = [None, None]
    if sel.past or sel.outs[1] or sel.outs[2]:
        for n_, (past, cur, hs, name) in enumerate(((pk, k, sel.hd, "key"), (pv, v, sel.vd, "value"))):
            if past is None:  # present = cur in 4-D
                if not sel.outs[1 + n_]:
                    continue
                rd_rank = sel.rank

                def f(c, hs=hs, rd_rank=rd_rank):
                    rd = _reader(c, rd_rank, sel.kvh, hs)
                    return te.compute(
                        [c.shape[0], sel.kvh, _seq(c, rd_rank), hs],
                        lambda b, h, s, d: rd(b, h, s, d),
                        name="tpat_attention_present",
                    )

                present[n_] = bb.emit_te(f, cur, primfunc_name_hint=f"tpat_attention_present_{name}")
            else:
                present[n_] = bb.emit_te(
                    lambda p_, c, hs=hs, name=name: _present_te(p_, c, sel, hs, f"tpat_attention_present_{name}"),
                    past,
                    cur,
                    primfunc_name_hint=f"tpat_attention_present_{name}",
                )
    kt, k4 = (present[0], True) if sel.past else (k, False)
    vt, v4 = (present[1], True) if sel.past else (v, False)
    s = bb.emit_te(lambda q_, k_: _scores_te(q_, k_, sel, k4), q, kt, primfunc_name_hint="tpat_attention_qk")

    def past_len_of(x):
        return x.shape[2] if sel.past else tirx.const(0, "int64")

    margs = [mask] if mask is not None else []
    pargs = [pk] if sel.past else []

    def sm(s_, *rest):
        m_ = rest[0] if mask is not None else None
        pl = past_len_of(rest[-1]) if sel.past else tirx.const(0, "int64")
        return _softmax_te(sel, s_, m_, pl)

    p = bb.emit_te(sm, s, *margs, *pargs, primfunc_name_hint="tpat_attention_softmax")
    y = bb.emit_te(lambda p_, v_, q_: _pv_te(p_, v_, sel, v4, q_), p, vt, q, primfunc_name_hint="tpat_attention_pv")
    if sel.rank == 3:
        y = bb.emit_te(lambda y_: _layout3_te(y_, sel), y, primfunc_name_hint="tpat_attention_y3")
    outs = [y]
    if sel.outs[1]:
        outs.append(present[0])
    if sel.outs[2]:
        outs.append(present[1])
    raw = sel.mode == 0 or (sel.mode == 2 and sel.softcap == 0)  # the scaled scores, unbiased
    if sel.outs[3] and raw and sel.dtype == "float32":
        outs.append(s)  # the scaled scores themselves
    elif sel.outs[3]:

        def qk(s_, p_, *rest):
            m_ = rest[0] if mask is not None else None
            pl = past_len_of(rest[-1]) if sel.past else tirx.const(0, "int64")
            return _qk_out_te(sel, s_, m_, pl, p_)

        outs.append(bb.emit_te(qk, s, p, *margs, *pargs, primfunc_name_hint="tpat_attention_qk_out"))
    return outs[0] if len(outs) == 1 else relax.Tuple(outs)


class AttentionLowering(Lowering):
    name = "attention"
    ops = ("Attention",)

    def select(self, node):
        try:
            return select(node)
        except (TypeError, ValueError, OverflowError) as e:  # a dim or attribute of an unusable kind
            raise BadValue(f"Attention: {e}") from None

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


ATTENTION = AttentionLowering()
