"""Builds a serialized TensorRT engine from an ONNX model whose unsupported nodes are TPAT plugins.

Request (bridge command "engine"):
    {"command": "engine", "model_path": str, "sm": "89" (TensorRT-RTX: one or "80;89"), "plugin_library": str | null,
     "python_plugin_specs": [str, ...], "output": str,
     "profiles": [{input_name: {"min": [...], "opt": [...], "max": [...]}}, ...]   (optional, one per profile)
     "profile": {input_name: {...}}                     (optional, the same for one profile)
     "dynamic_dim": [min, opt, max]                     (optional, [1, 8, 64])
     "timing_cache": str                                (optional: read when it exists, written after the build)
     "embed_plugins": bool                              (optional, false)}

Uses `tensorrt` when importable, else TensorRT-RTX (`tensorrt_rtx_bindings`, which builds ahead of
time on a machine without a GPU for the compute capability `sm`: 75, 80, 86, 89, 120, 121).
`plugin_library` (libtpat_plugins.so) is loaded into the plugin registry when given; otherwise
the Python plugins of plugin-runtime/python/tpat_trt_plugin.py are registered from
`python_plugin_specs`. Every entry of `profiles` (trtexec's --minShapes/--optShapes/--maxShapes)
becomes one optimization profile; a dynamic input a profile does not name gets `dynamic_dim` for
each dynamic dim. A profile naming something that is no input, with the wrong rank, or contradicting
a static dim is an "input" error. Without `profiles`, one profile as before.

`embed_plugins` serializes `plugin_library` into the engine (IBuilderConfig.plugins_to_serialize),
so that deploying it needs no separate .so: full TensorRT serializes plugin libraries only into
version-compatible engines (BuilderFlag.VERSION_COMPATIBLE; the lean runtime stays in the plan, as
TensorRT does by default); TensorRT-RTX 1.7 serializes them into any engine, and refuses
VERSION_COMPATIBLE without EXCLUDE_LEAN_RUNTIME ("Unable to load library: libnvinfer_lean.so.1"),
so no flag is set there. The runtime that deserializes such an engine must allow host code
(IRuntime.engine_host_code_allowed = True).

TensorRT-RTX's ONNX parser dlopens the unversioned libtensorrt_rtx.so when it imports a plugin
node; a folder holding that symlink must be on LD_LIBRARY_PATH when the process starts (checked
here, so that a missing link is an error, not an abort).

Answer: {"runtime": "TensorRT-RTX 1.7.1.116", "engine_path": str, "engine_bytes": int,
         "layers": [{"name", "type", "plugin": bool}], "layers_source": "engine_inspector" | "network",
         "plugins_in_engine": [layer names of plugin layers whose name is recorded in the engine],
         "profile": {input: {"min", "opt", "max"}} (the first), "profiles": [...], "sm": str | null,
         "timing_cache": {"path", "loaded_bytes", "saved_bytes"} | null,
         "embedded_plugins": [paths serialized into the engine], "builder_flags": [flags set for that]}
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

from ..errors import BridgeError

REPO = Path(__file__).resolve().parents[3]
PYTHON_PLUGIN_DIR = REPO / "plugin-runtime" / "python"

_SM = {"75": "SM75", "80": "SM80", "86": "SM86", "89": "SM89", "120": "SM120", "121": "SM121"}


def _runtime():
    try:  # lazy: which TensorRT is installed is a question answered at run time
        import tensorrt as trt

        return trt, f"TensorRT {trt.__version__}", False
    except Exception:  # noqa: BLE001
        pass
    try:
        import tensorrt_rtx_bindings as trt  # lazy probe: TensorRT-RTX when no TensorRT

        return trt, f"TensorRT-RTX {trt.__version__}", True
    except Exception as e:  # noqa: BLE001
        raise BridgeError("no_tensorrt", f"neither tensorrt nor tensorrt_rtx_bindings imports: {e}")


def _check_rtx_symlink():
    try:
        ctypes.CDLL("libtensorrt_rtx.so")
    except OSError:
        raise BridgeError(
            "trt_rtx_symlink",
            "libtensorrt_rtx.so is not loadable: TensorRT-RTX's ONNX parser dlopens it for plugin nodes; "
            "put a folder with a libtensorrt_rtx.so -> libtensorrt_rtx.so.1 symlink on LD_LIBRARY_PATH",
        )


def _make_logger(trt):
    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []
            self.warnings = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)
            if severity == trt.ILogger.Severity.WARNING:
                self.warnings.append(msg)
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"[TRT] {msg}", file=sys.stderr)

    return _Logger()


def _plugin_types(trt):
    names = ("PLUGIN", "PLUGIN_V2", "PLUGIN_V3")
    return {getattr(trt.LayerType, n) for n in names if hasattr(trt.LayerType, n)}


def _type_name(t) -> str:
    return getattr(t, "name", None) or str(t).split(".")[-1]


def _register_python_plugins(paths, registry):
    if str(PYTHON_PLUGIN_DIR) not in sys.path:
        sys.path.insert(0, str(PYTHON_PLUGIN_DIR))
    import tpat_trt_plugin  # noqa: E402  lazy: importable only once its folder is on sys.path (above)

    try:
        return tpat_trt_plugin.register(paths, registry)
    except (OSError, KeyError, ValueError, AttributeError, json.JSONDecodeError) as e:
        raise BridgeError("plugin_spec", f"{type(e).__name__}: {e}")


def _profile(trt, builder, network, request, wanted=None):
    wanted = (request.get("profile") or {}) if wanted is None else wanted
    lo, opt, hi = request.get("dynamic_dim") or [1, 8, 64]
    inputs = {network.get_input(i).name: list(network.get_input(i).shape) for i in range(network.num_inputs)}
    for name in wanted:
        if name not in inputs:
            raise BridgeError(
                "input", f"shape for {name!r}, which is not an input of the model (inputs: {', '.join(inputs)})"
            )
    used = {}
    prof = builder.create_optimization_profile()
    for name, shape in inputs.items():
        if name in wanted:
            w = wanted[name]
            mn, op, mx = list(w["min"]), list(w["opt"]), list(w["max"])
            for label, dims in (("min", mn), ("opt", op), ("max", mx)):
                if len(dims) != len(shape):
                    raise BridgeError(
                        "input", f"{label} shape of {name!r} has {len(dims)} dims, the input has {len(shape)}"
                    )
                for k, (d, m) in enumerate(zip(shape, dims)):
                    if d >= 0 and d != m:
                        raise BridgeError(
                            "input", f"{label} shape of {name!r}: dim {k} is fixed at {d} in the model, not {m}"
                        )
            if not all(a <= b <= c for a, b, c in zip(mn, op, mx)):
                raise BridgeError(
                    "input", f"shapes of {name!r}: need min <= opt <= max in every dim ({mn}, {op}, {mx})"
                )
        elif all(d >= 0 for d in shape):
            continue
        else:
            mn = [d if d >= 0 else lo for d in shape]
            op = [d if d >= 0 else opt for d in shape]
            mx = [d if d >= 0 else hi for d in shape]
        if all(d >= 0 for d in shape):
            continue  # static: nothing to set (the checks above passed)
        prof.set_shape(name, mn, op, mx)
        used[name] = {"min": mn, "opt": op, "max": mx}
    return prof, used


def _timing_cache(config, path, logger):
    """Loads the timing cache at `path` when it exists (else starts an empty one). TensorRT, like
    trtexec, starts empty from a file it cannot read (another version, garbage): said in `ignored`."""
    data = b""
    if path and os.path.isfile(path):
        data = Path(path).read_bytes()
    seen = len(logger.warnings) + len(logger.errors)
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, False):
        raise BridgeError("input", f"timing cache {path!r} is not usable by this TensorRT")
    said = [m for m in (logger.warnings + logger.errors)[seen:] if "timing cache" in m.lower()]
    return len(data), ("; ".join(said)[:500] if data and said else None)


def _save_timing_cache(config, path, loaded, ignored=None):
    cache = config.get_timing_cache()
    blob = bytes(cache.serialize()) if cache is not None else b""
    tmp = f"{path}.tmp-{os.getpid()}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(tmp).write_bytes(blob)
    os.replace(tmp, path)
    return {"path": str(path), "loaded_bytes": loaded, "saved_bytes": len(blob), "ignored": ignored}


def build_engine(request: dict) -> dict:
    model_path = request.get("model_path")
    output = request.get("output")
    if not model_path or not os.path.isfile(model_path):
        raise BridgeError("bad_request", f"model_path {model_path!r} is not a file")
    if not output:
        raise BridgeError("bad_request", "output (engine path) is required")
    trt, runtime, rtx = _runtime()
    sm = request.get("sm")
    sm = str(sm) if sm is not None else None
    sms = [x.strip() for x in (sm or "").replace(",", ";").split(";") if x.strip()]
    if rtx:
        for one in sms or [None]:
            if one not in _SM or not hasattr(trt.ComputeCapability, _SM[one]):
                raise BridgeError("bad_sm", f"TensorRT-RTX builds for sm in {sorted(_SM, key=int)}, not {one!r}")
        _check_rtx_symlink()

    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    registry = builder.get_plugin_registry() if hasattr(builder, "get_plugin_registry") else trt.get_plugin_registry()
    lib = request.get("plugin_library")
    specs = request.get("python_plugin_specs") or []
    embed = bool(request.get("embed_plugins"))
    if embed and not lib:
        raise BridgeError(
            "embed_plugins",
            "embedding plugins needs the C++ plugin library (libtpat_plugins.so): "
            "build it with TensorRT headers (tpat build --tensorrt-root DIR)",
        )
    if lib:
        if not os.path.isfile(lib):
            raise BridgeError("plugin_library", f"plugin_library {lib!r} is not a file")
        try:
            handle = registry.load_library(os.path.abspath(lib))
        except Exception as e:  # noqa: BLE001
            raise BridgeError("plugin_library", f"could not load {lib}: {e}")
        if handle is None:
            raise BridgeError("plugin_library", f"could not load {lib}: " + "; ".join(logger.errors[-3:]))
    elif specs:
        _register_python_plugins(specs, registry)

    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.path.abspath(model_path)):
        reason = "ONNX parse failed"
        if parser.num_errors > 0:
            e = parser.get_error(0)
            desc = (e.desc() or reason).splitlines()[0]
            node = e.node_name() if hasattr(e, "node_name") else ""
            op = e.node_operator() if hasattr(e, "node_operator") else ""
            reason = f"node {node!r} ({op}): {desc}" if node or op else desc
        raise BridgeError("parse_failed", reason[:2000])

    plugin_types = _plugin_types(trt)
    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        layers.append({"name": layer.name, "type": _type_name(layer.type), "plugin": layer.type in plugin_types})

    config = builder.create_builder_config()
    if rtx:
        config.num_compute_capabilities = len(sms)
        for k, one in enumerate(sms):
            config.set_compute_capability(getattr(trt.ComputeCapability, _SM[one]), k)
    if hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    profiles = []
    for wanted in request.get("profiles") or [None]:
        prof, used = _profile(trt, builder, network, request, wanted)
        if used:
            if config.add_optimization_profile(prof) < 0:
                raise BridgeError(
                    "input", f"TensorRT refused optimization profile {len(profiles)}: {'; '.join(logger.errors[-2:])}"
                )
            profiles.append(used)
    timing = request.get("timing_cache")
    loaded, ignored = _timing_cache(config, timing, logger) if timing else (0, None)
    embedded, flags = _embed_plugins(trt, config, lib, rtx) if embed else ([], [])

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = logger.errors[-1] if logger.errors else "build_serialized_network returned None"
        raise BridgeError("build_failed", reason.splitlines()[0][:2000])
    blob = bytes(serialized)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_bytes(blob)
    timing_info = _save_timing_cache(config, timing, loaded, ignored) if timing else None

    source = "network"
    try:  # needs a GPU the engine can run on; a CPU-only TensorRT-RTX build cannot deserialize
        engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
        if engine is not None:
            info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
            eng_layers = []
            for entry in info.get("Layers", []):
                if isinstance(entry, str):
                    eng_layers.append({"name": entry, "type": "", "plugin": False})
                else:
                    ltype = str(entry.get("LayerType", ""))
                    eng_layers.append(
                        {"name": entry.get("Name", ""), "type": ltype, "plugin": "plugin" in ltype.lower()}
                    )
            if eng_layers:
                layers, source = eng_layers, "engine_inspector"
    except Exception:  # noqa: BLE001
        pass

    plugin_names = [l["name"] for l in layers if l["plugin"]] if source == "network" else []
    in_engine = [n for n in plugin_names if n.encode() in blob]
    return {
        "runtime": runtime,
        "engine_path": str(output),
        "engine_bytes": len(blob),
        "layers": layers,
        "layers_source": source,
        "plugins_in_engine": in_engine,
        "profile": profiles[0] if profiles else {},
        "profiles": profiles,
        "num_profiles": config.num_optimization_profiles,
        "sm": ";".join(sms) if rtx else None,
        "timing_cache": timing_info,
        "embedded_plugins": embedded,
        "builder_flags": flags,
    }


def _embed_plugins(trt, config, lib, rtx):
    """Serialize the plugin library into the engine; returns ([library], [builder flags set])."""
    if not hasattr(config, "plugins_to_serialize"):
        raise BridgeError("embed_plugins", "this TensorRT has no IBuilderConfig.plugins_to_serialize")
    flags = []
    if not rtx:  # full TensorRT: plugin libraries are serialized only into version-compatible engines
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        flags.append("VERSION_COMPATIBLE")
    path = os.path.abspath(lib)
    config.plugins_to_serialize = [path]
    return [path], flags
