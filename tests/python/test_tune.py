"""MetaSchedule tuning (python/tpat_bridge/tools/tune.py) on the CPU: LLVM target, and CUDA compile-only.

Run: .venv/bin/python -m pytest tests/python/test_tune.py -q
About 1.5 minutes on 2 cores; a good part of it is a one-time cost of MetaSchedule's first
TuneContext in a process (it imports tvm.s_tir.tensor_intrin, which parses every tensor intrinsic:
~15 s), and a worker process pays it again when a build fails (the unbuildable candidate below).
The searches run with the venv's real measurers: worker processes (cloudpickle, psutil) and the
XGBoost cost model; TPAT_TUNE_MEASURER=inprocess where a test patches the in-process ones.
"""

import os
import signal
import sys

import numpy as np
import pytest

PY_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "python"))
sys.path.insert(0, PY_DIR)

onnx = pytest.importorskip("onnx")
tvm = pytest.importorskip("tvm")

import fake_tuning  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from tpat_bridge.errors import BridgeError  # noqa: E402
from tpat_bridge.tools import tune as T  # noqa: E402


def _one_node(path, op, shape, **attrs):
    node = helper.make_node(op, ["in0"], ["out0"], **attrs)
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("in0", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out0", TensorProto.FLOAT, shape)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory):
    return _one_node(tmp_path_factory.mktemp("m") / "softmax.onnx", "Softmax", [64, 256], axis=-1)


def _records(work_dir):
    with open(os.path.join(work_dir, "database_tuning_record.json")) as f:
        return [line for line in f if line.strip()]


def _logs(work_dir):
    d = os.path.join(work_dir, "logs")
    return "".join(open(os.path.join(d, f)).read() for f in sorted(os.listdir(d)))


def _struct_eq(a, b):
    import tvm_ffi

    return bool(tvm_ffi.structural_equal(a, b))


def test_tune_llvm_then_continue_then_apply(softmax_model, tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.delenv("TPAT_TUNE_MEASURER", raising=False)
    wd = str(tmp_path / "db")
    req = {
        "command": "tune",
        "model_path": softmax_model,
        "target": "llvm",
        "work_dir": wd,
        "trials": 6,
        "keep": "all",
        "lowering": "tvm",
    }
    a1 = T.tune(req)
    assert a1["work_dir"] == wd and a1["interrupted"] is False
    # the pinned venv has xgboost, cloudpickle and psutil: XGBoost cost model, parallel builds in
    # worker processes (one per core)
    assert a1["cost_model"] == "xgb"
    assert a1["builder"] == f"local ({os.cpu_count()} workers)"
    assert [t["name"] for t in a1["tasks"]] == ["softmax"]
    t1 = a1["tasks"][0]
    assert t1["trials"] == 6 and t1["best_us"] is not None and t1["best_us"] > 0
    assert os.path.isfile(os.path.join(wd, "database_workload.json"))
    n1 = len(_records(wd))
    assert n1 == t1["records"] >= 1
    err = capsys.readouterr().err
    assert "task 1/1 softmax: trials 6, best " in err
    assert f"cost model xgb, builder local ({os.cpu_count()} workers)" in err
    assert "XGB iter" in _logs(wd)  # the XGBoost model was trained on the measured batch

    # second call: continues from the same database (appends, starts from the best known)
    a2 = T.tune(dict(req, trials=4))
    t2 = a2["tasks"][0]
    assert t2["trials"] == 4
    assert len(_records(wd)) == t2["records"] > n1
    assert t2["best_us"] <= t1["best_us"] + 1e-9  # the database best never gets worse

    # apply_database on the planner's pre-dlight module: the tuned schedule replaces the func
    target = T.tuning_target("llvm")
    mod, _info, _ = T.build_fused_module(softmax_model, target, "tvm")
    tuned = T.apply_database(mod, target, wd)
    assert "tirx.is_scheduled" not in (mod["softmax"].attrs or {})
    assert bool(tuned["softmax"].attrs["tirx.is_scheduled"])
    assert not _struct_eq(mod["softmax"], tuned["softmax"])
    assert "T.parallel" in tuned["softmax"].script() or "rf" in tuned["softmax"].script()
    # Each call recorded the default schedule too; on the CPU its trace is empty, and MetaSchedule's
    # query (get_top_k) never returns a record with an empty trace, so even a faster default
    # leaves the tuned record applied here (with keep "wins" a losing task is dropped instead).
    recs = [json.loads(r) for r in _records(wd)]
    assert sum(1 for r in recs if r[1][0] == [[], []]) == 2
    # and it still computes softmax
    ex = tvm.compile(tuned, target=target)
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    x = np.random.default_rng(0).random((64, 256), dtype=np.float32)
    y = vm["main"](tvm.runtime.tensor(x)).numpy()
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_interrupt_keeps_records(softmax_model, tmp_path, monkeypatch):
    """Ctrl-C (SIGINT) during the first batch: the batch finishes, is saved, and the search stops.
    A second Ctrl-C stops at once (KeyboardInterrupt inside the batch), keeping earlier batches."""
    import signal

    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    orig = T._in_process_measurers

    def patched(action):
        def measurers(target):
            builder, runner = orig(target)
            calls = [0]

            @derived_object
            class InterruptingRunner(ms.runner.PyRunner):
                def run(self, runner_inputs):
                    calls[0] += 1
                    if calls[0] == action[0]:
                        for _ in range(action[1]):  # 2 = a second Ctrl-C: stop at once
                            os.kill(os.getpid(), signal.SIGINT)
                    return runner.run(runner_inputs)

            return builder, InterruptingRunner()

        return measurers

    req = {
        "command": "tune",
        "model_path": softmax_model,
        "target": "llvm",
        "trials": 12,
        "keep": "all",
        "lowering": "tvm",
        "trials_per_batch": 4,
    }
    monkeypatch.setenv("TPAT_TUNE_MEASURER", "inprocess")
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup, default_int_handler in a terminal
    wd = str(tmp_path / "db1")
    # the batches are runner calls 1, 2, ... (the default schedule is timed after the search, and
    # not at all after an interrupt)
    monkeypatch.setattr(T, "_in_process_measurers", patched((1, 1)))
    ans = T.tune(dict(req, work_dir=wd))
    assert ans["interrupted"] is True and ans["tasks"][0]["trials"] == 4
    assert ans["tasks"][0]["records"] == 4 == len(_records(wd))
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored

    wd = str(tmp_path / "db2")
    monkeypatch.setattr(T, "_in_process_measurers", patched((2, 2)))
    ans = T.tune(dict(req, work_dir=wd))
    assert ans["interrupted"] is True
    assert ans["tasks"][0]["records"] == 4 == len(_records(wd))
    assert ans["tasks"][0]["best_us"] is not None


def test_time_budget_and_inprocess_fallback(softmax_model, tmp_path, monkeypatch, capsys):
    """TPAT_TUNE_MEASURER=inprocess: the serial in-process builder/runner, still XGBoost."""
    monkeypatch.setenv("TPAT_TUNE_MEASURER", "inprocess")
    ans = T.tune(
        {
            "command": "tune",
            "model_path": softmax_model,
            "target": "llvm",
            "trials": 64,
            "keep": "all",
            "lowering": "tvm",
            "trials_per_batch": 4,
            "time_budget_s": 0.001,
            "work_dir": str(tmp_path / "db"),
        }
    )
    assert ans["budget_exhausted"] is True and ans["interrupted"] is False
    # the batch's 4 candidates and the default schedule, timed after the search (a budget stop is
    # no Ctrl-C) and recorded with them
    t = ans["tasks"][0]
    assert t["trials"] == 4 and t["records"] == 5 and t["default_us"] > 0
    assert ans["builder"] == "in-process" and ans["cost_model"] == "xgb"
    assert "builder in-process" in capsys.readouterr().err


def test_local_measurers_isolate_failing_candidates(tmp_path):
    """The worker-process builder and runner on real kernels: a candidate whose build fails and
    one that crashes its process (a write 4 TiB out of bounds: SIGSEGV) fail alone; a new worker
    times the next candidate. The workers have TPAT's CUDA postproc hook and leave stdout (the
    bridge's answer channel) alone."""
    import shutil

    from tvm.s_tir import meta_schedule as ms
    from tvm.script import tirx as Tx

    @Tx.prim_func
    def good(A: Tx.Buffer((16,), "float32")):
        Tx.func_attr({"global_symbol": "main", "tir.noalias": True})
        for i in Tx.serial(16):
            A[i] = A[i] + Tx.float32(1)

    @Tx.prim_func
    def crash(A: Tx.Buffer((16,), "float32")):
        Tx.func_attr({"global_symbol": "main", "tir.noalias": True})
        for i in Tx.serial(16):
            A[Tx.int64(1) << Tx.int64(42)] = Tx.float32(1)

    @Tx.prim_func
    def unbuildable(A: Tx.Buffer((16,), "float32")):  # GPU thread binding on the CPU target
        Tx.func_attr({"global_symbol": "main", "tir.noalias": True})
        for i in Tx.thread_binding(16, thread="threadIdx.x"):
            A[i] = Tx.float32(1)

    target = T.tuning_target("llvm")
    old_pp = os.environ.get("PYTHONPATH")
    with T._workers_can_import_tpat():
        assert os.environ["PYTHONPATH"].split(os.pathsep)[0].endswith("python")
        builder, runner, kind = T._local_measurers(target, workers=2)
        assert kind == "local (2 workers)"
        built = []
        try:

            def probe():
                import tvm_ffi

                print("worker chatter")  # must not reach fd 1
                hook = tvm_ffi.get_global_func("tvm_callback_cuda_postproc", allow_missing=True)
                return hook is not None and os.fstat(1).st_ino == os.fstat(2).st_ino

            assert builder.pool.submit(probe).result() is True

            built = builder.build(
                [ms.builder.BuilderInput(tvm.IRModule({"main": f}), target) for f in (good, crash, unbuildable)]
            )
            assert [b.error_msg is None for b in built] == [True, True, False]
            assert "GetThreadIndex" in built[2].error_msg or "not implemented" in built[2].error_msg
            args = ms.arg_info.ArgInfo.from_prim_func(good)
            results = [
                f.result()
                for f in runner.run([ms.runner.RunnerInput(built[i].artifact_path, "cpu", args) for i in (0, 1, 0)])
            ]
            assert results[0].error_msg is None and len(results[0].run_secs) == 1
            assert results[1].run_secs is None and "Subprocess terminated" in results[1].error_msg
            assert results[2].error_msg is None and float(results[2].run_secs[0]) > 0
            assert runner.restarts == 0  # the pool replaced the dead worker; no CUDA error here
        finally:
            runner.close()
            builder.close()
            for b in built:
                if b.artifact_path:
                    shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)
    assert os.environ.get("PYTHONPATH") == old_pp  # restored
    # which runner failures get the runner a new worker (and CUDA context)
    assert T._cuda_error("RuntimeError: CUDA: an illegal memory access was encountered")
    assert T._cuda_error("cuModuleLaunch failed with error: CUDA_ERROR_ILLEGAL_ADDRESS")
    assert not T._cuda_error(None) and not T._cuda_error("LocalRunner: Timeout, killed after 30 seconds")


def test_cuda_records_apply_then_dlight_then_compile(tmp_path, monkeypatch):
    """CUDA without a GPU: candidates are built (CUDA C, no nvcc needed) and given fake times, so
    the database holds real sm_90 schedules; then the planner's pipeline order (FuseTIR ->
    apply_database -> dlight -> lowering) compiles, and the tuned kernel replaces dlight's."""
    from tvm.relax.backend.cuda import pipeline as cp

    # fake times: any block size but dlight's 1024 threads wins; the default schedule really timed
    fake_tuning.install(monkeypatch.setattr, time_of=lambda src: 1e-5 if "* 1024)" not in src else 1e-4, default_s=None)
    monkeypatch.setenv("TPAT_TUNE_MEASURER", "inprocess")
    model = _one_node(tmp_path / "relu.onnx", "Relu", [256, 1024])
    wd = str(tmp_path / "db")
    ans = T.tune(
        {
            "command": "tune",
            "model_path": model,
            "target": "sm_90",
            "work_dir": wd,
            "trials": 4,
            "lowering": "tvm",
            "keep": "all",
        }
    )
    assert ans["tasks"][0]["records"] >= 1 and ans["tasks"][0]["best_us"] == pytest.approx(10.0)

    from tpat_bridge.planning import pipeline

    target = pipeline.cuda_target("sm_90")  # the planner's own target object

    def cuda_source(with_db):
        mod, _info, _ = T.build_fused_module(model, target, "tvm")
        legal = cp.legalize_passes(target)

        @tvm.transform.module_pass(opt_level=0)
        def pipeline(m, _ctx):
            with target:
                passes = cp.dataflow_lower_passes(target) + cp.finalize_passes(target)
                if with_db:
                    m = T.apply_database(m, target, wd)
                m = tvm.transform.Sequential(legal[-1:] + passes)(m)  # dlight, then lowering
                return m

        ex = tvm.compile(mod, target=target, relax_pipeline=pipeline)
        mods = [ex.mod] + list(ex.mod.imports)
        seen = []
        while mods:
            m = mods.pop()
            seen.append(m)
            mods.extend(m.imports)
        srcs = sorted({m.inspect_source("cuda") for m in seen if m.kind == "cuda"})
        assert len(srcs) == 1
        return srcs[0]

    untuned, tuned = cuda_source(False), cuda_source(True)
    assert "__global__" in tuned and "__global__" in untuned
    assert "* 1024)" in untuned  # dlight's Fallback: 1024 threads per block
    assert tuned != untuned and "* 1024)" not in tuned


def test_bad_requests(softmax_model, tmp_path, monkeypatch):
    base = {
        "command": "tune",
        "model_path": softmax_model,
        "target": "llvm",
        "work_dir": str(tmp_path / "db"),
        "trials": 4,
    }
    for bad in (
        dict(base, model_path=None),
        dict(base, model_path=str(tmp_path / "missing.onnx")),
        dict(base, work_dir=""),
        dict(base, trials=0),
        dict(base, trials="8"),
        dict(base, target="sm_70"),
        dict(base, lowering="fast"),
        dict(base, time_budget_s=-1),
        "not a dict",
    ):
        with pytest.raises(BridgeError) as ei:
            T.tune(bad)
        assert ei.value.code in ("invalid_request", "model_load_failed")
    for bad_env in ("fast", "serial"):
        monkeypatch.setenv("TPAT_TUNE_MEASURER", bad_env)
        with pytest.raises(BridgeError) as ei:
            T.tune(base)
        assert ei.value.code == "invalid_request" and "TPAT_TUNE_MEASURER" in ei.value.reason
    monkeypatch.delenv("TPAT_TUNE_MEASURER")
    bad_model = tmp_path / "bad.onnx"
    bad_model.write_bytes(b"not onnx")
    with pytest.raises(BridgeError) as ei:
        T.tune(dict(base, model_path=str(bad_model)))
    assert ei.value.code == "model_load_failed"
    with pytest.raises(BridgeError):
        T.apply_database(None, "llvm", str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------------------------
# "rpc": measuring through TVM's RPC tracker (a local tracker and server on this CPU)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def rpc_tracker(tmp_path):
    """A TVM RPC tracker and one RPC server (key tpat-test) on 127.0.0.1, as subprocesses of this
    venv's Python; yields the tracker's "host:port" once its summary lists the server."""
    import subprocess
    import time

    pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado (python/requirements.lock)")
    port = _free_port()
    logs = [open(tmp_path / n, "w") for n in ("tracker.log", "server.log")]
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tvm.exec.rpc_tracker",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--port-end",
                    str(port + 1),
                ],
                stdout=logs[0],
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group: killed with TVM's popen_worker children
            )
        )
        rpc = {"host": "127.0.0.1", "port": port, "key": "tpat-test"}
        deadline = time.monotonic() + 40
        while True:  # the tracker answers (its own startup imports TVM: a few seconds)
            try:
                T.check_tracker(rpc, timeout=2)
                break
            except BridgeError as e:
                if e.code != "rpc_unavailable" or procs[0].poll() is not None or time.monotonic() > deadline:
                    raise
                if "no RPC server registered" in e.reason and len(procs) == 1:
                    procs.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "tpat_bridge.tools.rpc_server",  # tvm.exec.rpc_server, fork-safe for CUDA
                                "--tracker",
                                f"127.0.0.1:{port}",
                                "--key",
                                "tpat-test",
                                "--host",
                                "127.0.0.1",
                                "--port",
                                str(_free_port()),
                                "--port-end",
                                "65535",
                            ],
                            stdout=logs[1],
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env=dict(
                                os.environ,
                                PYTHONPATH=os.pathsep.join(filter(None, [PY_DIR, os.environ.get("PYTHONPATH")])),
                            ),
                        )
                    )
                time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGKILL)  # the serving popen_worker outlives a killed parent
            p.wait(timeout=10)
        for f in logs:
            f.close()


