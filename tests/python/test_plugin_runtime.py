"""The fixed plugin runtime (plugin-runtime/): the CMake template builds a hand-written sample plugin
(tests/fixtures/plugin_sample: "AddOne", y = x + 1, float32 [batch, 16]) with nvcc, and
TensorRT-RTX builds sm_89 engines on this CPU-only machine with it:

* the Python IPluginV3 (plugin-runtime/python/tpat_trt_plugin.py) over libtpat_kernels.so through
  ctypes: needs no TensorRT headers, runs in CI;
* the C++ IPluginV3 library libtpat_plugins.so (common/tpat_plugin.cpp): needs TensorRT headers in
  .trt/include (fetched from the public NVIDIA/TensorRT repository, never committed); skipped
  with a message when they are absent.

TensorRT-RTX work runs in subprocesses: its ONNX parser dlopens libtensorrt_rtx.so, which must be
on LD_LIBRARY_PATH when the process starts (.venv/tpat-lib holds the symlink).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "plugin-runtime"
FIXTURE = REPO / "tests" / "fixtures" / "plugin_sample"
TRT_ROOT = Path(os.environ.get("TensorRT_ROOT") or REPO / ".trt")  # env: another TensorRT tree
HAVE_HEADERS = (TRT_ROOT / "include" / "NvInfer.h").is_file()
NO_HEADERS = (
    f"TensorRT headers not found in {TRT_ROOT}/include (fetch github:NVIDIA/TensorRT and extract include/ "
    "there): C++ plugin library not built or tested"
)

sys.path.insert(0, str(RUNTIME / "python"))


def _nvcc():
    for c in (
        os.environ.get("TPAT_NVCC"),
        str(REPO / ".venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc"),
        shutil.which("nvcc"),
        "/usr/local/cuda/bin/nvcc",
    ):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(c)
    return None


def _cmake():
    """The venv's cmake (the pinned wheel), else one on PATH."""
    venv = REPO / ".venv" / "bin" / "cmake"
    return str(venv) if venv.is_file() else shutil.which("cmake")


def _rtx_lib_dir(tmp):
    """Folder with libtensorrt_rtx.so (the Makefile's .venv/tpat-lib, else a fresh symlink)."""
    d = REPO / ".venv" / "tpat-lib"
    if (d / "libtensorrt_rtx.so").exists():
        return d
    import tensorrt_rtx_libs as m  # noqa: PLC0415

    d = tmp / "tpat-lib"
    d.mkdir(exist_ok=True)
    link = d / "libtensorrt_rtx.so"
    if not link.exists():
        link.symlink_to(Path(m.__file__).parent / "libtensorrt_rtx.so.1")
    return d


def render_template(values: dict) -> str:
    text = (RUNTIME / "CMakeLists.template.txt").read_text()
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    assert "{{" not in text, "unrendered placeholder"
    return text


