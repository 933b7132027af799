"""TPAT's own TVM lowering of ONNX Col2Im (opset 18): TVM 0.27 has no importer for it.

Col2Im sums sliding blocks back into an image: input (N, C * prod(block), L), L = prod(Lb_d) with
Lb_d = (img_d + pad_begin_d + pad_end_d - dil_d * (block_d - 1) - 1) // stride_d + 1, output
(N, C, *image_shape). This lowering is the gather form, one output pixel per thread, no atomics:

    out[n, c, y] = sum over (k, l) with l_d * stride_d + k_d * dil_d = y_d + pad_begin_d, l_d in [0, Lb_d):
                   x[n, c * prod(block) + flat(k), flat(l)]

Only the pairs that can touch a pixel are visited (the "contributing range", per spatial dim):
with t = y + pad_begin and span = dil * (block - 1) + 1, the block columns l with
l * stride <= t <= l * stride + span - 1 are the ceil(span / stride) consecutive ones from
max(0, ceil((t - span + 1) / stride)); each gives the offset k = (t - l * stride) / dil when that
divides. Non-overlapping blocks (stride >= span, a ViT patch grid) make it one read per pixel; a
dim whose dilation exceeds its stride walks the block offsets instead (block_d candidates, fewer).

Any spatial rank (1-D and up), dilations, pads, strides; image_shape and block_shape constant inputs
(runtime values are declined: the output shape depends on them). Up to UNROLL candidates per pixel
are unrolled (each a guarded load), more are a serial loop in the thread. Sums in float32 for
float16/bfloat16, in the element type otherwise. N and the channel dim may be symbolic.
TPAT's schedule (`schedule`): the output flattened, 256 threads per block, one pixel each (no vector
loads: consecutive pixels read columns that are not contiguous once strides or dilations are > 1);
a patch grid along the last dim (`row_walk`: non-overlapping blocks, a stride of a sector or more)
gives each thread one block offset and up to 16 block columns instead: reads that run along the
input row, stores that are whole runs of `stride` pixels per warp. An exact 2-D patch grid (block =
stride, no pad or dilation: a ViT patch embedding undone; `patch_plan`) is a transpose: a kernel of
its own (`_patches_ir`) stages, per (n, c, block row offset), the sx contiguous input rows in
shared memory with 16-byte loads and writes the image rows they make whole, 16-byte stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = (*dtypes.FLOATS, "float64", "int32", "int64")
THREADS = 256
UNROLL = 64  # candidates summed as unrolled terms up to this many, else a serial loop per thread
WALK = 16  # block columns one thread walks along the last dim of a patch grid (row_walk)
MAX_SIZE = 1 << 31  # every constant size (image, block, pads, strides, dilations) below this


@dataclass(frozen=True)
class Col2ImSelection(Selection):
    dtype: str
    img: tuple  # image_shape
    block: tuple  # block_shape
    dil: tuple
    pad_begin: tuple
    strides: tuple
    lb: tuple  # number of blocks per spatial dim
    x_index: int

    def describe(self) -> str:
        k = terms(self)
        form = "unrolled" if k <= UNROLL else "serial loop"
        if patch_plan(self) is not None:
            form = "exact patches: transposed through shared memory"
        return (
            f"col2im ({len(self.img)}-D, block {list(self.block)}, strides {list(self.strides)}, "
            f"dilations {list(self.dil)}, contributing range: {k} candidate(s) per pixel, {form})"
        )


def _ints(op, what):
    """A constant 1-D int input as a list of Python ints, else a reason."""
    if op.is_absent:
        return None, f"{what} is absent"
    if not op.is_const:
        return None, f"{what} is a runtime input (the output shape depends on it): only constants are lowered"
    if op.value.dtype.kind not in "iu" or op.value.ndim != 1 or op.value.size == 0:
        return None, f"{what} must be a non-empty 1-D int64 constant"
    return [int(v) for v in op.value.reshape(-1)], None


def select(node: NodeView) -> Col2ImSelection | Decline:
    ops = node.operands
    if len(ops) != 3 or len(node.outputs) != 1:
        return Decline("Col2Im arity")
    x = ops[0]
    if not x.is_param:
        return Decline("constant Col2Im input")
    if x.dtype not in DTYPES or node.outputs[0]["dtype"] != x.dtype:
        return Decline(f"dtype {x.dtype}")
    img, why = _ints(ops[1], "image_shape")
    if why:
        return Decline(why)
    block, why = _ints(ops[2], "block_shape")
    if why:
        return Decline(why)
    n = len(img)
    if len(block) != n:
        return Decline(f"image_shape has {n} values, block_shape {len(block)}")
    dil = node.attr("dilations", [1] * n)
    pads = node.attr("pads", [0] * (2 * n))
    strides = node.attr("strides", [1] * n)
    if len(dil) != n or len(strides) != n or len(pads) != 2 * n:
        return Decline(f"dilations/strides need {n} values and pads {2 * n}")
    if not all(isinstance(v, int) for v in [*dil, *pads, *strides]):
        return Decline("dilations/pads/strides must be ints")
    if not all(0 < v < MAX_SIZE for v in [*img, *block, *dil, *strides]) or not all(0 <= p < MAX_SIZE for p in pads):
        return Decline(f"image_shape {img}, block_shape {block}, dilations, strides > 0 and pads >= 0, below 2^31")
    lb = []
    for d in range(n):
        span = img[d] + pads[d] + pads[d + n] - dil[d] * (block[d] - 1) - 1
        if span < 0:
            return Decline(f"spatial dim {d}: the block does not fit the padded image")
        lb.append(span // strides[d] + 1)
    xs = x.shape
    if len(xs) != 3:
        return Decline(f"input of rank {len(xs)} (only the batched form (N, C * prod(block), L) is lowered)")
    nb = math.prod(block)
    if isinstance(xs[1], int) and xs[1] % nb:
        return Decline(f"input dim 1 ({xs[1]}) is not a multiple of prod(block_shape) ({nb})")
    if isinstance(xs[2], int) and xs[2] != math.prod(lb):
        return Decline(f"input dim 2 ({xs[2]}) is not the number of blocks {lb} = {math.prod(lb)}")
    oshape = node.outputs[0].get("shape")
    if oshape is not None and (
        len(oshape) != n + 2 or any(isinstance(o, int) and o != i for o, i in zip(oshape[2:], img))
    ):
        return Decline(f"declared output shape {oshape} is not (N, C, *{img})")
    if math.prod(img) >= MAX_SIZE or nb >= MAX_SIZE or math.prod(lb) >= MAX_SIZE:
        return Decline("image, block or block count of 2^31 elements or more")
    return Col2ImSelection(
        dtype=x.dtype,
        img=tuple(img),
        block=tuple(block),
        dil=tuple(dil),
        pad_begin=tuple(pads[:n]),
        strides=tuple(strides),
        lb=tuple(lb),
        x_index=x.index,
    )


def _eff(sel, d):
    """The span of a block along dim d: dil * (block - 1) + 1."""
    return sel.dil[d] * (sel.block[d] - 1) + 1


def dim_forms(sel):
    """Per spatial dim, how an output pixel finds the (block offset, block column) pairs that touch
    it: ("col", n) walks the n = ceil(span / stride) block columns whose span covers the pixel (a
    stride >= the span gives n = 1: one read), ("off", n) walks the n = block offsets (fewer when
    a dilation exceeds the stride)."""
    out = []
    for d in range(len(sel.img)):
        ncol = -(-_eff(sel, d) // sel.strides[d])
        out.append(("col", ncol) if ncol <= sel.block[d] else ("off", sel.block[d]))
    return out


def terms(sel):
    """The number of (offset, column) candidates each output pixel visits."""
    return math.prod(n for _, n in dim_forms(sel))


def col2im_te(x, sel):
    n = len(sel.img)
    nb = math.prod(sel.block)
    acc_t = "float32" if sel.dtype in ("float16", "bfloat16") else sel.dtype
    it = "int64"
    c_out = x.shape[1] // nb
    oshape = [x.shape[0], c_out, *sel.img]
    forms = dim_forms(sel)

    def c(v):
        return tirx.const(v, it)

    def term(nn, cc, ys, js):
        """(condition, value) of candidate js (one expression per spatial dim, in [0, n_d))."""
        cond = []
        l_flat = c(0)
        k_flat = c(0)
        for d in range(n):
            s, dil, lb = sel.strides[d], sel.dil[d], sel.lb[d]
            t = tirx.Cast(it, ys[d]) + c(sel.pad_begin[d])  # the pixel in padded coordinates
            if forms[d][0] == "col":
                # columns l with l * s <= t <= l * s + span - 1, walked from the first one
                lo = tirx.max(tirx.floordiv(t - c(_eff(sel, d) - s), c(s)), c(0)) if _eff(sel, d) > s else None
                ld = (tirx.floordiv(t, c(s)) if s > 1 else t) if lo is None else lo + js[d]
                kk = t - ld * c(s)
                kd = tirx.floordiv(kk, c(dil)) if dil > 1 else kk
                cond.append(ld < c(lb))
                if lo is not None:
                    cond.append(ld * c(s) <= t)
                elif _eff(sel, d) < s:  # a gap between blocks: the pixel may lie in none
                    cond.append(kk < c(_eff(sel, d)))
                if dil > 1:
                    cond.append(tirx.floormod(kk, c(dil)) == c(0))
            else:
                kd = js[d]
                tt = t - kd * c(dil)
                ld = tirx.floordiv(tt, c(s)) if s > 1 else tt
                cond += [tt >= c(0), ld < c(lb)]
                if s > 1:
                    cond.append(tirx.floormod(tt, c(s)) == c(0))
            l_flat = l_flat * c(lb) + ld
            k_flat = k_flat * c(sel.block[d]) + kd
        ch = tirx.Cast(it, cc) * c(nb) + k_flat
        v = x(nn, ch, l_flat)
        v = v if acc_t == sel.dtype else tirx.Cast(acc_t, v)
        return (tirx.all(*cond) if cond else None), v

    zero = tirx.const(0, acc_t)

    def guarded(cond, v):
        return v if cond is None else tirx.if_then_else(cond, v, zero)

    def out(v):
        return v if acc_t == sel.dtype else tirx.Cast(sel.dtype, v)

    if terms(sel) <= UNROLL:

        def fcompute(nn, cc, *ys):
            acc = None
            for flat in range(terms(sel)):
                js, rem = [], flat
                for d in reversed(range(n)):
                    js.append(c(rem % forms[d][1]))
                    rem //= forms[d][1]
                t = guarded(*term(nn, cc, ys, list(reversed(js))))
                acc = t if acc is None else acc + t
            return out(acc)

        return te.compute(oshape, fcompute, name="tpat_col2im")

    raxes = [te.reduce_axis((0, nd), name=f"j{d}") for d, (_, nd) in enumerate(forms)]

    def fsum(nn, cc, *ys):
        return te.sum(guarded(*term(nn, cc, ys, [tirx.Cast(it, r) for r in raxes])), axis=raxes)

    if acc_t == sel.dtype:
        return te.compute(oshape, fsum, name="tpat_col2im")
    s = te.compute(oshape, fsum, name="tpat_col2im_sum")
    return te.compute(oshape, lambda *i: out(s(*i)), name="tpat_col2im")


PRIMFUNC = "tpat_col2im"


def emit(bb, params, sel, mode="gpu"):
    if patch_plan(sel) is not None:
        return emit_patches(bb, params[sel.x_index], sel, mode)
    return bb.emit_te(lambda x: col2im_te(x, sel), params[sel.x_index], primfunc_name_hint=PRIMFUNC)


# ------------------------------------------------------------------------------------------------
# Exact 2-D patch grids (a ViT patch embedding undone): a transpose through shared memory
# ------------------------------------------------------------------------------------------------

PATCH_THREADS = 256
PATCH_SMEM = 46 << 10  # bytes of one block's staged input rows (static shared memory: at most 48 KiB)


def patch_plan(sel):
    """(sy, sx, LY, LX, VL, V) when the blocks tile the 2-D image exactly (block = stride, no
    dilation, no pad, image a multiple of the block) and the sx input rows of one block offset
    row ky (sx x LY x LX elements) fit PATCH_SMEM; else None. VL: elements per vector load of
    those rows, V: per vector store of an output row (both up to 16 bytes, powers of two)."""
    if len(sel.img) != 2:
        return None
    (sy, sx), (h, w) = sel.strides, sel.img
    if sel.block != (sy, sx) or sel.dil != (1, 1) or any(sel.pad_begin) or h % sy or w % sx:
        return None
    ly, lx = h // sy, w // sx
    if sel.lb != (ly, lx):
        return None
    size = dtypes.size(sel.dtype)
    if sx * ly * lx * size > PATCH_SMEM:
        return None

    def vec(n):
        v = max(1, 16 // size)
        while v > 1 and n % v:
            v //= 2
        return v

    return sy, sx, ly, lx, vec(sx * ly * lx), vec(sx)


def _patches_ir(sel, pp, planes, ins, outs, mode):
    """One block per (image n, channel c, block row offset ky): stage 1 copies the sx input rows
    x[n, c * sy * sx + ky * sx + kx, :] (kx < sx: one contiguous run of sx x L elements) into
    shared memory with VL-wide loads; stage 2 writes the LY output rows y = ly * sy + ky, each
    whole (W = LX x sx), V consecutive pixels per thread and store: pixel x = lx * sx + kx is
    tile[kx, ly * LX + lx]. Every input and output byte moves once, in full sectors."""
    gpu = mode == "gpu"
    sy, sx, ly_n, lx_n, vl, v = pp
    nl = ly_n * lx_n
    w = lx_n * sx
    h = ly_n * sy
    nt = PATCH_THREADS
    i64 = lambda c: tirx.const(c, "int64")  # noqa: E731
    i32 = lambda c: tirx.const(c, "int32")  # noqa: E731
    with IRBuilder() as ib:
        th = Threads(mode, planes, nt)
        with th as bx:
            x = T.decl_buffer([planes * i64(sx * nl)], sel.dtype, data=ins[0].data, elem_offset=0)
            y = T.decl_buffer([planes * i64(ly_n * w)], sel.dtype, data=outs[0].data, elem_offset=0)
            tile = T.decl_buffer([sx * nl], sel.dtype, scope="shared" if gpu else "global")
            b = tirx.Cast("int64", bx)
            nc, ky = b // i64(sy), b % i64(sy)
            src = b * i64(sx * nl)  # (nc * sy + ky) * sx rows of L: the block's input rows
            dst = (nc * i64(h) + ky) * i64(w)  # output row ky of image plane nc

            def loop(n):  # unrolled when short: the loads (stores) of a thread issued together
                return T.unroll(0, n) if n <= 16 else T.serial(0, n)

            def stage1(tx):
                t = tirx.Cast("int32", tx)
                nv = sx * nl // vl
                with loop(-(-nv // nt)) as it:
                    j = it * i32(nt) + t
                    with T.If(j < i32(nv)):
                        with T.Then():
                            with (T.vectorized if gpu else T.serial)(0, vl) as e:
                                k = j * i32(vl) + e
                                T.buffer_store(tile, x[src + tirx.Cast("int64", k)], [k])

            def stage2(tx):
                t = tirx.Cast("int32", tx)
                g = w // v  # vector groups per output row
                ov = T.decl_buffer([v], sel.dtype, scope="local" if gpu else "global")
                with loop(-(-(ly_n * g) // nt)) as it:
                    q = it * i32(nt) + t
                    with T.If(q < i32(ly_n * g)):
                        with T.Then():
                            row, xc = q // i32(g), (q % i32(g)) * i32(v)
                            lx, kx = xc // i32(sx), xc % i32(sx)  # v divides sx: one patch column
                            with T.unroll(0, v) as e:
                                T.buffer_store(ov, tile[(kx + e) * i32(nl) + row * i32(lx_n) + lx], [e])
                            o = dst + tirx.Cast("int64", row * i32(sy * w) + xc)
                            with (T.vectorized if gpu else T.serial)(0, v) as e:
                                T.buffer_store(y, ov[e], [o + tirx.Cast("int64", e)])

            th.each_thread(stage1)
            th.barrier()
            th.each_thread(stage2)
    return ib.get()


def emit_patches(bb, x, sel, mode):
    """The exact-patch kernel as a te.extern stage (planes = N x C x sy blocks, symbolic N and C
    included)."""
    pp = patch_plan(sel)
    sy, sx = sel.strides
    nb = sy * sx

    def stage(xt):
        n, cb = xt.shape[0], xt.shape[1]
        c_out = cb // nb
        shape = [n, c_out, *sel.img]
        planes = tirx.Cast("int64", n) * tirx.Cast("int64", c_out) * tirx.const(sy, "int64")
        ib = tirx.decl_buffer(xt.shape, sel.dtype, name="b0", elem_offset=0)
        ob = tirx.decl_buffer(shape, sel.dtype, name="o0", elem_offset=0)
        return te.extern(
            [shape],
            [xt],
            lambda ins, outs: _patches_ir(sel, pp, planes, list(ins), list(outs), mode),
            dtype=[sel.dtype],
            name="tpat_col2im_patches",
            in_buffers=[ib],
            out_buffers=[ob],
        )

    return bb.emit_te(stage, x, primfunc_name_hint="tpat_col2im_patches")


def row_walk(sel):
    """Block columns walked by one thread along the last dim (0: no row walk), for a patch grid:
    the last dim's blocks do not overlap (stride >= span: one candidate, column l = t // stride and
    offset k = t % stride for t = x + pad), a stride of at least a 32-B sector of elements and a
    pad that is a whole number of strides (so x = (l - pad / stride) * stride + k splits cleanly).
    Then a thread takes the offset k of up to WALK consecutive columns l: its reads are one
    contiguous run of the input row of that offset (the sectors of its first load serve the rest
    from L1), a warp's stores are runs of `stride` consecutive pixels, whole sectors. One pixel per
    thread instead reads, per warp, one element of 16-32 different input rows for each store."""
    if terms(sel) > UNROLL or patch_plan(sel) is not None:
        return 0
    form, n = dim_forms(sel)[-1]
    s, size = sel.strides[-1], dtypes.size(sel.dtype)
    if form != "col" or n != 1 or s * size < 32 or sel.pad_begin[-1] % s or sel.img[-1] < 2 * s:
        return 0
    return min(-(-sel.img[-1] // s), WALK)


def schedule(sch, blk, sel):
    """One output pixel per thread: the output loops fused, split into (blocks, THREADS). The
    reduction form (more than UNROLL candidates) keeps its candidate loops serial inside the
    thread; with a float32 sum of 16-bit data the sum is computed at the thread, in a register.
    A patch grid (`row_walk`) splits the last dim x into (column chunk, column in chunk, offset k)
    and gives a thread one offset k and a chunk of columns, walked in an unrolled loop."""
    sblk = None
    if terms(sel) > UNROLL and sel.dtype in ("float16", "bfloat16"):
        sblk = sch.get_sblock("tpat_col2im_sum")
    loops = list(sch.get_loops(blk))[: len(sel.img) + 2]
    walk = row_walk(sel)
    if walk:
        s = sel.strides[-1]
        cols = -(-sel.img[-1] // s)
        xc, xw, xk = sch.split(loops[-1], [-(-cols // walk), walk, s])
        sch.reorder(xc, xk, xw)
        fused = sch.fuse(*loops[:-1], xc, xk)
        bo, tx = sch.split(fused, [None, THREADS])
        sch.bind(bo, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
        sch.unroll(xw)
        return True
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    bo, tx = sch.split(fused, [None, THREADS])
    sch.bind(bo, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    if sblk is not None:
        sch.compute_at(sblk, tx)
        sch.set_scope(sblk, 0, "local")
    return True


class Col2ImLowering(Lowering):
    name = "col2im"
    ops = ("Col2Im",)
    primfunc = PRIMFUNC

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)

    def schedule(self, sch, block, sel):
        return schedule(sch, block, sel)


COL2IM = Col2ImLowering()