def test_tune_through_rpc_tracker(softmax_model, tmp_path, rpc_tracker, capsys, monkeypatch):
    """A real search whose candidates are built by the worker-process builder and timed by
    MetaSchedule's RPCRunner on the RPC server behind the tracker (LLVM target)."""
    import json

    monkeypatch.delenv("TPAT_TUNE_MEASURER", raising=False)
    wd = str(tmp_path / "db")
    ans = T.tune(
        {
            "command": "tune",
            "model_path": softmax_model,
            "target": "llvm",
            "work_dir": wd,
            "trials": 4,
            "keep": "all",
            "lowering": "tvm",
            "rpc": {"tracker": rpc_tracker, "key": "tpat-test"},
        }
    )
    assert ans["runner"] == f"rpc (key tpat-test at {rpc_tracker})"
    assert ans["builder"] == f"local ({os.cpu_count()} workers)"
    t = ans["tasks"][0]
    assert t["trials"] == 4 and t["best_us"] is not None and t["best_us"] > 0
    # the default schedule was timed on the same server and recorded in the same database: one
    # record more than the candidates, with the default's (empty, on the CPU) trace and a real time
    assert t["default_us"] is not None and t["default_us"] > 0 and "default_error" not in t
    recs = [json.loads(r) for r in _records(wd)]
    assert t["records"] == len(recs) == t["trials"] + 1
    assert sum(1 for r in recs if r[1][0] == [[], []] and max(r[1][1]) < 1e9) == 1
    err = capsys.readouterr().err
    assert f"runner rpc (key tpat-test at {rpc_tracker})" in err
    assert "1 server(s) under key 'tpat-test', 1 free" in err
    assert "RPC probe: 1 server(s) under key 'tpat-test' allocated on cpu:0" in err
    assert (
        f"softmax: default schedule {t['default_us']:.2f} us (runner rpc (key tpat-test at {rpc_tracker})), recorded"
        in err
    )
    # a key no server registered under: refused before the search
    with pytest.raises(BridgeError) as ei:
        T.tune(
            {
                "command": "tune",
                "model_path": softmax_model,
                "target": "llvm",
                "work_dir": wd,
                "trials": 4,
                "rpc": {"tracker": rpc_tracker, "key": "other"},
            }
        )
    assert ei.value.code == "rpc_unavailable" and "'other'" in ei.value.reason and "tpat-test" in ei.value.reason


