"""TPAT generic TensorRT plugin in Python (IPluginV3 + IPluginCreatorV3One).

The same plugin as common/tpat_plugin.cpp, for Python hosts: it needs no TensorRT headers and
no compiler, only the launcher library (libtpat_kernels.so) reached through ctypes, and works
with `tensorrt` or TensorRT-RTX (`tensorrt_rtx_bindings`), whichever imports.

Spec: a small JSON file per plugin

    {
      "name": "AddOne", "version": "1", "namespace": "tpat",
      "input_dtypes": ["float32"], "output_dtypes": ["float32"],
      "output_shapes": [[{"sym": "in0_d0"}, {"int": 16}]],
      "library": "build/libtpat_kernels.so",      (absolute, or relative to the spec file)
      "symbol_prefix": "tpat_AddOne_",
      "num_tactics": 2                             (optional: else tpat_<P>_num_tactics())
    }

Optional `"data_dependent": [null | {"dim": d, "size_output": j}, ...]` (one per output): output k's
dim d is the value of output j, a 0-D int64 size tensor the kernels write on the device;
output_shapes[k][d] is its upper bound (IExprBuilder.declare_size_tensor, opt = upper).

`output_shapes[k]` lists output k's dims as KernelPlan Expr ASTs
(schemas/kernel-plan.schema.json $defs.Expr) in which {"sym": "in<i>_d<j>"} is dim j of input i.
dtypes: float32 float16 bfloat16 int8 uint8 int32 int64 bool (also fp8 int4 fp4 where TensorRT
has them).

Use: `register(["AddOne.json", ...])` registers one creator per spec in the plugin registry
(namespace from the spec); then TensorRT's ONNX parser maps nodes whose op_type is the plugin
name, with attributes plugin_version / plugin_namespace, to these plugins.
"""

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path

import numpy as np


def _import_trt():
    try:
        import tensorrt as trt  # noqa: F401

        return trt
    except Exception:  # noqa: BLE001
        import tensorrt_rtx_bindings as trt

        return trt


trt = _import_trt()

TPAT_MAX_DIMS = 8
TPAT_OK, TPAT_BAD_DIMS, TPAT_CUDA_ERROR, TPAT_BAD_TACTIC = 0, 1, 2, 3
_CODE_NAMES = {0: "TPAT_OK", 1: "TPAT_BAD_DIMS", 2: "TPAT_CUDA_ERROR", 3: "TPAT_BAD_TACTIC"}


class tpat_dims(ctypes.Structure):
    _fields_ = [("nb_dims", ctypes.c_int32), ("d", ctypes.c_int64 * TPAT_MAX_DIMS)]


def _dtype(name: str):
    table = {
        "float32": "FLOAT",
        "float": "FLOAT",
        "float16": "HALF",
        "half": "HALF",
        "bfloat16": "BF16",
        "int8": "INT8",
        "uint8": "UINT8",
        "int32": "INT32",
        "int64": "INT64",
        "bool": "BOOL",
        "fp8": "FP8",
        "float8e4m3fn": "FP8",
        "int4": "INT4",
        "fp4": "FP4",
    }
    attr = table.get(name.lower())
    if attr is None or not hasattr(trt.DataType, attr):
        raise ValueError(f"unsupported dtype {name!r}")
    return getattr(trt.DataType, attr)


