"""ONNX -> Relax: TVM's ONNX frontend, with the outputs' dtypes made to match the ONNX declaration
(a float64 output of the frontend, OneHot's, is cast back inside the Relax module; a note in fixups)."""

from __future__ import annotations

from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from ..errors import PlanError
from ..node import NodeInfo


def build_relax_module(info: NodeInfo):
    """ONNX -> Relax IRModule with output dtypes matching the ONNX declaration."""
    try:
        mod = from_onnx(info.model, keep_params_in_input=False)
    except Exception as e:  # noqa: BLE001
        msg = " | ".join(s.strip() for s in str(e).strip().splitlines()[-4:] if s.strip())
        low = msg.lower()
        if "nonzero" in low or "unique" in low or "data-dependent" in low:
            raise PlanError("data_dependent_shape", f"frontend: {msg[:1500]}") from None
        raise PlanError("frontend_import_failed", f"{info.op_type}: {type(e).__name__}: {msg[:1500]}") from None
    main = mod["main"]
    ret = main.ret_ty
    outs = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    if len(outs) != len(info.outputs):
        raise PlanError(
            "frontend_type_bug",
            f"frontend produced {len(outs)} outputs, ONNX declares {len(info.outputs)}",
        )
    casts = []
    for k, (si, decl) in enumerate(zip(outs, info.outputs)):
        if not isinstance(si, relax.TensorType):
            raise PlanError("unsupported_lowering", f"output {k} is not a tensor")
        got = str(si.dtype)
        if got != decl["dtype"]:
            ok = (got == "float64" and decl["dtype"] in ("float32", "float16", "bfloat16")) or (
                got in ("int64", "int32") and decl["dtype"] in ("int64", "int32")
            )
            if not ok:
                raise PlanError(
                    "frontend_type_bug",
                    f"output {k} ('{decl['name']}'): frontend gives {got}, ONNX declares {decl['dtype']}; no safe cast",
                )
            casts.append((k, decl["dtype"]))
            info.fixups.append(
                f"output {k} ('{decl['name']}'): frontend produced {got}, cast to "
                f"{decl['dtype']} inside the Relax module (ONNX declared type)"
            )
    if casts:
        mod = _cast_outputs(mod, dict(casts), isinstance(ret, relax.TupleType), len(outs))
    return mod


def _cast_outputs(mod, casts: dict, is_tuple: bool, n: int):
    """Append `astype` bindings after main's body so outputs carry the ONNX-declared dtype."""
    main = mod["main"]
    bb = relax.BlockBuilder(mod)
    body = main.body
    ret = body.body
    bindings = []
    items = []
    for k in range(n):
        item = relax.TupleGetItem(ret, k) if is_tuple else ret
        if k in casts:
            call = bb.normalize(relax.op.astype(item, casts[k]))
            v = relax.Var(f"tpat_cast{k}", call.ty)
            bindings.append(relax.VarBinding(v, call))
            item = v
        elif is_tuple:
            item = bb.normalize(item)
            v = relax.Var(f"tpat_item{k}", item.ty)
            bindings.append(relax.VarBinding(v, item))
            item = v
        items.append(item)
    new_ret = relax.Tuple(items) if is_tuple else items[0]
    blocks = list(body.blocks)
    if blocks and isinstance(blocks[-1], relax.DataflowBlock):
        # same dataflow block, so FuseOps can fuse the cast into the producer kernel
        blocks[-1] = relax.DataflowBlock(list(blocks[-1].bindings) + bindings)
    else:
        blocks.append(relax.BindingBlock(bindings))
    new_body = relax.SeqExpr(blocks, new_ret)
    ret_ty = relax.TupleType([x.ty for x in items]) if is_tuple else items[0].ty
    new_main = relax.Function(main.params, new_body, ret_ty, main.is_pure, main.attrs)
    mod = mod.clone() if hasattr(mod, "clone") else mod
    mod["main"] = new_main
    return relax.transform.Normalize()(mod)