FAKE_TORCH = {  # just enough of torch for tvm_ffi's import: dtypes, Tensor, cuda.is_available
    "__init__.py": (
        "__version__ = '2.11.0+fake'\n\n\n"
        "class dtype:\n    pass\n\n\n"
        "class Tensor:\n    __dlpack_c_exchange_api__ = object()\n\n\n"
        "from . import cuda, version  # noqa: E402,F401\n\n"
        "_dtypes = {}\n\n\n"
        "def __getattr__(name):\n"
        "    if name.startswith('__'):\n        raise AttributeError(name)\n"
        "    return _dtypes.setdefault(name, dtype())\n"
    ),
    "version.py": "cuda = '13.0'\n",
    "cuda.py": (
        "import os\n\n\nclass Stream:\n    pass\n\n\n"
        "def is_available():\n"
        "    with open(os.environ['TPAT_FAKE_TORCH_LOG'], 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    return False\n"
    ),
}


@pytest.mark.parametrize("launcher", ["tvm.exec.rpc_server", "tpat_bridge.tools.rpc_server"])
def test_rpc_server_leaves_cuda_uninitialised(tmp_path, launcher):
    """The cause of cudaErrorInitializationError in every RPC timing on the H200 x2: with PyTorch
    installed, `import tvm` makes tvm_ffi call torch.cuda.is_available() (cuInit) in the process
    that then forks a child per session. A fake torch logs the pid of every such call: TVM's own
    server makes it in its serving process, TPAT's launcher in none, and still serves a session."""
    import subprocess
    import time

    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    for name, text in FAKE_TORCH.items():
        (fake / "torch" / name).write_text(text)
    log = tmp_path / "is_available.log"
    log.write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TVM_FFI_DISABLE_TORCH_C_DLPACK", "PYTORCH_NVML_BASED_CUDA_CHECK")
    }
    env.update(PYTHONPATH=os.pathsep.join([str(fake), PY_DIR]), TPAT_FAKE_TORCH_LOG=str(log))
    port = _free_port()
    cmd = [sys.executable, "-m", launcher, "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)]
    with open(tmp_path / "server.log", "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from tvm import rpc

        deadline = time.monotonic() + 60
        while True:
            try:
                sess = rpc.connect("127.0.0.1", port, session_timeout=30)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        dev = sess.device("cpu", 0)
        a = tvm.runtime.tensor(np.arange(4, dtype="float32"), dev)
        assert a.numpy().tolist() == [0, 1, 2, 3]  # the session works
        del a, dev, sess
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # with its serving popen_worker
        proc.wait(timeout=10)
    pids = {int(x) for x in log.read_text().split()}
    if launcher == "tvm.exec.rpc_server":
        # the launcher process and its serving process (a popen_worker child) both called it
        assert len(pids) >= 2 and proc.pid in pids
    else:
        assert pids == set()


def test_rpc_unreachable_and_bad_rpc_requests(softmax_model, tmp_path, monkeypatch):
    import json
    import time

    port = _free_port()  # nothing listens there
    req = {
        "command": "tune",
        "model_path": softmax_model,
        "target": "llvm",
        "work_dir": str(tmp_path / "db"),
        "trials": 4,
        "rpc": {"tracker": f"127.0.0.1:{port}", "key": "tpat-test"},
    }
    t0 = time.monotonic()
    assert T.main([json.dumps(req)]) == 1
    assert time.monotonic() - t0 < 10
    with pytest.raises(BridgeError) as ei:
        T.tune(req)
    assert ei.value.code == "rpc_unavailable" and f"127.0.0.1:{port} not reachable" in ei.value.reason
    assert not os.path.exists(tmp_path / "db")  # refused before anything was built

    for rpc in (
        "127.0.0.1:9190",
        {"key": "k"},
        {"tracker": "host", "key": "k"},
        {"tracker": "host:0", "key": "k"},
        {"tracker": "host:x", "key": "k"},
        {"tracker": "host:9190"},
        {"tracker": "host:9190", "key": ""},
        {"tracker": "host:9190", "key": "k", "session_timeout_s": 0},
        {"tracker": "host:9190", "key": "k", "max_workers": 0},
        {"tracker": "host:9190", "key": "k", "max_workers": True},
        {"tracker": "host:9190", "key": "k", "workers": 2},
    ):
        with pytest.raises(BridgeError) as ei:
            T.tune(dict(req, rpc=rpc))
        assert ei.value.code == "invalid_request" and "rpc" in ei.value.reason
        assert "\n" not in ei.value.reason
    assert T._validate_rpc({"tracker": "[::1]:9190", "key": "k"}) == {
        "host": "::1",
        "port": 9190,
        "key": "k",
        "session_timeout_s": 60.0,
        "max_workers": 1,
    }
    # the in-process measurers keep built modules in memory: nothing to upload
    monkeypatch.setenv("TPAT_TUNE_MEASURER", "inprocess")
    with pytest.raises(BridgeError) as ei:
        T.tune(req)
    assert ei.value.code == "invalid_request" and "inprocess" in ei.value.reason