class Launcher:
    """ctypes view of one plugin's launcher C ABI (tpat_launcher_abi.h)."""

    _libs: dict = {}
    _lock = threading.Lock()

    def __init__(self, library: str, prefix: str):
        with Launcher._lock:
            lib = Launcher._libs.get(library)
            if lib is None:
                lib = ctypes.CDLL(library, mode=ctypes.RTLD_LOCAL)
                Launcher._libs[library] = lib
        self.library = library
        self.prefix = prefix
        P = ctypes.POINTER
        self.output_dims = self._fn("output_dims", ctypes.c_int, [P(tpat_dims), P(tpat_dims)])
        self.workspace_size = self._fn("workspace_size", ctypes.c_int, [P(tpat_dims), P(ctypes.c_size_t)])
        self.initialize = self._fn("initialize", ctypes.c_int, [])
        self.enqueue = self._fn(
            "enqueue",
            ctypes.c_int,
            [P(tpat_dims), P(ctypes.c_void_p), P(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p],
        )
        self.terminate = self._fn("terminate", None, [])
        self.num_tactics = self._fn("num_tactics", ctypes.c_int, [])
        self._lib = lib

    def _fn(self, suffix, restype, argtypes):
        with Launcher._lock:
            lib = Launcher._libs[self.library]
        f = getattr(lib, self.prefix + suffix)
        f.restype = restype
        f.argtypes = argtypes
        return f


def to_tpat_dims(shapes) -> ctypes.Array:
    """Sequence of shapes (sequences of ints, or TensorRT Dims) -> tpat_dims[n]."""
    arr = (tpat_dims * max(len(shapes), 1))()
    for i, s in enumerate(shapes):
        s = list(s)
        if len(s) > TPAT_MAX_DIMS:
            raise ValueError(f"rank {len(s)} exceeds TPAT_MAX_DIMS")
        arr[i].nb_dims = len(s)
        for j, v in enumerate(s):
            arr[i].d[j] = int(v)
    return arr


def _code(what: str, code: int) -> str:
    return f"{what} failed: {_CODE_NAMES.get(code, 'unknown launcher error')} ({code})"


# --- Expr AST -> IDimensionExpr ----------------------------------------------------------------


def _floordiv(a, b):
    return a // b


def _truncdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_FOLD = {
    "add": lambda a: a[0] + a[1],
    "sub": lambda a: a[0] - a[1],
    "mul": lambda a: a[0] * a[1],
    "floordiv": lambda a: a[0] // a[1],
    "floormod": lambda a: a[0] % a[1],
    "truncdiv": lambda a: _truncdiv(a[0], a[1]),
    "truncmod": lambda a: a[0] - _truncdiv(a[0], a[1]) * a[1],
    "min": lambda a: min(a[0], a[1]),
    "max": lambda a: max(a[0], a[1]),
    "shl": lambda a: a[0] << a[1],
    "shr": lambda a: a[0] >> a[1],
    "eq": lambda a: int(a[0] == a[1]),
    "ne": lambda a: int(a[0] != a[1]),
    "lt": lambda a: int(a[0] < a[1]),
    "le": lambda a: int(a[0] <= a[1]),
    "gt": lambda a: int(a[0] > a[1]),
    "ge": lambda a: int(a[0] >= a[1]),
    "and": lambda a: int(bool(a[0]) and bool(a[1])),
    "or": lambda a: int(bool(a[0]) or bool(a[1])),
    "not": lambda a: int(not a[0]),
    "select": lambda a: a[1] if a[0] else a[2],
}


def evaluate(expr: dict, env: dict) -> int:
    """Concrete value of an Expr (env: symbol -> int)."""
    if "int" in expr:
        return int(expr["int"])
    if "sym" in expr:
        return int(env[expr["sym"]])
    return _FOLD[expr["op"]]([evaluate(x, env) for x in expr["args"]])


class _DimBuilder:
    """Builds IDimensionExpr from Expr ASTs, folding constant sub-expressions."""

    def __init__(self, inputs, b):
        self.inputs = inputs
        self.b = b
        D = trt.DimensionOperation
        self.D = D

    def const(self, v):
        return self.b.constant(int(v))

    def _c(self, e):
        return e.get_constant_value() if e.is_constant() else None

    def op(self, o, x, y):
        return self.b.operation(o, x, y)

    def build(self, expr):
        if "int" in expr:
            return self.const(expr["int"])
        if "sym" in expr:
            name = expr["sym"]
            try:
                i, j = name[2:].split("_d")
                assert name.startswith("in")
                return self.inputs[int(i)][int(j)]
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"symbol {name!r} is not in<i>_d<j> or out of range") from e
        name = expr["op"]
        args = [self.build(a) for a in expr["args"]]
        consts = [self._c(a) for a in args]
        if all(c is not None for c in consts):
            return self.const(_FOLD[name](consts))
        D, one, zero = self.D, (lambda: self.const(1)), (lambda: self.const(0))
        x = args[0]
        y = args[1] if len(args) > 1 else None
        if name == "add":
            return self.op(D.SUM, x, y)
        if name == "sub":
            return self.op(D.SUB, x, y)
        if name == "mul":
            return self.op(D.PROD, x, y)
        if name in ("floordiv", "truncdiv"):  # shapes are non-negative: trunc == floor
            return self.op(D.FLOOR_DIV, x, y)
        if name in ("floormod", "truncmod"):
            return self.op(D.SUB, x, self.op(D.PROD, self.op(D.FLOOR_DIV, x, y), y))
        if name == "min":
            return self.op(D.MIN, x, y)
        if name == "max":
            return self.op(D.MAX, x, y)
        if name in ("shl", "shr"):
            s = consts[1]
            if s is None or not 0 <= s <= 62:
                raise ValueError(f"{name} needs a constant shift")
            return self.op(D.PROD if name == "shl" else D.FLOOR_DIV, x, self.const(1 << s))
        if name == "eq":
            return self.op(D.EQUAL, x, y)
        if name == "ne":
            return self.op(D.SUB, one(), self.op(D.EQUAL, x, y))
        if name == "lt":
            return self.op(D.LESS, x, y)
        if name == "gt":
            return self.op(D.LESS, y, x)
        if name == "le":
            return self.op(D.SUB, one(), self.op(D.LESS, y, x))
        if name == "ge":
            return self.op(D.SUB, one(), self.op(D.LESS, x, y))
        nz = lambda e: self.op(D.SUB, one(), self.op(D.EQUAL, e, zero()))  # noqa: E731
        if name == "and":
            return self.op(D.PROD, nz(x), nz(y))
        if name == "or":
            return self.op(D.MAX, nz(x), nz(y))
        if name == "not":
            return self.op(D.EQUAL, x, zero())
        if name == "select":
            if consts[0] is not None:
                return args[1] if consts[0] else args[2]
            c = nz(x)
            return self.op(D.SUM, self.op(D.PROD, c, args[1]), self.op(D.PROD, self.op(D.SUB, one(), c), args[2]))
        raise ValueError(f"unknown Expr operator {name!r}")


