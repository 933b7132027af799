"""TPAT's own TVM lowering of ONNX LayerNormalization over the last axis: one warp per row.

TVM's legalization scheduled by dlight reads the row three times with 2-byte loads (fp16) and
reduces across a 256-thread block. Here a warp owns a row and keeps it in registers:

  1. each lane loads its N/32 elements with 16-byte vector loads (8 x fp16 / 4 x fp32);
  2. mean: per-lane float32 sum, warp shuffle reduction (`tvm_warp_shuffle_down`), broadcast;
  3. variance: the same over (x - mean)^2 from registers (two-pass, stash_type float32);
  4. y = (x - mean) * rsqrt(var + epsilon) * scale + bias, 16-byte vector stores.

Blocks hold 8 warps (8 rows). Everything is TIR written with TVM's IR builder inside a
`te.extern` stage and goes through TVM's pipeline and CUDA codegen; `mode="cpu"` runs the same
formulas with serial loops (no shuffles) for the LLVM tests. Lowered when: axis is the last one,
N is static and a multiple of 32 x vector width, Scale/B have shape [N], only Y is used, float16 /
bfloat16 / float32. Leading dimensions (rows) may be symbolic.
"""
from __future__ import annotations

import numpy as np

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
WARPS_PER_BLOCK = 8


def select(node, ops, info, attr):
    if len(info.outputs) != 1 or len(node.output) != 1:
        return None, "Mean/InvStdDev outputs are used"
    if len(ops) not in (2, 3) or ops[0][0] != "param":
        return None, "LayerNormalization arity"
    xshape, dtype = ops[0][2], ops[0][3]
    if dtype not in DTYPES or info.outputs[0]["dtype"] != dtype:
        return None, f"dtype {dtype}"
    r = len(xshape)
    axis = int(attr(node, "axis", -1))
    if r == 0 or axis % r != r - 1:
        return None, "only the last axis is lowered by TPAT"
    if int(attr(node, "stash_type", 1)) != 1:
        return None, "stash_type"
    n = xshape[-1]
    if not isinstance(n, int):
        return None, "normalized axis must be static"
    for o in ops[1:]:
        if o[0] == "absent":
            continue
        if list(o[2]) != [n] or o[3] != dtype:
            return None, "Scale/B must have shape [N] and X's dtype"
    vec = 16 // DTYPES[dtype]
    while vec > 1 and n % (32 * vec):
        vec //= 2
    if n % 32:
        return None, f"N={n} is not a multiple of 32"
    det = {"op": "LayerNormalization", "dtype": dtype, "xshape": xshape, "n": n, "vec": vec,
           "eps": float(attr(node, "epsilon", 1e-5)), "ops": ops}
    return f"layer_norm (last axis, warp per row, {vec}-wide vectors)", det


