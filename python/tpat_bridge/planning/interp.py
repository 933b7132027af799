"""The host-IR interpreter: TVM's compiled Relax `main` and host PrimFuncs -> the plan's steps.

`Interp(info, cap).run()` walks the captured Relax `main` (alloc_tensor / PrimFunc calls / reshape
views) and every host PrimFunc it calls (launches through `tirx.call_ffi_kernel`, host loops,
buffer bindings), symbolically: shapes stay expressions over the node's symbols and loop variables.
Each IR node kind has its own handler, found in a table by the node's class (`_SUBST` for host
expressions, `_STMTS` for host statements, `_RELAX_OPS` / `_RELAX_CALLEES` for Relax calls); a kind
with no handler is the plan error `unsupported_lowering`, never skipped. Results: `steps`
(launch / loop / copy), `kernel_sigs` + `kernel_order`, `out_buffers` (workspace layout),
`workspace`, `constants`, `out_shapes`.
"""

from __future__ import annotations

import base64

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.tirx import buffer as tbuf

from .. import dtypes
from ..errors import PlanError
from ..node import NodeInfo
from . import expr as plan_expr

WORKSPACE_ALIGNMENT = 256


def _dtype_bytes(dtype: str) -> int:
    if dtype not in dtypes.DTYPES:
        raise PlanError("unsupported_dtype", f"dtype {dtype} is not supported in plans")
    return dtypes.size(dtype)


def _handler(table: dict, obj):
    """The table's handler for obj's class or its nearest base class, else None."""
    for cls in type(obj).__mro__:
        h = table.get(cls)
        if h is not None:
            return h
    return None


def _unsupported(what):
    return PlanError("unsupported_lowering", what)