# --- spec --------------------------------------------------------------------------------------


class Spec:
    def __init__(self, data: dict, base_dir: Path | None = None):
        self.name = data["name"]
        self.version = str(data.get("version", "1"))
        self.namespace = data.get("namespace", "tpat")
        self.input_dtypes = [_dtype(t) for t in data["input_dtypes"]]
        self.output_dtypes = [_dtype(t) for t in data["output_dtypes"]]
        self.output_shapes = data["output_shapes"]
        if len(self.output_shapes) != len(self.output_dtypes):
            raise ValueError("output_shapes and output_dtypes differ in length")
        # per output: None or {"dim", "size_output"} (a data-dependent dim, IPluginV3 size tensor)
        self.data_dependent = list(data.get("data_dependent") or [None] * len(self.output_shapes))
        if len(self.data_dependent) != len(self.output_shapes):
            raise ValueError("data_dependent and output_shapes differ in length")
        for k, d in enumerate(self.data_dependent):
            if d is not None and not (
                0 <= int(d["dim"]) < len(self.output_shapes[k])
                and 0 <= int(d["size_output"]) < len(self.output_shapes)
                and self.output_shapes[int(d["size_output"])] == []
            ):
                raise ValueError(f"output {k}: data_dependent names no 0-D size output")
        lib = Path(data["library"])
        if not lib.is_absolute() and base_dir is not None:
            lib = base_dir / lib
        self.library = str(lib)
        self.prefix = data.get("symbol_prefix", f"tpat_{self.name}_")
        self.launcher = Launcher(self.library, self.prefix)
        n = data.get("num_tactics")
        self.num_tactics = int(n) if n is not None else int(self.launcher.num_tactics())
        if self.num_tactics < 1:
            raise ValueError("num_tactics must be >= 1")
        self.init_count = 0
        self.init_lock = threading.Lock()

    @classmethod
    def load(cls, path) -> Spec:
        path = Path(path)
        return cls(json.loads(path.read_text()), path.parent)