def _cmake_env_and_args(nvcc: Path, work: Path):
    """CMake arguments for nvcc; the PyPI CUDA layout (nvidia/cu13) has lib/, no lib64/ and no
    libcudart.so: point nvcc's link step at lib/ and FindCUDAToolkit at a libcudart.so link."""
    env = dict(os.environ)
    args = [f"-DCMAKE_CUDA_COMPILER={nvcc}"]
    root = nvcc.parent.parent
    if not (root / "lib64").exists() and (root / "lib").is_dir():
        env["CUDAFLAGS"] = f"-L{root / 'lib'} " + env.get("CUDAFLAGS", "")
        if not (root / "lib" / "libcudart.so").exists():
            shim = work / "cudart-shim"
            shim.mkdir(exist_ok=True)
            so = sorted((root / "lib").glob("libcudart.so.*"))
            if so:
                link = shim / "libcudart.so"
                if not link.exists():
                    link.symlink_to(so[0])
                args.append(f"-DCUDA_CUDART={link}")
    return env, args


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sample project rendered from the template, configured and built once."""
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("no nvcc (pip install nvidia-cuda-nvcc into .venv, or set TPAT_NVCC)")
    cmake = _cmake()
    if cmake is None:
        pytest.skip("no cmake (make venv installs the pinned wheel)")
    work = tmp_path_factory.mktemp("plugin_rt")
    proj = work / "proj"
    shutil.copytree(FIXTURE, proj)
    shutil.copytree(RUNTIME / "common", proj / "common")
    shutil.copytree(RUNTIME / "cmake", proj / "cmake")
    (proj / "CMakeLists.txt").write_text(
        render_template(
            {
                "project_name": "tpat_sample",
                "architectures": "80;86;89;90",
                "launcher_sources": "AddOne/AddOne_launcher.cu",
                "plugin_sources": "AddOne/AddOne_plugin.cpp\n    tpat_plugin_specs.cpp",
                "check_sources": "check/tpat_check.cpp",
            }
        )
    )
    env, args = _cmake_env_and_args(nvcc, work)
    # one architecture keeps the build quick; the default list is checked by test_template_*
    args += ["-DTPAT_CUDA_ARCHITECTURES=89", "-DCMAKE_BUILD_TYPE=Release"]
    if HAVE_HEADERS:
        args.append(f"-DTensorRT_ROOT={TRT_ROOT}")
    else:
        args.append("-DCMAKE_DISABLE_FIND_PACKAGE_TensorRT=ON")
    build = proj / "build"
    conf = subprocess.run(
        [cmake, "-S", str(proj), "-B", str(build), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert conf.returncode == 0, conf.stdout + conf.stderr
    b = subprocess.run(
        [cmake, "--build", str(build), "-j", str(os.cpu_count() or 2)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert b.returncode == 0, b.stdout[-4000:] + b.stderr[-4000:]
    spec = build / "AddOne.json"
    shutil.copy(FIXTURE / "AddOne.json", spec)  # "library": "libtpat_kernels.so", next to it
    return {
        "work": work,
        "proj": proj,
        "build": build,
        "configure_log": conf.stdout,
        "spec": spec,
        "env": env,
        "cmake_args": args,
        "rtx_lib": _rtx_lib_dir(work),
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """x[batch,16] -> AddOne (plugin node, tpat v1) -> Relu -> z."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 16])
    nodes = [
        helper.make_node("AddOne", ["x"], ["y"], name="addone_0", plugin_version="1", plugin_namespace="tpat"),
        helper.make_node("Relu", ["y"], ["z"], name="relu_0"),
    ]
    m = helper.make_model(
        helper.make_graph(nodes, "plugin_sample", [x], [z]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path_factory.mktemp("model") / "addone.onnx"
    onnx.save(m, str(path))
    return path


# Runs in a fresh process: build_engine(request), optionally tracing the Python plugin's calls.
DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
req = json.loads(sys.argv[1])
calls = []
preload = req.pop("_preload", [])  # libraries dlopen'ed (ctypes.CDLL) once TensorRT is loaded
if preload:
    import ctypes
    try:
        import tensorrt as _trt
    except Exception:
        import tensorrt_rtx_bindings as _trt
    for lib in preload:
        ctypes.CDLL(lib)
    calls += [f"registered:{n}" for n in ("AddOne",) if _trt.get_plugin_registry().get_creator(n, "1", "tpat")]
if req.get("python_plugin_specs"):
    import tpat_trt_plugin as tp
    for name in ("get_output_shapes", "supports_format_combination", "configure_plugin", "get_workspace_size",
                 "get_valid_tactics", "get_fields_to_serialize", "clone", "enqueue", "set_tactic"):
        orig = getattr(tp.TpatPlugin, name)
        def wrap(self, *a, _orig=orig, _name=name):
            calls.append(_name)
            return _orig(self, *a)
        setattr(tp.TpatPlugin, name, wrap)
from tpat_bridge.tools.engine import build_engine
from tpat_bridge.errors import BridgeError
try:
    out = {"ok": True, "result": build_engine(req)}
except BridgeError as e:
    out = {"ok": False, "code": e.code, "reason": e.reason}
out["calls"] = sorted(set(calls))
print("@@" + json.dumps(out))
"""


def run_engine(built, request):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    env["LD_LIBRARY_PATH"] = f"{built['rtx_lib']}:{env.get('LD_LIBRARY_PATH', '')}"
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(request), str(RUNTIME / "python")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = next(l for l in p.stdout.splitlines() if l.startswith("@@"))
    return json.loads(line[2:])


def _need_rtx():
    try:
        import tensorrt_rtx_bindings  # noqa: F401
    except Exception as e:  # noqa: BLE001
        try:
            import tensorrt  # noqa: F401
        except Exception:  # noqa: BLE001
            pytest.skip(f"neither TensorRT nor TensorRT-RTX imports: {e}")


# --- no toolchain needed ---------------------------------------------------------------------


def test_template_placeholders_and_defaults():
    text = (RUNTIME / "CMakeLists.template.txt").read_text()
    assert set(re.findall(r"\{\{\s*([A-Za-z_]+)\s*\}\}", text)) == {
        "project_name",
        "architectures",
        "launcher_sources",
        "plugin_sources",
        "check_sources",
    }
    # the default list is the generator's (Generator.defaultArchitectures: "80;86;89;90", or "90a"
    # alone for sm_90a plans); the comment documents both
    assert 'set(TPAT_CUDA_ARCHITECTURES "{{architectures}}"' in text
    assert '"80;86;89;90", or' in text and '"90a" alone' in text
    assert "TensorRT headers not found (set TensorRT_ROOT): skipping libtpat_plugins.so" in text
    assert "project({{project_name}} LANGUAGES CXX CUDA)" in text


def test_dim_expr_builder_matches_evaluator():
    """Every Expr operator through IExprBuilder semantics (a fake builder over ints) agrees with
    the concrete evaluator, for symbolic (non-constant) and constant operands."""
    _need_rtx()
    import tpat_trt_plugin as tp

    D = tp.trt.DimensionOperation
    ops = {
        D.SUM: lambda a, b: a + b,
        D.PROD: lambda a, b: a * b,
        D.MAX: max,
        D.MIN: min,
        D.SUB: lambda a, b: a - b,
        D.EQUAL: lambda a, b: int(a == b),
        D.LESS: lambda a, b: int(a < b),
        D.FLOOR_DIV: lambda a, b: a // b,
        D.CEIL_DIV: lambda a, b: -(-a // b),
    }

    class E:
        def __init__(self, v, const):
            self.v, self.const = v, const

        def is_constant(self):
            return self.const

        def get_constant_value(self):
            return self.v

    class B:
        def constant(self, v):
            return E(v, True)

        def operation(self, op, x, y):
            return E(ops[op](x.v, y.v), x.const and y.const)

    env = {"in0_d0": 12, "in0_d1": 5, "in1_d0": 3}
    inputs = [[E(12, False), E(5, False)], [E(3, False)]]
    s = lambda n: {"sym": n}  # noqa: E731
    i = lambda v: {"int": v}  # noqa: E731
    two = lambda op, a, b: {"op": op, "args": [a, b]}  # noqa: E731
    cases = [
        two(op, s("in0_d0"), s("in0_d1"))
        for op in (
            "add",
            "sub",
            "mul",
            "floordiv",
            "floormod",
            "truncdiv",
            "truncmod",
            "min",
            "max",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and",
            "or",
        )
    ]
    cases += [two(op, s("in0_d1"), s("in0_d1")) for op in ("eq", "ne", "le", "ge", "lt", "gt")]
    cases += [
        two("shl", s("in0_d0"), i(2)),
        two("shr", s("in0_d0"), i(2)),
        {"op": "not", "args": [s("in1_d0")]},
        {"op": "select", "args": [two("lt", s("in1_d0"), i(4)), s("in0_d0"), s("in0_d1")]},
        {"op": "select", "args": [two("gt", s("in1_d0"), i(4)), s("in0_d0"), s("in0_d1")]},
        two("and", s("in0_d0"), i(0)),
        two("or", i(0), s("in1_d0")),
        two("mul", two("add", i(3), i(4)), s("in1_d0")),
        two("floordiv", i(-7), i(2)),
        two("truncdiv", i(-7), i(2)),
        two("truncmod", i(-7), i(2)),
    ]
    db = tp._DimBuilder(inputs, B())
    for c in cases:
        assert db.build(c).v == tp.evaluate(c, env), c
    with pytest.raises(ValueError):
        db.build(two("shl", s("in0_d0"), s("in0_d1")))
    with pytest.raises(ValueError):
        db.build(s("in3_d0"))


# --- the CMake template and the launcher ABI (nvcc + cmake, no TensorRT headers) --------------


def test_template_builds_kernels_and_checker(built):
    build = built["build"]
    assert (build / "libtpat_kernels.so").is_file()
    assert "TPAT: CUDA" in built["configure_log"]
    if HAVE_HEADERS:
        assert (build / "libtpat_plugins.so").is_file()
    else:
        assert "TensorRT headers not found (set TensorRT_ROOT): skipping libtpat_plugins.so" in built["configure_log"]
        assert not (build / "libtpat_plugins.so").exists()
    p = subprocess.run([str(build / "tpat_check")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "shapes ok, tactics=2" in p.stdout
    if shutil.which("nm"):
        syms = subprocess.run(
            ["nm", "-D", "--defined-only", str(build / "libtpat_kernels.so")], capture_output=True, text=True
        ).stdout
        for f in ("output_dims", "workspace_size", "initialize", "enqueue", "terminate", "num_tactics"):
            assert f" T tpat_AddOne_{f}" in syms, f


def test_skip_message_without_headers(built):
    """Configure only, with TensorRT made unfindable: the plugin library is skipped, not an error."""
    if not HAVE_HEADERS:
        pytest.skip("covered by test_template_builds_kernels_and_checker (headers absent)")
    args = [a for a in built["cmake_args"] if not a.startswith("-DTensorRT_ROOT")]
    args.append("-DCMAKE_DISABLE_FIND_PACKAGE_TensorRT=ON")
    p = subprocess.run(
        [_cmake(), "-S", str(built["proj"]), "-B", str(built["work"] / "build-noheaders"), *args],
        env=built["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TensorRT headers not found (set TensorRT_ROOT): skipping libtpat_plugins.so" in p.stdout


def test_launcher_through_ctypes(built):
    _need_rtx()
    import ctypes

    import tpat_trt_plugin as tp

    spec = tp.Spec.load(built["spec"])
    assert spec.num_tactics == 2 and spec.library == str(built["build"] / "libtpat_kernels.so")
    out = tp.to_tpat_dims([[0] * 2])
    assert spec.launcher.output_dims(tp.to_tpat_dims([[7, 16]]), out) == tp.TPAT_OK
    assert (out[0].nb_dims, out[0].d[0], out[0].d[1]) == (2, 7, 16)
    assert spec.launcher.output_dims(tp.to_tpat_dims([[7, 15]]), out) == tp.TPAT_BAD_DIMS
    n = ctypes.c_size_t(99)
    assert spec.launcher.workspace_size(tp.to_tpat_dims([[7, 16]]), ctypes.byref(n)) == tp.TPAT_OK and n.value == 0


# --- TensorRT-RTX engines --------------------------------------------------------------------


def _engine_request(built, model, tag, **kw):
    req = {
        "command": "engine",
        "model_path": str(model),
        "sm": "89",
        "plugin_library": None,
        "python_plugin_specs": [],
        "output": str(built["work"] / tag / "model.engine"),
    }
    req.update(kw)
    return req


def _assert_plugin_engine(answer, built, tag):
    assert answer["ok"], answer
    r = answer["result"]
    assert r["runtime"].startswith(("TensorRT-RTX", "TensorRT"))
    assert r["engine_bytes"] > 0 and os.path.getsize(r["engine_path"]) == r["engine_bytes"]
    plugin_layers = [l for l in r["layers"] if l["plugin"]]
    assert [l["name"] for l in plugin_layers] == ["addone_0"], r["layers"]
    assert "addone_0" in r["plugins_in_engine"] or r["layers_source"] == "engine_inspector"
    blob = Path(r["engine_path"]).read_bytes()
    assert b"AddOne" in blob and b"tpat" in blob  # plugin type and namespace recorded in the engine
    assert r["profile"] == {"x": {"min": [1, 16], "opt": [8, 16], "max": [64, 16]}}
    return r


def test_python_plugin_engine_sm89(built, model):
    _need_rtx()
    a = run_engine(built, _engine_request(built, model, "py", python_plugin_specs=[str(built["spec"])]))
    _assert_plugin_engine(a, built, "py")
    # the build-phase methods TensorRT-RTX calls on a CPU build
    for m in (
        "get_output_shapes",
        "supports_format_combination",
        "configure_plugin",
        "get_workspace_size",
        "get_valid_tactics",
        "get_fields_to_serialize",
    ):
        assert m in a["calls"], (m, a["calls"])


@pytest.mark.skipif(not HAVE_HEADERS, reason=NO_HEADERS)
def test_cpp_plugin_api_without_tensorrt(built):
    """libtpat_plugins.so through getCreators and the IPluginV3 interfaces, as TensorRT calls them
    (tests/fixtures/plugin_sample/plugin_api_check.cpp); links no TensorRT library."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    nvcc = _nvcc()
    exe = built["work"] / "plugin_api_check"
    p = subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-O1",
            "-Wno-deprecated-declarations",
            f"-I{TRT_ROOT / 'include'}",
            f"-I{nvcc.parent.parent / 'include'}",
            str(FIXTURE / "plugin_api_check.cpp"),
            f"-L{built['build']}",
            "-ltpat_plugins",
            f"-Wl,-rpath,{built['build']}",
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("PASS"), r.stdout + r.stderr


@pytest.mark.skipif(not HAVE_HEADERS, reason=NO_HEADERS)
def test_cpp_plugin_library_engine_sm89(built, model):
    _need_rtx()
    lib = built["build"] / "libtpat_plugins.so"
    if shutil.which("nm"):
        syms = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
        exported = sorted(l.split()[-1] for l in syms.splitlines() if " T " in l)
        assert exported == ["getCreators", "setLoggerFinder"], exported
    a = run_engine(built, _engine_request(built, model, "cpp", plugin_library=str(lib)))
    _assert_plugin_engine(a, built, "cpp")


def test_engine_errors(built, model):
    _need_rtx()
    a = run_engine(built, _engine_request(built, model, "none"))  # no plugin registered
    assert not a["ok"] and a["code"] == "parse_failed" and "addone_0" in a["reason"], a
    a = run_engine(built, _engine_request(built, model, "bad_sm", sm="90", python_plugin_specs=[str(built["spec"])]))
    if a["ok"]:  # full TensorRT ignores sm
        assert not a["result"]["runtime"].startswith("TensorRT-RTX")
    else:
        assert a["code"] == "bad_sm", a


# --- one deployable library (issue 10): self-contained, copied elsewhere, static and embedded -------


def _dynamic_section(lib: Path) -> str:
    readelf = shutil.which("readelf")
    assert readelf, "readelf (binutils) is needed to check the plugin library's dynamic section"
    p = subprocess.run([readelf, "-d", str(lib)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def deployed(built, tmp_path_factory):
    """The two plugin libraries copied alone into a folder far from the build."""
    if not HAVE_HEADERS:
        pytest.skip(NO_HEADERS)
    d = tmp_path_factory.mktemp("deployed") / "elsewhere"
    d.mkdir()
    for name in ("libtpat_plugins.so", "libtpat_plugins_static.so"):
        shutil.copy2(built["build"] / name, d / name)
    return d


@pytest.mark.skipif(not HAVE_HEADERS, reason=NO_HEADERS)
def test_plugin_libraries_are_self_contained(built):
    """No other TPAT library, no CUDA runtime library, no RPATH/RUNPATH at all (so none absolute);
    only TensorRT's two entry points exported."""
    for name in ("libtpat_plugins.so", "libtpat_plugins_static.so"):
        lib = built["build"] / name
        dyn = _dynamic_section(lib)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
        assert needed and not [
            n for n in needed if "tpat" in n or "cudart" in n or "nvinfer" in n or "tensorrt" in n
        ], needed
        paths = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]", dyn)
        assert paths == [], paths
        assert "RPATH" not in dyn and "RUNPATH" not in dyn, dyn
        if shutil.which("nm"):
            syms = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
            assert sorted(l.split()[-1] for l in syms.splitlines() if " T " in l) == ["getCreators", "setLoggerFinder"]
    # the kernel-only library stays for tpat_check and the bench, found beside it through $ORIGIN only
    paths = re.findall(r"Library r(?:un)?path: \[([^\]]*)\]", _dynamic_section(built["build"] / "libtpat_kernels.so"))
    assert all(p.startswith("$ORIGIN") for entry in paths for p in entry.split(":") if p), paths


def test_copied_library_load_library_engine(built, model, deployed):
    """registry.load_library of the COPIED libtpat_plugins.so (the build folder is not on any path)
    and an sm_89 engine with it."""
    _need_rtx()
    a = run_engine(built, _engine_request(built, model, "copied", plugin_library=str(deployed / "libtpat_plugins.so")))
    _assert_plugin_engine(a, built, "copied")


def test_cpp_load_library_of_copied_library(built, deployed):
    """C++ IPluginRegistry::loadLibrary (tests/fixtures/plugin_sample/load_library_check.cpp) of the
    copied library, linked against TensorRT-RTX's libtensorrt_rtx.so.1 from the wheel."""
    _need_rtx()
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    try:
        import tensorrt_rtx_libs as m  # noqa: PLC0415
    except Exception:  # noqa: BLE001
        pytest.skip("the C++ check links TensorRT-RTX's library (tensorrt_rtx_libs wheel)")
    libdir = Path(m.__file__).parent
    exe = built["work"] / "load_library_check"
    p = subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-Wno-deprecated-declarations",
            f"-I{TRT_ROOT / 'include'}",
            f"-I{_nvcc().parent.parent / 'include'}",
            str(FIXTURE / "load_library_check.cpp"),
            str(libdir / "libtensorrt_rtx.so.1"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    env = dict(os.environ, LD_LIBRARY_PATH=f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    r = subprocess.run(
        [str(exe), str(deployed / "libtpat_plugins.so")], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("PASS"), r.stdout + r.stderr


def test_static_library_registers_itself(built, model, deployed):
    """libtpat_plugins_static.so loaded with a plain dlopen (ctypes.CDLL, as polygraphy --plugins and
    trtexec --staticPlugins do) registers its creators; the engine then builds with no load_library."""
    _need_rtx()
    a = run_engine(
        built, _engine_request(built, model, "static", _preload=[str(deployed / "libtpat_plugins_static.so")])
    )
    assert "registered:AddOne" in a["calls"], a
    _assert_plugin_engine(a, built, "static")


def test_embed_plugins_engine(built, model, deployed):
    """--embed-plugins: the whole library is serialized into the engine (plugins_to_serialize)."""
    _need_rtx()
    lib = deployed / "libtpat_plugins.so"
    a = run_engine(built, _engine_request(built, model, "embed", plugin_library=str(lib), embed_plugins=True))
    r = _assert_plugin_engine(a, built, "embed")
    assert r["embedded_plugins"] == [str(lib)]
    blob = Path(r["engine_path"]).read_bytes()
    assert lib.read_bytes() in blob, "library bytes not found in the engine"
    plain = run_engine(built, _engine_request(built, model, "plain", plugin_library=str(lib)))["result"]
    assert plain["embedded_plugins"] == [] and r["engine_bytes"] > plain["engine_bytes"] + lib.stat().st_size // 2
    if r["runtime"].startswith("TensorRT-RTX"):
        assert r["builder_flags"] == []
    else:
        assert "VERSION_COMPATIBLE" in r["builder_flags"]


def test_embed_plugins_needs_the_cpp_library(built, model):
    _need_rtx()
    a = run_engine(
        built, _engine_request(built, model, "embed_py", python_plugin_specs=[str(built["spec"])], embed_plugins=True)
    )
    assert not a["ok"] and a["code"] == "embed_plugins", a


def test_polygraphy_convert_with_plugins(built, model, deployed, tmp_path):
    """polygraphy convert --plugins (ctypes.CDLL: the static library) against TensorRT-RTX: polygraphy
    imports a module named tensorrt_rtx, the wheel's is tensorrt_rtx_bindings: a 3-line alias module."""
    _need_rtx()
    exe = Path(sys.executable).parent / "polygraphy"
    if not exe.is_file():
        pytest.skip("polygraphy not installed (python/requirements.lock pins it)")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "tensorrt_rtx.py").write_text(
        "import sys\nimport tensorrt_rtx_bindings as _m\nsys.modules[__name__] = _m\n"
    )
    env = dict(
        os.environ,
        POLYGRAPHY_USE_TENSORRT_RTX="1",
        PYTHONPATH=str(shim),
        LD_LIBRARY_PATH=f"{built['rtx_lib']}:{os.environ.get('LD_LIBRARY_PATH', '')}",
    )
    engine = tmp_path / "pg.engine"
    p = subprocess.run(
        [
            sys.executable,
            str(exe),
            "convert",
            str(model),
            "--convert-to",
            "trt",
            "-o",
            str(engine),
            "--plugins",
            str(deployed / "libtpat_plugins_static.so"),
            "--compute-capabilities",
            "8.9",
            "--trt-min-shapes",
            "x:[1,16]",
            "--trt-opt-shapes",
            "x:[8,16]",
            "--trt-max-shapes",
            "x:[64,16]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    blob = engine.read_bytes()
    assert b"AddOne" in blob and b"tpat" in blob