def _ln_ir(det, rows, lead, x, scale, bias, y, mode="gpu"):
    import tvm
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    from .lowering_ir import Threads, unravel

    n, vec, dtype = det["n"], det["vec"], det["dtype"]
    per = n // 32
    chunks = per // vec
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731

    def ld(buf, idx):
        v = buf[idx]
        return v if dtype == "float32" else tirx.Cast("float32", v)

    with IRBuilder() as ib:
        if mode != "gpu":
            with T.serial(0, rows) as row:
                li = unravel(tirx.Cast("int64", row), lead)
                acc = T.decl_buffer([2], "float32", scope="global")
                T.buffer_store(acc, f32(0), [0])
                T.buffer_store(acc, f32(0), [1])
                with T.serial(0, n) as e:
                    T.buffer_store(acc, acc[0] + ld(x, li + [e]), [0])
                mean = acc[0] / f32(n)
                with T.serial(0, n) as e:
                    d = ld(x, li + [e]) - mean
                    T.buffer_store(acc, acc[1] + d * d, [1])
                rstd = tirx.rsqrt(acc[1] / f32(n) + f32(det["eps"]))
                with T.serial(0, n) as e:
                    v = (ld(x, li + [e]) - mean) * rstd
                    if scale is not None:
                        v = v * ld(scale, [e])
                    if bias is not None:
                        v = v + ld(bias, [e])
                    T.buffer_store(y, v if dtype == "float32" else tirx.Cast(dtype, v), li + [e])
            return ib.get()
        nb = (rows + i64(WARPS_PER_BLOCK - 1)) // i64(WARPS_PER_BLOCK)
        th = Threads("gpu", nb, 32 * WARPS_PER_BLOCK)
        with th as bx:
            tx = th.tx
            lane = tirx.Cast("int32", tx) % 32
            row = tirx.Cast("int64", bx) * i64(WARPS_PER_BLOCK) + tirx.Cast("int64", tx) // i64(32)
            loc = T.decl_buffer([per], dtype, scope="local")
            auxs = T.decl_buffer([per], dtype, scope="local")
            auxb = T.decl_buffer([per], dtype, scope="local")
            acc = T.decl_buffer([2], "float32", scope="local")
            mask = tvm.ir.Call("tirx.tvm_warp_activemask", [], ret_ty="uint32")

            def warp_sum(k):
                for s in (16, 8, 4, 2, 1):
                    sh = tvm.ir.Call("tirx.tvm_warp_shuffle_down",
                                     [mask, acc[k], tirx.const(s, "int32"), tirx.const(32, "int32"),
                                      tirx.const(32, "int32")], ret_ty="float32")
                    T.buffer_store(acc, acc[k] + sh, [k])
                T.buffer_store(acc, tvm.ir.Call(
                    "tirx.tvm_warp_shuffle", [mask, acc[k], tirx.const(0, "int32"),
                                              tirx.const(32, "int32"), tirx.const(32, "int32")],
                    ret_ty="float32"), [k])

            def col(j, v):
                """Column (int64) of chunk j, element v of this lane."""
                return tirx.Cast("int64", (j * 32 + lane) * vec + v)

            with T.If(row < rows):
                with T.Then():
                    li = unravel(row, lead)
                    with T.unroll(0, chunks) as j:
                        with T.vectorized(0, vec) as v:
                            T.buffer_store(loc, x[tuple(li + [col(j, v)])], [j * vec + v])
                    T.buffer_store(acc, f32(0), [0])
                    with T.unroll(0, per) as e:
                        T.buffer_store(acc, acc[0] + ld(loc, [e]), [0])
                    warp_sum(0)
                    mean = acc[0] / f32(n)
                    T.buffer_store(acc, f32(0), [1])
                    with T.unroll(0, per) as e:
                        d = ld(loc, [e]) - mean
                        T.buffer_store(acc, acc[1] + d * d, [1])
                    warp_sum(1)
                    rstd = tirx.rsqrt(acc[1] / f32(n) + f32(det["eps"]))
                    # Scale and B by 16-byte loads into registers; the result in float32, rounded once
                    for buf, dst in ((scale, auxs), (bias, auxb)):
                        if buf is not None:
                            with T.unroll(0, chunks) as j:
                                with T.vectorized(0, vec) as v:
                                    T.buffer_store(dst, buf[col(j, v)], [j * vec + v])
                    with T.unroll(0, per) as e:
                        val = (ld(loc, [e]) - mean) * rstd
                        if scale is not None:
                            val = val * ld(auxs, [e])
                        if bias is not None:
                            val = val + ld(auxb, [e])
                        T.buffer_store(loc, val if dtype == "float32" else tirx.Cast(dtype, val), [e])
                    with T.unroll(0, chunks) as j:
                        with T.vectorized(0, vec) as v:
                            T.buffer_store(y, loc[j * vec + v], li + [col(j, v)])
    return ib.get()


def emit(bb, params, det, mode="gpu"):
    from tvm import relax, te, tirx

    ops = det["ops"]
    args = []
    for o in ops:
        if o[0] == "param":
            args.append(params[o[1]])
        elif o[0] == "const":
            args.append(relax.const(np.ascontiguousarray(o[1]), o[3]))
        else:
            args.append(None)
    present = [a for a in args if a is not None]
    has_scale = len(args) > 1 and args[1] is not None
    has_bias = len(args) > 2 and args[2] is not None

    from .lowering_ir import lead_rows

    def stage(*ts):
        lead, rows = lead_rows(ts[0])

        def body(ins, outs):
            sc = ins[1] if has_scale else None
            bi = ins[1 + int(has_scale)] if has_bias else None
            return _ln_ir(det, rows, lead, ins[0], sc, bi, outs[0], mode)

        # Buffers without elem_offset (compact), so 16-byte vector access is plain indexing.
        bufs = [tirx.decl_buffer(t.shape, t.dtype, name=f"b{k}", elem_offset=0) for k, t in enumerate(ts)]
        out = tirx.decl_buffer(ts[0].shape, det["dtype"], name="y", elem_offset=0)
        return te.extern([ts[0].shape], list(ts), body, dtype=det["dtype"], name="tpat_layer_norm",
                         in_buffers=bufs, out_buffers=[out])

    return bb.emit_te(stage, *present, primfunc_name_hint="tpat_layer_norm")