# --- plugin ------------------------------------------------------------------------------------


class TpatPlugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
    def __init__(self, spec: Spec, tactic: int = 0, phase=None):
        trt.IPluginV3.__init__(self)
        trt.IPluginV3OneCore.__init__(self)
        trt.IPluginV3OneBuild.__init__(self)
        trt.IPluginV3OneRuntime.__init__(self)
        self.spec = spec
        self.plugin_name = spec.name
        self.plugin_version = spec.version
        self.plugin_namespace = spec.namespace
        self.num_outputs = len(spec.output_dtypes)
        self.metadata_string = f"{spec.namespace}::{spec.name} v{spec.version}"
        self.tactic = int(tactic)  # TensorRT id: 0 default, 1..num_tactics
        self.phase = phase
        self.input_shapes = [[] for _ in spec.input_dtypes]
        self._initialized = False

    # IPluginV3
    def get_capability_interface(self, type):
        return self

    def clone(self):
        c = TpatPlugin(self.spec, self.tactic, self.phase)
        c.input_shapes = [list(s) for s in self.input_shapes]
        return c

    def destroy(self):
        self._release()

    def __del__(self):
        try:
            self._release()
        except Exception:  # noqa: BLE001
            pass

    # IPluginV3OneBuild
    def get_output_data_types(self, input_types):
        return list(self.spec.output_dtypes)

    def get_output_shapes(self, inputs, shape_inputs, expr_builder):
        db = _DimBuilder(inputs, expr_builder)
        dd = self.spec.data_dependent
        sizes = {}  # size output -> its IDimensionExpr, declared once (opt = upper = the bound)
        for k, d in enumerate(dd):
            if d is not None and d["size_output"] not in sizes:
                upper = db.build(self.spec.output_shapes[k][d["dim"]])
                sizes[d["size_output"]] = expr_builder.declare_size_tensor(d["size_output"], upper, upper)
        outs = []
        for k, dims in enumerate(self.spec.output_shapes):
            ex = [db.build(e) for e in dims]
            if dd[k] is not None:
                ex[dd[k]["dim"]] = sizes[dd[k]["size_output"]]
            outs.append(trt.DimsExprs(ex))
        return outs

    def supports_format_combination(self, pos, in_out, num_inputs):
        n_in = len(self.spec.input_dtypes)
        if num_inputs != n_in or pos < 0 or pos >= len(in_out):
            return False
        want = self.spec.input_dtypes[pos] if pos < n_in else self.spec.output_dtypes[pos - n_in]
        desc = in_out[pos].desc
        return desc.type == want and desc.format == trt.TensorFormat.LINEAR

    def configure_plugin(self, inp, out):
        shapes = [list(d.max) for d in inp]
        self.input_shapes = shapes
        self._workspace(shapes)  # raises when the launcher rejects the profile's max shapes

    def get_workspace_size(self, input_desc, output_desc):
        return self._workspace([list(d.max) for d in input_desc])

    def get_valid_tactics(self):
        n = self.spec.num_tactics
        return list(range(1, n + 1)) if n > 1 else []

    # IPluginV3OneRuntime
    def set_tactic(self, tactic):
        n = self.spec.num_tactics if self.spec.num_tactics > 1 else 0
        if not 0 <= int(tactic) <= n:
            raise ValueError(f"tactic {tactic} out of range")
        self.tactic = int(tactic)

    def on_shape_change(self, inp, out):
        self.input_shapes = [list(d.dims) for d in inp]

    def attach_to_context(self, context):
        c = self.clone()
        c._ensure_initialized()
        return c

    def get_fields_to_serialize(self):
        return trt.PluginFieldCollection(
            [trt.PluginField("tactic", np.array([self.tactic], dtype=np.int32), trt.PluginFieldType.INT32)]
        )

    def enqueue(self, input_desc, output_desc, inputs, outputs, workspace, stream):
        self._ensure_initialized()
        dims = to_tpat_dims([list(d.dims) for d in input_desc])
        ins = (ctypes.c_void_p * max(len(inputs), 1))(*[int(p) for p in inputs])
        outs = (ctypes.c_void_p * max(len(outputs), 1))(*[int(p) for p in outputs])
        tactic = self.tactic - 1 if self.tactic > 0 else 0
        code = self.spec.launcher.enqueue(
            dims, ins, outs, ctypes.c_void_p(int(workspace) or None), tactic, ctypes.c_void_p(int(stream) or None)
        )
        if code != TPAT_OK:
            raise RuntimeError(f"[tpat] {self.spec.name}: " + _code("enqueue", code))

    # helpers
    def _workspace(self, shapes) -> int:
        n = ctypes.c_size_t(0)
        code = self.spec.launcher.workspace_size(to_tpat_dims(shapes), ctypes.byref(n))
        if code != TPAT_OK:
            raise RuntimeError(f"[tpat] {self.spec.name}: " + _code(f"workspace_size{shapes}", code))
        return int(n.value)

    def _ensure_initialized(self):
        if self._initialized:
            return
        with self.spec.init_lock:
            code = self.spec.launcher.initialize()
            if code != TPAT_OK:
                raise RuntimeError(f"[tpat] {self.spec.name}: " + _code("initialize", code))
            self.spec.init_count += 1
            self._initialized = True

    def _release(self):
        if not getattr(self, "_initialized", False):
            return
        with self.spec.init_lock:
            self._initialized = False
            self.spec.init_count -= 1
            if self.spec.init_count <= 0:
                self.spec.init_count = 0
                self.spec.launcher.terminate()