class Interp:
    def __init__(self, info: NodeInfo, cap: dict):
        self.info = info
        self.cap = cap
        self.host = cap["host"]
        self.sym_names = {}  # tir Var -> plan symbol name
        self.buffers = []  # [{"id","dtype","shape":[PrimExpr]}]
        self.constants = []
        self.const_ids = {}
        self.steps = []
        self.kernel_sigs = {}
        self.kernel_order = []
        self.loop_count = 0
        self.dev_funcs = {gv.name_hint: f for dm in cap.get("dev", []) for gv, f in dm.functions.items()}

    # ---------------- expressions
    def subst(self, e, env):
        """Rebuild a PrimExpr replacing vars with env values (PrimExprs over symbols/loop vars)."""
        if isinstance(e, int):
            return tirx.IntImm("int64", e)
        h = _handler(_SUBST, e)
        if h is None:
            raise _unsupported(f"unsupported host expression: {e}")
        return h(self, e, env)

    def _subst_var(self, e, env):
        if e in env:
            return env[e]
        if e in self.sym_names:
            return e
        raise _unsupported(f"unbound variable '{e.name}' in host code")

    def _subst_cast(self, e, env):
        return tirx.Cast(str(e.ty.dtype), self.subst(e.value, env))

    def _subst_op(self, e, env):
        op = plan_expr.op_of(e)
        if op is None:  # a Call that is not if_then_else
            raise _unsupported(f"unsupported host expression: {e}")
        args = [self.subst(x, env) for x in plan_expr.operands(e, op)]
        return tirx.Select(*args) if isinstance(e, tvm.ir.Call) else op.tir(*args)

    def to_json(self, e):
        if isinstance(e, int):
            return {"int": e}
        try:
            return plan_expr.to_json(plan_expr.simplify(e), self.sym_names)
        except plan_expr.ExprError as ex:
            raise _unsupported(str(ex)) from None

    # ---------------- relax main
    def run(self):
        main = self.cap["relax"]["main"]
        env = {}
        # Symbols: relax param shape vars
        for k, p in enumerate(main.params):
            si = p.ty
            if not isinstance(si, relax.TensorType) or si.shape is None:
                raise _unsupported(f"parameter {k} is not a shaped tensor")
            inp = self.info.inputs[k]
            for d, dim in enumerate(si.shape.values):
                if isinstance(dim, tvm.ir.Var):
                    want = inp["shape"][d]
                    self.sym_names[dim] = want if isinstance(want, str) else dim.name
            env[p] = {"kind": "input", "index": k}
        for blk in main.body.blocks:
            for b in blk.bindings:
                self.binding(b, env)
        out_val = self.resolve(main.body.body, env)
        outs = out_val if isinstance(out_val, list) else [out_val]
        self.finish_outputs(outs, main)

    def resolve(self, e, env):
        """A Relax value -> input / buffer / constant / prim / shape binding (or a list of them)."""
        if isinstance(e, tvm.ir.Var) and isinstance(e.ty, tvm.ir.PrimType) and e not in env:
            return {"kind": "prim", "value": e}
        if isinstance(e, (tirx.IntImm, tirx.FloatImm)) or (
            isinstance(e.ty, tvm.ir.PrimType)
            if hasattr(e, "ty") and not isinstance(e, tvm.ir.Var) and not isinstance(e, tvm.ir.Constant)
            else False
        ):
            return {"kind": "prim", "value": e}
        if isinstance(e, tvm.ir.Constant):
            return self.constant(e)
        if isinstance(e, tvm.ir.Var):
            if e not in env:
                raise _unsupported(f"unknown relax var {e.name}")
            return env[e]
        if isinstance(e, relax.Tuple):
            return [self.resolve(x, env) for x in e.fields]
        if isinstance(e, relax.TupleGetItem):
            t = self.resolve(e.tuple_value, env)
            return t[e.index]
        if isinstance(e, relax.ShapeExpr):
            return {"kind": "shape", "values": list(e.values)}
        raise _unsupported(f"unsupported relax expression {type(e).__name__}")

    def constant(self, c):
        key = c
        if key in self.const_ids:
            return {"kind": "constant", "id": self.const_ids[key]}
        if not hasattr(c, "value") or not hasattr(c.value, "numpy"):
            raise _unsupported(f"unsupported relax constant {c}")
        arr = c.value.numpy()
        dtype = str(c.value.dtype)
        _dtype_bytes(dtype)
        cid = len(self.constants)
        if dtype == "bool":
            raw = arr.astype(np.uint8).tobytes()
        elif dtype == "bfloat16":
            raw = np.ascontiguousarray(arr).view(np.uint16).astype("<u2").tobytes()
        else:
            raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        self.constants.append(
            {
                "id": cid,
                "dtype": dtype,
                "shape": [int(x) for x in arr.shape],
                "data": base64.b64encode(raw).decode("ascii"),
            }
        )
        self.const_ids[key] = cid
        return {"kind": "constant", "id": cid}

    def binding(self, b, env):
        if isinstance(b, relax.MatchCast):
            v = self.resolve(b.value, env)
            si = b.var.ty
            if isinstance(si, relax.TensorType) and si.shape is not None:
                for dim in si.shape.values:
                    if isinstance(dim, tvm.ir.Var) and dim not in self.sym_names:
                        raise PlanError(
                            "data_dependent_shape",
                            f"shape variable '{dim.name}' is only known at run time",
                        )
            env[b.var] = v
            return
        val = b.value
        if not isinstance(val, relax.Call):
            env[b.var] = self.resolve(val, env)
            return
        op = val.op
        h = _RELAX_OPS.get(op.name) if isinstance(op, tvm.ir.Op) else _handler(_RELAX_CALLEES, op)
        if h is None:
            self._not_a_kernel(op)
        env[b.var] = h(self, val, env)

    def _alloc_tensor(self, val, env):
        return self.new_buffer(str(val.args[1].value), list(val.args[0].values))

    def _call_tir(self, val, env):
        self.call_primfunc(val.op, val.args, env)
        return None

    def _view(self, val, env):  # relax.reshape: a view, same memory
        return self.resolve(val.args[0], env)

    def _null(self, val, env):
        return None

    def _extern(self, val, env):
        name = val.op.global_symbol
        if name in ("vm.builtin.reshape",):
            return self.resolve(val.args[0], env)
        low = name.lower()
        if "nonzero" in low or "unique" in low:
            raise PlanError("data_dependent_shape", f"runtime builtin {name}")
        raise _unsupported(f"runtime builtin call {name}")

    def _not_a_kernel(self, op):
        name = getattr(op, "name", None) or getattr(op, "name_hint", None) or str(op)
        low = str(name).lower()
        if name in ("relax.tensor_to_shape", "relax.shape_to_tensor") or "nonzero" in low or "unique" in low:
            raise PlanError(
                "data_dependent_shape",
                f"{self.info.op_type}: TVM computes a shape from tensor values ({name}); no static launch plan exists",
            )
        raise _unsupported(f"relax call to {name} is not a kernel")

    def new_buffer(self, dtype, shape):
        _dtype_bytes(dtype)
        bid = len(self.buffers)
        self.buffers.append({"id": bid, "dtype": dtype, "shape": shape, "output": None})
        return {"kind": "buffer", "id": bid}

    @staticmethod
    def relax_shape_of(arg):
        si = arg.ty
        if isinstance(si, relax.TensorType) and si.shape is not None:
            return list(si.shape.values)
        return None

    # ---------------- host PrimFunc
    def call_primfunc(self, gv, args, env):
        name = gv.name_hint
        try:
            f = self.host[name]
        except KeyError:  # noqa: BLE001
            raise _unsupported(f"no TIR function {name}") from None
        flat = self._flatten_args(name, args, env)
        if len(flat) != len(f.params):
            raise _unsupported(f"{name}: {len(flat)} relax args for {len(f.params)} TIR params")
        scal = {}
        bufs = {}
        for p, a in zip(f.params, flat):
            if tbuf.is_buffer_var(p):
                if a[0] != "tensor":
                    raise _unsupported(f"{name}: scalar passed for buffer")
                bufs[p] = a[1]
                self._bind_buffer_dims(name, p.ty, a[2], scal)
            else:
                if a[0] != "scalar":
                    raise _unsupported(f"{name}: tensor passed for scalar")
                scal[p] = self.subst(a[1], {})
        self.env_s = scal
        self.env_b = bufs
        self.steps.extend(self.stmt(f.body, name))

    def _flatten_args(self, name, args, env):
        """Relax call arguments -> one ("scalar", expr) or ("tensor", binding, shape) per TIR param."""
        flat = []
        for a in args:
            v = self.resolve(a, env)
            if isinstance(v, dict) and v.get("kind") == "shape":
                for x in v["values"]:
                    flat.append(("scalar", x))
            elif isinstance(v, dict) and v.get("kind") == "prim":
                flat.append(("scalar", v["value"]))
            elif isinstance(v, dict):
                flat.append(("tensor", v, self.relax_shape_of(a)))
            else:
                raise _unsupported(f"argument of {name} is not a tensor")
        return flat

    def _bind_buffer_dims(self, name, ty, rshape, scal):
        """A buffer parameter's symbolic dims and elem_offset, bound from the Relax shape."""
        if ty.shape is not None and rshape is not None:
            for dim, rdim in zip(ty.shape, rshape):
                if isinstance(dim, tvm.ir.Var) and dim not in scal:
                    scal[dim] = self.subst(rdim, {})
        eo = ty.elem_offset
        if isinstance(eo, tvm.ir.Var) and eo not in scal:
            scal[eo] = tirx.IntImm("int64", 0)
        if ty.strides:
            for s in ty.strides:
                if isinstance(s, tvm.ir.Var):
                    raise _unsupported(f"{name}: symbolic strides")

    def ptr(self, e, fname):
        if isinstance(e, tvm.ir.Call) and getattr(e.op, "name", "") == "tirx.buffer_data":
            bv = e.args[0]
            if bv in self.env_b:
                return self.env_b[bv]
        if isinstance(e, tvm.ir.Var) and e in self.env_b:
            return self.env_b[e]
        raise _unsupported(f"{fname}: unsupported pointer argument {e}")

    def stmt(self, s, fname):
        """Host statement -> plan steps."""
        h = _handler(_STMTS, s)
        if h is None:
            raise _unsupported(f"{fname}: host statement {type(s).__name__}")
        return h(self, s, fname)

    def _seq(self, s, fname):
        out = []
        for x in s.seq:
            out.extend(self.stmt(x, fname))
        return out

    def _bind(self, s, fname):
        v = s.value
        if isinstance(v, tvm.ir.Call) and getattr(v.op, "name", "") == "tirx.buffer_data":
            self.env_b[s.var] = self.ptr(v, fname)
        else:
            self.env_s[s.var] = self.subst(v, self.env_s)
        return []

    def _decl_buffer(self, s, fname):
        self.env_b[s.buffer] = self.ptr(s.data, fname)
        return []

    def _alloc_buffer(self, s, fname):
        ty = s.buffer.ty
        scope = str(ty.storage_scope)
        if scope not in ("global", ""):
            raise _unsupported(f"{fname}: host allocation in {scope}")
        shape = [self.subst(x, self.env_s) for x in ty.shape]
        self.env_b[s.buffer] = self.new_buffer(str(ty.dtype), shape)
        return []

    def _attr(self, s, fname):
        return self.stmt(s.body, fname)

    def _assert(self, s, fname):
        return []

    def _for(self, s, fname):
        step = getattr(s, "step", None)
        if step is not None and not (isinstance(step, tirx.IntImm) and step.value == 1):
            raise _unsupported(f"{fname}: host loop with step {step}")
        used = {x["name"] for x in self.info.symbols}
        lname = f"loop{self.loop_count}"
        while lname in used:
            lname = "_" + lname
        lv = tirx.Var(lname, "int64")
        self.loop_count += 1
        self.sym_names[lv] = lv.name
        begin = self.subst(s.min, self.env_s)
        self.env_s[s.loop_var] = tirx.Cast(str(s.loop_var.ty.dtype), lv) if str(s.loop_var.ty.dtype) != "int64" else lv
        body = self.stmt(s.body, fname)
        ext = self.subst(s.extent, self.env_s)
        return [
            {
                "kind": "loop",
                "var": lv.name,
                "begin": self.to_json(begin),
                "extent": self.to_json(ext),
                "body": body,
            }
        ]

    def _evaluate(self, s, fname):
        v = s.value
        if isinstance(v, tirx.IntImm):
            return []
        if isinstance(v, tvm.ir.Call) and getattr(v.op, "name", "") == "tirx.call_ffi_kernel":
            return [self.launch(v, fname)]
        raise _unsupported(f"{fname}: host call {v}")

    def _if(self, s, fname):
        raise _unsupported(f"{fname}: host-side condition {s.condition}")

    def launch(self, call, fname):
        kname = str(call.args[0].value)
        tags = [str(t) for t in call.attrs.launch_params]
        consuming = [
            t
            for t in tags
            if t.startswith("blockIdx.") or t.startswith("threadIdx.") or t == "tirx.use_dyn_shared_memory"
        ]
        for t in tags:
            if t not in consuming:
                raise _unsupported(f"{kname}: launch flag {t}")
        nl = len(consuming)
        kargs = list(call.args[1 : len(call.args) - nl])
        lvals = list(call.args[len(call.args) - nl :])
        dev = self.dev_funcs.get(kname)
        if dev is None:
            raise _unsupported(f"kernel {kname} not in the device module")
        if len(dev.params) != len(kargs):
            raise _unsupported(f"{kname}: {len(kargs)} call args for {len(dev.params)} kernel params")
        sig = []
        args = []
        for p, a in zip(dev.params, kargs):
            ty = p.ty
            if isinstance(ty, tvm.ir.PointerType):
                elem = ty.element_type
                pdt = str(elem.dtype) if hasattr(elem, "dtype") else "void"
                sig.append({"name": p.name, "type": "ptr", "dtype": pdt})
                args.append(self.ptr(a, fname))
            else:
                dt = str(ty.dtype)
                if not (dt.startswith("int") or dt.startswith("uint")):
                    raise _unsupported(f"{kname}: scalar param of type {dt}")
                sig.append({"name": p.name, "type": dt, "dtype": dt})
                args.append({"kind": "scalar", "expr": self.to_json(self.subst(a, self.env_s))})
        if kname not in self.kernel_sigs:
            self.kernel_sigs[kname] = sig
            self.kernel_order.append(kname)
        grid = [{"int": 1}, {"int": 1}, {"int": 1}]
        block = [{"int": 1}, {"int": 1}, {"int": 1}]
        smem = {"int": 0}
        for t, v in zip(consuming, lvals):
            ej = self.to_json(self.subst(v, self.env_s))
            if t == "tirx.use_dyn_shared_memory":
                smem = ej
            else:
                axis = "xyz".index(t[-1])
                (grid if t.startswith("blockIdx") else block)[axis] = ej
        return {
            "kind": "launch",
            "kernel": kname,
            "args": args,
            "grid": grid,
            "block": block,
            "dynamic_shared_memory_bytes": smem,
        }

    # ---------------- outputs and workspace
    def finish_outputs(self, outs, main):
        """Outputs written in place where a buffer is only the output, else copied; the remaining
        buffers renumbered densely and laid out in the workspace."""
        ret = main.ret_ty
        rets = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
        self.out_shapes = [[self.subst(x, {}) for x in si.shape.values] for si in rets]
        renames = self._outputs_in_place(outs)
        _rewrite_bindings(
            self.steps,
            lambda b: renames[b["id"]] if b.get("kind") == "buffer" and b["id"] in renames else b,
            copies=False,
        )
        keep = [b for b in self.buffers if b["output"] is None]
        newid = {b["id"]: i for i, b in enumerate(keep)}
        _rewrite_bindings(
            self.steps,
            lambda b: {"kind": "buffer", "id": newid[b["id"]]} if b.get("kind") == "buffer" else b,
            copies=True,
        )
        self._lay_out_workspace(keep, newid)

    def _outputs_in_place(self, outs):
        """Buffer id -> output binding for outputs written in place; copy steps for the others."""
        renames = {}
        copies = []
        for k, v in enumerate(outs):
            if not isinstance(v, dict):
                raise _unsupported(f"output {k} is not a tensor value")
            if v["kind"] == "buffer" and self.buffers[v["id"]]["output"] is None:
                self.buffers[v["id"]]["output"] = k
                renames[v["id"]] = {"kind": "output", "index": k}
            else:
                copies.append((k, v))
        for k, v in copies:
            src = renames.get(v.get("id")) if v["kind"] == "buffer" else v
            if src is None:
                src = v
            nbytes = self.nbytes_expr(self.info.outputs[k]["dtype"], self.out_shapes[k])
            self.steps.append(
                {
                    "kind": "copy",
                    "src": src,
                    "dst": {"kind": "output", "index": k},
                    "bytes": self.to_json(nbytes),
                }
            )
        return renames

    def _lay_out_workspace(self, keep, newid):
        offset = tirx.IntImm("int64", 0)
        bufs = []
        for b in keep:
            shape = [self.subst(x, {}) for x in b["shape"]]
            nbytes = self.nbytes_expr(b["dtype"], shape)
            bufs.append(
                {
                    "id": newid[b["id"]],
                    "dtype": b["dtype"],
                    "shape": [self.to_json(x) for x in shape],
                    "bytes": self.to_json(nbytes),
                    "offset": self.to_json(offset),
                }
            )
            a = WORKSPACE_ALIGNMENT
            offset = offset + tirx.FloorDiv(nbytes + (a - 1), tirx.IntImm("int64", a)) * a
        self.out_buffers = bufs
        self.workspace = self.to_json(offset)

    def nbytes_expr(self, dtype, shape):
        n = tirx.IntImm("int64", _dtype_bytes(dtype))
        for x in shape:
            x = x if not isinstance(x, int) else tirx.IntImm("int64", x)
            if str(x.ty.dtype) != "int64":
                x = tirx.Cast("int64", x)
            n = n * x
        return n