class TpatPluginCreator(trt.IPluginCreatorV3One):
    def __init__(self, spec: Spec):
        trt.IPluginCreatorV3One.__init__(self)
        self.spec = spec
        self.name = spec.name
        self.plugin_namespace = spec.namespace
        self.plugin_version = spec.version
        self.field_names = trt.PluginFieldCollection(
            [trt.PluginField("tactic", np.array([], dtype=np.int32), trt.PluginFieldType.INT32)]
        )

    def create_plugin(self, name, fc, phase):
        tactic = 0
        for f in fc:
            if f.name == "tactic" and len(np.atleast_1d(f.data)) > 0:
                tactic = int(np.atleast_1d(f.data)[0])
        n = self.spec.num_tactics if self.spec.num_tactics > 1 else 0
        if not 0 <= tactic <= n:
            raise ValueError(f"[tpat] {self.spec.name}: serialized tactic {tactic} out of range")
        return TpatPlugin(self.spec, tactic, phase)


_registered: list = []  # keep creators alive as long as the process (the registry holds raw pointers)


def register(spec_paths, registry=None) -> list:
    """Registers one creator per spec file; returns the creators. Idempotent per (name, namespace,
    version): a creator already registered from this module is reused."""
    if registry is None:
        registry = trt.get_plugin_registry()
    creators = []
    for p in spec_paths:
        spec = Spec.load(p)
        existing = next(
            (
                c
                for c in _registered
                if (c.spec.name, c.spec.namespace, c.spec.version) == (spec.name, spec.namespace, spec.version)
            ),
            None,
        )
        if existing is not None:
            creators.append(existing)
            continue
        creator = TpatPluginCreator(spec)
        if not registry.register_creator(creator, spec.namespace):
            raise RuntimeError(f"could not register plugin creator {spec.namespace}::{spec.name} v{spec.version}")
        _registered.append(creator)
        creators.append(creator)
    return creators