def _rewrite_bindings(steps, fix, copies):
    """Apply `fix` to every launch argument (and, with `copies`, every copy source), loops included."""
    for st in steps:
        if st["kind"] == "launch":
            st["args"] = [fix(a) for a in st["args"]]
        elif st["kind"] == "loop":
            _rewrite_bindings(st["body"], fix, copies)
        elif st["kind"] == "copy" and copies:
            st["src"] = fix(st["src"])


# Host expressions: class -> handler(interp, expr, env). The operators are plan_expr.OPS.
_SUBST = {
    tirx.IntImm: lambda it, e, env: e,
    tirx.FloatImm: lambda it, e, env: e,
    tvm.ir.Var: Interp._subst_var,
    tirx.Cast: Interp._subst_cast,
    tvm.ir.Call: Interp._subst_op,  # if_then_else only
    **{op.tir: Interp._subst_op for op in plan_expr.OPS},
}

# Host statements: class -> handler(interp, stmt, function name) -> steps.
_STMTS = {
    tirx.SeqStmt: Interp._seq,
    tirx.Bind: Interp._bind,
    tirx.DeclBuffer: Interp._decl_buffer,
    tirx.AllocBuffer: Interp._alloc_buffer,
    tirx.AttrStmt: Interp._attr,
    tirx.AssertStmt: Interp._assert,
    tirx.For: Interp._for,
    tirx.Evaluate: Interp._evaluate,
    tirx.IfThenElse: Interp._if,
}

# Relax calls in main: by operator name (tvm.ir.Op), else by the callee's class.
_RELAX_OPS = {
    "relax.builtin.alloc_tensor": Interp._alloc_tensor,
    "relax.reshape": Interp._view,
    "relax.null_value": Interp._null,
}
_RELAX_CALLEES = {
    tvm.ir.GlobalVar: Interp._call_tir,
    relax.ExternFunc: Interp._extern,
}
