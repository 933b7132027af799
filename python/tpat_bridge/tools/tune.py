"""Bridge command "tune": MetaSchedule search for the kernels of a one-node ONNX model.

`tune(request)` builds the Relax module exactly as the planner does up to the point where the
planner schedules it (ONNX import + dtype fixups, or TPAT's own lowering; then library dispatch,
LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR), and tunes every unscheduled
PrimFunc with MetaSchedule (tvm.s_tir.meta_schedule) for the target. Records go to a JSON
database in `work_dir` (database_workload.json + database_tuning_record.json, plus logs/); a
second call with the same work_dir starts its search from the records already there and appends.

`apply_database(mod, target, work_dir)` is the planner's side: called on the fused module (after
FuseTIR, before dlight) it replaces every PrimFunc the database has a record for with the best
tuned schedule (marked `tirx.is_scheduled`, so dlight leaves it alone) and leaves the rest
unscheduled for dlight.

Request: {"command": "tune", "model_path", "target": "sm_80".."sm_90a" | "llvm", "work_dir",
"trials" (max_trials_global of this call, shared out over the tasks), optional "time_budget_s",
"lowering": "tpat"|"tvm"|"both"|["tpat", "tvm"] (default both, or $TPAT_LOWERING: every lowering
the planner makes a tactic of; the functions of all of them are searched into the one database),
"trials_per_batch" (default min(32, trials), min(8, trials) with a time budget), "rpc":
{"tracker": "host:port", "key", "session_timeout_s" (default 60), "max_workers" (default 1)}
(optional: time candidates on the RPC servers registered under `key` at TVM's RPC tracker)}. Answer: {"work_dir", "target",
"lowering" (the lowerings whose functions were searched: "tpat" only where TPAT's lowering takes the node),
"tasks": [{"name", "lowering" ("tpat", "tvm", or "tpat+tvm" for a function both make),
"trials" (measured in this call), "best_us" (best in the database, or None),
"records" (records in the database for the task), "skipped" (only for hand-scheduled funcs)}],
"cost_model": "xgb" | "random" (random when xgboost is not importable), "builder":
"local (N workers)" | "in-process" (how candidates were built and timed), "runner": "local" |
"rpc (key K at host:port)" | "in-process" (where they were timed; None when nothing was searched),
"interrupted",
"budget_exhausted", "note" (TPAT lowering used)}. Progress on stderr, one line per batch:
"task k/n <name>: trials t, best <us> us". Ctrl-C: the batch in flight finishes and is saved, then
the search stops (a second Ctrl-C stops at once); the answer says "interrupted": true.

Measurers: with `cloudpickle` and `psutil` importable (tvm.support.popen_pool), candidates are
built with MetaSchedule's LocalBuilder job in N = cpu-count worker processes (parallel builds,
workers kept for the whole search) and timed by LocalRunner in one worker process: a candidate
that crashes its worker, or leaves its CUDA context broken (illegal address), fails alone.
Otherwise, or with TPAT_TUNE_MEASURER=inprocess, they are built and timed serially in this
process. The worker processes get TPAT's CUDA postproc hook (lowerings/prelude.py, install_cuda_postproc).
With "rpc", candidates are built by the same worker-process builder (its tar artifacts are what
MetaSchedule's RPCRunner uploads) and timed on the tracker's servers by ms.runner.RPCRunner
(max_workers sessions at once); the tracker is asked first (RPC_CHECK_TIMEOUT_S) whether a server
is registered under the key: "rpc_unavailable" otherwise. No in-process fallback with "rpc".

See docs/tuning.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time

import tvm
import tvm_ffi
from tvm.ir.utils import derived_object
from tvm.rpc import base
from tvm.runtime import save_param_dict
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import local_builder as lb
from tvm.s_tir.meta_schedule.runner import local_runner as lr
from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common, run_evaluator_common
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

from ..errors import BridgeError, PlanError
from ..lowerings import refusals, registry
from ..node import narrowing_applies
from ..planning.load import DATA_DEPENDENT_LOWERED, load_node
from ..planning.pipeline import (  # noqa: F401  (apply_database, tuning_target: tune's API too)
    apply_database,
    open_database,
    pre_schedule_passes,
    tuning_target,
)
from ..planning.relax_import import build_relax_module
from . import tune_worker

LOWERINGS = ("tpat", "tvm")

# TPAT_TUNE_MEASURER: "inprocess" forces the serial in-process builder/runner, "local" requires the
# worker-process ones (an error when cloudpickle/psutil are missing), "auto" (default): local when
# importable.
MEASURER_ENV = "TPAT_TUNE_MEASURER"
MEASURERS = ("auto", "local", "inprocess")
# Worker timeouts: a build (NVRTC / LLVM) and one candidate's timing.
BUILD_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 30.0
# A builder worker process is replaced after this many builds (bounds its memory growth).
BUILDS_PER_WORKER = 64
# "rpc": the tracker must answer within this many seconds before the search starts.
RPC_CHECK_TIMEOUT_S = 5.0
# "rpc": how long the probe of the servers (a session and a 1-element tensor each) may wait.
RPC_PROBE_TIMEOUT_S = 60.0
RPC_KEYS = ("tracker", "key", "session_timeout_s", "max_workers")
# Symbol values to search at ("s0=64,s1=128"), and a smaller evolutionary search population.
BINDINGS_ENV = "TPAT_TUNE_BINDINGS"
POPULATION_ENV = "TPAT_TUNE_POPULATION"
TARGET_ENV = "TPAT_TUNE_TARGET"
# A tuned schedule is kept only when its best time is below this fraction of the default one.
KEEP_RATIO = 0.97
FAILURES_LOGGED = 3  # a task's failed candidates said one by one on stderr; the rest are counted
EMPTY_ROUNDS = 3  # search rounds in a row with no new candidate before a task counts as exhausted


class _StopTuning(Exception):
    """Raised from the progress callback to end the search (time budget, Ctrl-C)."""


# Why the current search stops early: None, "interrupted" (Ctrl-C) or "budget" (time_budget_s).
_STOP = {"reason": None}


def _on_sigint(signum, frame):
    if _STOP["reason"] == "interrupted":
        raise KeyboardInterrupt  # second Ctrl-C: stop now
    _STOP["reason"] = "interrupted"
    _log(
        "tune: Ctrl-C: stopping after the current batch (Ctrl-C again to stop at once); "
        "measured records stay in the database"
    )


def _install_sigint():
    """First Ctrl-C: finish the batch in flight (its records get saved), then stop."""

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, _on_sigint)


def _restore_sigint(old):
    if old is not None:
        signal.signal(signal.SIGINT, old)


def _is_gpu(target) -> bool:
    return str(target.kind.name) == "cuda"


# --------------------------------------------------------------------------------------------
# the module the planner schedules


def build_fused_module(model_path: str, target, lowering: str = "tpat"):
    """(fused Relax IRModule, NodeInfo, lowering note) as the planner builds it before dlight.

    Uses planning's load_node / build_relax_module (ONNX import, output dtype fixups) and,
    for lowering "tpat", the lowerings registry's tpat_module (TPAT's own TIR) exactly like make_plan.
    """
    try:
        info = load_node(model_path)
    except PlanError as e:
        raise BridgeError(e.code, e.reason) from None
    mod, note = None, None
    if lowering == "tpat":
        try:
            tl = registry.tpat_module(info, mode="gpu" if _is_gpu(target) else "cpu")
            if tl is not None:
                mod, note = tl[0], f"tpat lowering: {tl[1].selection.describe()}"
        except Exception as e:  # noqa: BLE001 - the planner falls back the same way
            mod, note = None, f"tpat lowering failed ({type(e).__name__}); TVM's lowering used"
    if mod is None:
        try:
            mod = build_relax_module(info)
        except PlanError as e:
            raise BridgeError(e.code, e.reason) from None
    with target:
        mod = tvm.transform.Sequential(pre_schedule_passes(target, narrowing_applies(info)))(mod)
    return mod, info, note


def fused_modules(model_path: str, target, lowerings) -> tuple:
    """([(lowering, fused module)], note) for the requested lowerings, as the planner makes a
    plugin's tactics: "tpat" where TPAT's lowering takes the node; where it does not, the planner
    falls back to TVM's lowering, so the module is TVM's and is listed (once) as "tvm". A lowering
    the planner makes no tactic of (TVM's frontend fails, or the planner refuses TVM's lowering of
    the node: unchecked indices, data-dependent shapes, refused attributes) is left out with a
    line on stderr; when none is left, the first one's error is raised."""
    out, note, errors = [], None, []
    for name in lowerings:
        try:
            mod, info, why = build_fused_module(model_path, target, name)
            made_by = "tpat" if name == "tpat" and (why or "").startswith("tpat lowering:") else "tvm"
            refusal = _tvm_refusal(info) if made_by == "tvm" else None
            if refusal is not None:
                raise BridgeError(*refusal)
        except BridgeError as e:
            errors.append(e)
            _log(f"tune: {name} lowering: not searched ({e.code}: {e.reason[:300]})")
            continue
        if name == "tpat":
            note = why
        if all(m != made_by for m, _ in out):
            out.append((made_by, mod))
    if not out:
        raise errors[0]
    return out, note


def _tvm_refusal(info):
    """(code, reason) when the planner makes no plan of TVM's lowering of the node (plan.make_plan's
    refusals), else None."""
    from ..planning.plan import UNCHECKED_INDEX_OPS  # lazy: the planner's table, not its TVM set-up

    if info.op_type in UNCHECKED_INDEX_OPS:
        return (
            "unchecked_indices",
            f"TVM's default {info.op_type} lowering {UNCHECKED_INDEX_OPS[info.op_type]} out of bounds on "
            "out-of-range indices: the planner never uses it",
        )
    if info.op_type in DATA_DEPENDENT_LOWERED:
        return "data_dependent_shape", f"{info.op_type}: TVM lowers it to runtime builtins: the planner never uses it"
    try:
        refusals.check(info, "tvm")
    except PlanError as e:
        return e.code, e.reason
    return None


def _same_task(a, b) -> bool:
    """Two extracted tasks with the same function (a database record of one applies to the other)."""
    return bool(tvm_ffi.structural_equal(a.dispatched[0], b.dispatched[0]))


# database: planning.pipeline (open_database, apply_database, database_pass)


def _best_us(db, task_mod, exclude=()):
    """(best mean run time in microseconds among the task's records, or None; the number of its
    records). Records whose trace text is in `exclude` (the default schedule's, see
    measure_default) count as records but not as candidates for the best."""
    if not db.has_workload(task_mod):
        return None, 0
    wl = db.commit_workload(task_mod)
    means = []
    for r in db.get_all_tuning_records():
        if r.workload.same_as(wl):
            secs = [float(x) for x in (r.run_secs or [])]
            valid = secs and max(secs) < 1e9 and not (exclude and str(r.trace) in exclude)
            means.append(sum(secs) / len(secs) * 1e6 if valid else None)
    # The minimum over the task's valid records (get_top_k skipped a valid record in
    # test_cuda_records_apply_then_dlight_then_compile); a failed run is stored as 1e10 s.
    valid = [m for m in means if m is not None]
    return (min(valid) if valid else None), len(means)


# --------------------------------------------------------------------------------------------
# measurers: worker processes (default) or in-process (fallback)


def _evaluator_config(target):
    return ms.runner.EvaluatorConfig(
        number=3, repeat=1, min_repeat_ms=100 if _is_gpu(target) else 20, enable_cpu_cache_flush=False
    )


def _popen_pool_missing():
    """None when tvm.support.popen_pool can run (cloudpickle and psutil import), else the reason."""
    missing = []
    for name in ("cloudpickle", "psutil"):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - any import failure: not usable
            missing.append(name)
    return f"{' and '.join(missing)} not importable" if missing else None


def _measurer_choice() -> str:
    choice = (os.environ.get(MEASURER_ENV) or "auto").strip().lower().replace("-", "")
    if choice not in MEASURERS:
        raise BridgeError("invalid_request", f"{MEASURER_ENV} must be one of {list(MEASURERS)}, not {choice!r}")
    return choice


@contextlib.contextmanager
def _workers_can_import_tpat():
    """Workers are `python -m tvm.exec.popen_worker` children that inherit os.environ and unpickle
    tune_worker's functions by reference: put TPAT's python/ folder on their PYTHONPATH (the
    Swift bridge already does; a test that only edits sys.path does not)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    old = os.environ.get("PYTHONPATH")
    parts = [p for p in (old or "").split(os.pathsep) if p]
    if any(os.path.abspath(p) == root for p in parts):
        yield
        return
    os.environ["PYTHONPATH"] = os.pathsep.join([root] + parts)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _cuda_error(msg) -> bool:
    """A runner failure that may leave its worker's CUDA context unusable (illegal address,
    launch failure...) while the process lives on."""
    return msg is not None and "cuda" in str(msg).lower()


def _local_measurers(target, workers=None, rpc=None):
    """(builder, runner, "local (N workers)"): MetaSchedule's LocalBuilder job (same worker
    function, initializer, timeout) on a pool of N worker processes kept for the whole search, and
    its LocalRunner (one worker process), replaced after a CUDA error. Call inside
    _workers_can_import_tpat(); close both with .close().

    Why not ms.builder.LocalBuilder itself: it starts a new pool for every batch, and a worker
    process starts in ~7 s on the H100 machine (importing TVM), which at 8 candidates per batch
    costs as much as building them serially. Kept workers are recycled after
    BUILDS_PER_WORKER builds (the reason LocalBuilder restarts them: memory grows).

    `rpc` (a validated request "rpc", see _validate_rpc): the runner is MetaSchedule's RPCRunner
    instead, timing the builder's tar artifacts on the tracker's servers."""

    workers = max(1, int(workers or os.cpu_count() or 1))
    config = _evaluator_config(target)

    @derived_object
    class PooledLocalBuilder(ms.builder.PyBuilder):
        def __init__(self):
            super().__init__()
            self.pool = PopenPoolExecutor(
                max_workers=workers,
                timeout=BUILD_TIMEOUT_S,
                initializer=tune_worker.init,
                maximum_process_uses=BUILDS_PER_WORKER,
            )
            # one worker up front: an error here (TPAT not importable...) means fall back
            self.pool.submit(int).result()

        def close(self):
            self.pool.shutdown(wait=True)

        def build(self, build_inputs):
            jobs = [
                (tune_worker.build, None, bi.mod, bi.target, None if bi.params is None else save_param_dict(bi.params))
                for bi in build_inputs
            ]
            results = []
            for r in self.pool.map_with_error_catching(tune_worker.build_job, jobs):
                if r.status == StatusKind.COMPLETE:
                    results.append(ms.builder.BuilderResult(r.value, None))
                elif r.status == StatusKind.TIMEOUT:
                    results.append(
                        ms.builder.BuilderResult(None, f"LocalBuilder: Timeout, killed after {BUILD_TIMEOUT_S} seconds")
                    )
                else:  # an exception, or the worker died (ChildProcessError): this candidate only
                    results.append(
                        ms.builder.BuilderResult(None, "LocalBuilder: An exception occurred\n" + str(r.value))
                    )
            return results

    @derived_object
    class IsolatingRunner(ms.runner.PyRunner):
        """MetaSchedule's LocalRunner (one worker process), one candidate at a time. A candidate
        that kills its worker (an illegal address on the H100 does) fails alone: the pool starts
        a new worker. After a CUDA error that the worker survived, it is replaced too: a sticky
        error (illegal address, launch failure) leaves its CUDA context unusable."""

        def __init__(self):
            super().__init__()
            self.local = None
            self.restarts = 0

        def _runner(self):
            if self.local is None:
                self.local = ms.runner.LocalRunner(
                    timeout_sec=RUN_TIMEOUT_S, evaluator_config=config, initializer=tune_worker.init
                )
            return self.local

        def close(self):
            if self.local is not None:
                self.local.pool.shutdown(wait=True)
                self.local = None

        def run(self, runner_inputs):
            futures = []
            for ri in runner_inputs:
                fut = self._runner().run([ri])[0]
                if _cuda_error(fut.result().error_msg):
                    self.close()  # a fresh worker (and CUDA context) for the next candidate
                    self.restarts += 1
                futures.append(fut)
            return futures

    builder = PooledLocalBuilder()
    try:
        if rpc is not None:
            runner = ms.runner.RPCRunner(
                rpc_config=ms.runner.RPCConfig(
                    tracker_host=rpc["host"],
                    tracker_port=rpc["port"],
                    tracker_key=rpc["key"],
                    session_timeout_sec=rpc["session_timeout_s"],
                ),
                evaluator_config=config,
                max_workers=rpc["max_workers"],
                initializer=tune_worker.init,
            )
        else:
            runner = IsolatingRunner()
            runner._runner()  # the runner's worker starts now too (and fails now, if it must)
    except BaseException:
        builder.close()
        raise
    return builder, runner, f"local ({workers} workers)"


# In-process builder and runner (fallback): nothing beyond TVM needed, built modules are kept in
# memory (artifact path "tpat-mem:<n>") until the runner times them. Builds are serial, there is
# no per-candidate timeout, and a candidate that crashes the GPU ends the search.

_ARTIFACTS: dict = {}
_ARTIFACT_SEQ = [0]


def _in_process_measurers(target):
    config = _evaluator_config(target)

    @derived_object
    class InProcessBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs):
            results = []
            for bi in build_inputs:
                try:
                    rt = lb.default_build(bi.mod, bi.target, None)
                    _ARTIFACT_SEQ[0] += 1
                    key = f"tpat-mem:{_ARTIFACT_SEQ[0]}"
                    _ARTIFACTS[key] = rt
                    results.append(ms.builder.BuilderResult(key, None))
                except KeyboardInterrupt:
                    _STOP["reason"] = "interrupted"
                    raise
                except Exception as e:  # noqa: BLE001 - a failed candidate, not a failed search
                    results.append(ms.builder.BuilderResult(None, f"{type(e).__name__}: {e}"[:4000]))
            return results

    @derived_object
    class InProcessRunner(ms.runner.PyRunner):
        def run(self, runner_inputs):
            fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure", True) or tvm.get_global_func(
                "tvm.contrib.random.random_fill", True
            )
            futures = []
            for ri in runner_inputs:
                key = str(ri.artifact_path)
                rt = _ARTIFACTS.pop(key, None)
                try:
                    if rt is None:
                        raise RuntimeError(f"no built module for {key}")
                    dev = tvm.device(str(ri.device_type), 0)
                    args = alloc_argument_common(fill, dev, tuple(a.as_json() for a in ri.args_info), 1)
                    costs = run_evaluator_common(rt, dev, config, args)
                    futures.append(lr.LocalRunnerFuture(res=costs, error_message=None))
                except KeyboardInterrupt:
                    _STOP["reason"] = "interrupted"
                    raise
                except Exception as e:  # noqa: BLE001
                    futures.append(lr.LocalRunnerFuture(res=None, error_message=f"{type(e).__name__}: {e}"[:4000]))
            return futures

    return InProcessBuilder(), InProcessRunner()


# --------------------------------------------------------------------------------------------
# symbolic dims: tune at concrete values


def reference_bindings(model_path: str) -> dict:
    """Symbol values of a generated plugin's reference cases (`<P>/reference/manifest.json`, next
    to `<P>.onnx`): per symbol the largest value any case binds. {} when there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "reference", "manifest.json")
    try:
        with open(path) as f:
            cases = json.load(f).get("cases", [])
    except (OSError, ValueError, AttributeError):
        return {}
    out = {}
    for c in cases if isinstance(cases, list) else []:
        for k, v in (c.get("bindings") or {}).items() if isinstance(c, dict) else ():
            if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0:
                out[k] = max(v, out.get(k, 0))
    return out


def specialize_model(model_path: str, bindings: dict, out_path: str):
    """Writes the one-node model with its symbolic input dims replaced by `bindings` (symbols of
    the model missing from `bindings` get 1) to out_path. Output and value_info dims are cleared
    (ONNX import infers them). Returns ({symbol: value} used, the model's symbols), or None when
    the model has no symbolic input dim (nothing written)."""
    import onnx  # lazy: only the symbolic-dims path reads the model

    model = onnx.load(model_path, load_external_data=False)
    syms = []
    for vi in model.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param not in syms:
                syms.append(d.dim_param)
    if not syms:
        return None
    used = {s: int(bindings.get(s, 1)) for s in syms}
    for vi in model.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                v = used[d.dim_param]
                d.Clear()
                d.dim_value = v
    for vi in list(model.graph.output) + list(model.graph.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.Clear()
    onnx.save(model, out_path)
    return used, syms


def _symbolic_vars(func) -> list:
    """Names of the shape variables a PrimFunc's tensor arguments still use (a data-dependent size,
    a symbol the bindings did not fix); [] for a static function. MetaSchedule's ArgInfo refuses
    non-constant shapes; the names are the function's free integer variables."""
    try:
        ms.arg_info.ArgInfo.from_prim_func(func)
        return []
    except Exception:  # noqa: BLE001 - "Cannot convert ... ir.Var ... to Array<ir.IntImm>"
        names = {
            str(v)
            for v in tvm.tirx.analysis.undefined_vars(func.body)
            if not str(v).startswith("v_")  # block iterators
            and (getattr(v, "dtype", None) is None or str(v.dtype).startswith("int"))  # not buffer data
        }
        return sorted(names) or ["(unknown)"]


# --------------------------------------------------------------------------------------------
# which tasks can be searched, and the default schedule's time


def task_space(task, target):
    """(TuneContext-free) check of one extracted task: returns (kind, reason). kind "tune": a
    MetaSchedule design space with a schedule instruction exists; "skip": reason says why not
    (hand-scheduled TPAT lowering, symbolic shapes left, no design space, the space generator
    failed, no schedule instruction in the space)."""
    mod = task.dispatched[0] if task.dispatched else task.mod
    f = mod["main"]
    if f.attrs is not None and "tirx.is_scheduled" in f.attrs and int(f.attrs["tirx.is_scheduled"]):
        return "skip", "hand-scheduled TPAT lowering (its schedule is part of the lowering: no MetaSchedule space)"
    sym = _symbolic_vars(f)
    if sym:
        return "skip", f"symbolic shape(s) {', '.join(sym)[:200]}: MetaSchedule samples no candidate for them"
    try:
        ctx = ms.TuneContext(
            mod=mod, target=target, space_generator="post-order-apply", task_name=task.task_name, num_threads=1
        )
        spaces = ctx.space_generator.generate_design_space(mod)
    except Exception as e:  # noqa: BLE001 - the generator refuses this function: report, go on
        text = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        return "skip", f"no design space ({type(e).__name__}: {text[:300]})"
    if len(spaces) == 0:
        return "skip", "empty design space"
    if all(schedule_instructions(s.trace) == 0 for s in spaces):
        # MetaSchedule counts a record without a schedule instruction as invalid (its query skips
        # it): the candidate would be timed, and never applied.
        return (
            "skip",
            "no schedule instruction in its design space (the function as written; a record of it never applies)",
        )
    return "tune", None


def schedule_instructions(trace) -> int:
    """Instructions of a trace once simplified (dead lookups such as an unused GetSBlock dropped,
    as MetaSchedule stores a candidate's trace) before its postprocessors: MetaSchedule's
    GetNumValidInstructions. 0 means the schedule is the function as written."""
    n = 0
    for inst in trace.simplified(remove_postproc=True).insts:
        if inst.kind.name == "EnterPostproc":
            break
        n += 1
    return n


def default_schedule(task_mod, target):
    """(module, trace) of the task's default schedule, as the planner schedules it without a
    database: dlight's rules on a GPU (planning.pipeline.default_schedule_rules, the first rule that
    applies, as ApplyDefaultSchedule does), unchanged on the CPU (an empty trace). The trace
    replays it: a database record of the default is a schedule like any candidate's."""
    from tvm import s_tir  # lazy: TVM's schedule module, loaded only when a default is recorded

    func = task_mod["main"]
    if _is_gpu(target):
        from ..planning.pipeline import default_schedule_rules  # lazy: GPU targets only

        with target:
            for rule in default_schedule_rules():
                space = rule.apply(func, target, False)
                if space is None:
                    continue
                sch = space if isinstance(space, s_tir.Schedule) else space[0]
                return tvm.IRModule({"main": sch.mod["main"].with_attr("tirx.is_scheduled", True)}), sch.trace
    sch = s_tir.Schedule(task_mod)  # no rule applies (dlight leaves it as is), or the CPU
    return sch.mod, sch.trace


def default_module(task_mod, target):
    """The task's function as the planner schedules it without a database (see default_schedule)."""
    return default_schedule(task_mod, target)[0]


def copy_module(mod):
    """A deep copy of an IRModule (passes that work in place then leave the original alone)."""
    return tvm.ir.load_json(tvm.ir.save_json(mod))


FAILED_RUN_SECS = 1e10  # what MetaSchedule records for a candidate that did not run (never applied)


def _first_error(msg) -> str:
    """The line of a builder/runner error worth showing: the last non-empty one (a Python
    traceback's exception, an RPC server's CUDA error), at most 300 characters."""
    lines = [ln.strip() for ln in str(msg).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "unknown error")[:300]


def measure_default(task_mod, target, builder, runner, db=None):
    """Builds and times the default schedule of one task with the search's own builder and runner
    (same worker processes or RPC servers, same evaluator config) and, with `db`, records it in
    the search's database like a candidate: the default schedule's trace with its run times
    (FAILED_RUN_SECS when it did not run). Returns (us or None, error or None, trace)."""

    mod, trace = default_schedule(task_mod, target)
    args = ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True)

    def record(secs):
        if db is not None:
            wl = db.commit_workload(task_mod)
            db.commit_tuning_record(ms.database.TuningRecord(trace, wl, secs, target, args))

    br = builder.build([ms.builder.BuilderInput(mod, target)])[0]
    if br.error_msg is not None:
        record([FAILED_RUN_SECS])
        return None, f"default schedule did not build: {_first_error(br.error_msg)}", trace
    try:
        dev = "cuda" if _is_gpu(target) else "cpu"
        rr = runner.run([ms.runner.RunnerInput(br.artifact_path, dev, args)])[0].result()
    finally:
        path = str(br.artifact_path)
        if not path.startswith("tpat-mem:") and os.path.isfile(path):
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        _ARTIFACTS.pop(path, None)
    if rr.error_msg is not None or not rr.run_secs:
        record([FAILED_RUN_SECS])
        return None, f"default schedule did not run: {_first_error(rr.error_msg)}", trace
    secs = [float(x) for x in rr.run_secs]
    record(secs)
    return sum(secs) / len(secs) * 1e6, None, trace


def drop_workloads(work_dir: str, mods) -> int:
    """Moves every record of the workloads `mods` (structurally equal IRModules) out of the
    database in work_dir into rejected_tuning_record.json (kept for reading, never applied).
    Returns the number of records moved."""
    if not mods:
        return 0
    db = open_database(work_dir)
    keep, drop = [], []
    for r in db.get_all_tuning_records():
        (drop if any(tvm_ffi.structural_equal(r.workload.mod, m) for m in mods) else keep).append(r)
    if not drop:
        return 0
    tmp = os.path.join(work_dir, ".rewrite")

    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    new = ms.database.JSONDatabase(
        path_workload=os.path.join(tmp, "database_workload.json"),
        path_tuning_record=os.path.join(tmp, "database_tuning_record.json"),
        module_equality="structural",
        allow_missing=True,
    )
    rej = ms.database.JSONDatabase(
        path_workload=os.path.join(tmp, "rejected_workload.json"),
        path_tuning_record=os.path.join(tmp, "rejected_tuning_record.json"),
        module_equality="structural",
        allow_missing=True,
    )
    for target_db, recs in ((new, keep), (rej, drop)):
        for r in recs:
            wl = target_db.commit_workload(r.workload.mod)
            target_db.commit_tuning_record(ms.database.TuningRecord(r.trace, wl, r.run_secs, r.target, r.args_info))
    for name in ("database_workload.json", "database_tuning_record.json"):
        os.replace(os.path.join(tmp, name), os.path.join(work_dir, name))
    for name in ("rejected_workload.json", "rejected_tuning_record.json"):
        src = os.path.join(tmp, name)
        if os.path.isfile(src):
            os.replace(src, os.path.join(work_dir, name))
    shutil.rmtree(tmp, ignore_errors=True)
    return len(drop)


# --------------------------------------------------------------------------------------------
# tune


def _env_bindings() -> dict:
    """TPAT_TUNE_BINDINGS="s0=64,s1=128": the symbol values `tpat tune` searches at (the request's
    "bindings" win). Bad text is an invalid_request."""
    text = (os.environ.get(BINDINGS_ENV) or "").strip()
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not name.strip() or not value.strip().isdigit() or not 0 < int(value) < 2**31:
            raise BridgeError("invalid_request", f"{BINDINGS_ENV}: expected NAME=VALUE[,NAME=VALUE], not {part!r}")
        out[name.strip()] = int(value)
    return out


def _search_strategy():
    """MetaSchedule's evolutionary search; TPAT_TUNE_POPULATION=N shrinks its population (default
    512) for small machines and tests (the search's CPU time per batch grows with it)."""
    text = (os.environ.get(POPULATION_ENV) or "").strip()
    if not text:
        return "evolutionary"
    if not text.isdigit() or int(text) < 8:
        raise BridgeError("invalid_request", f"{POPULATION_ENV} must be an integer >= 8, not {text!r}")
    n = int(text)
    return ms.search_strategy.EvolutionarySearch(population_size=n, init_min_unmeasured=min(50, n // 2))


def _validate(request):
    if not isinstance(request, dict):
        raise BridgeError("invalid_request", "request must be a JSON object")
    mp = request.get("model_path")
    if not isinstance(mp, str) or not mp:
        raise BridgeError("invalid_request", "model_path (string) is required")
    if not os.path.isfile(mp):
        raise BridgeError("model_load_failed", f"model file '{mp}' does not exist")
    wd = request.get("work_dir")
    if not isinstance(wd, str) or not wd:
        raise BridgeError("invalid_request", "work_dir (string) is required")
    trials = request.get("trials", 64)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise BridgeError("invalid_request", f"trials must be a positive integer, not {trials!r}")
    budget = request.get("time_budget_s")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise BridgeError("invalid_request", f"time_budget_s must be a positive number, not {budget!r}")
    # The time budget is checked between batches: with a budget, batches are small so it holds.
    batch = request.get("trials_per_batch", min(8 if budget is not None else 32, trials))
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise BridgeError("invalid_request", f"trials_per_batch must be a positive integer, not {batch!r}")
    lowering = _lowerings(request.get("lowering"))
    target = request.get("target", "sm_90")
    if not isinstance(target, str):
        raise BridgeError("invalid_request", "target must be a string")
    rpc = _validate_rpc(request.get("rpc"))
    bindings = request.get("bindings") or {}
    if not isinstance(bindings, dict) or not all(
        isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31
        for k, v in bindings.items()
    ):
        raise BridgeError("invalid_request", f"bindings must map symbol names to positive integers, not {bindings!r}")
    keep = request.get("keep", "wins")
    if keep not in ("wins", "all"):
        raise BridgeError("invalid_request", f"keep must be 'wins' or 'all', not {keep!r}")
    return mp, wd, trials, batch, budget, lowering, target, rpc, bindings, keep


def _lowerings(value) -> list:
    """The request's "lowering" as the lowerings to search, in the planner's tactic order: "tpat",
    "tvm", "both" or a list of "tpat" / "tvm". Absent: $TPAT_LOWERING when set (the planner then
    makes that lowering's tactics only), else both (what the planner makes: TPAT's lowering as
    tactic 0 and TVM's as a second tactic where TPAT's applies, TVM's alone elsewhere)."""
    if value is None:
        value = (os.environ.get("TPAT_LOWERING") or "").strip() or "both"
    if value == "both":
        value = list(LOWERINGS)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v in LOWERINGS for v in value):
        raise BridgeError(
            "invalid_request", f"lowering must be 'tpat', 'tvm', 'both' or a list of 'tpat'/'tvm', not {value!r}"
        )
    return [name for name in LOWERINGS if name in value]


def _validate_rpc(rpc):
    """The request's "rpc" as {"host", "port", "key", "session_timeout_s", "max_workers"}, or None."""
    if rpc is None:
        return None
    if not isinstance(rpc, dict):
        raise BridgeError("invalid_request", "rpc must be an object {tracker, key, session_timeout_s, max_workers}")
    unknown = sorted(set(rpc) - set(RPC_KEYS))
    if unknown:
        raise BridgeError("invalid_request", f"rpc: unknown field(s) {unknown}; expected {list(RPC_KEYS)}")
    tracker = rpc.get("tracker")
    host, _, port = tracker.rpartition(":") if isinstance(tracker, str) else ("", "", "")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:9190
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BridgeError("invalid_request", f"rpc.tracker must be 'host:port' (port 1-65535), not {tracker!r}")
    key = rpc.get("key")
    if not isinstance(key, str) or not key.strip() or ":" in key:
        raise BridgeError("invalid_request", f"rpc.key must be a non-empty string without ':', not {key!r}")
    timeout = rpc.get("session_timeout_s", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise BridgeError("invalid_request", f"rpc.session_timeout_s must be a positive number, not {timeout!r}")
    workers = rpc.get("max_workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise BridgeError("invalid_request", f"rpc.max_workers must be a positive integer, not {workers!r}")
    return {"host": host, "port": int(port), "key": key, "session_timeout_s": float(timeout), "max_workers": workers}


def _rpc_label(rpc) -> str:
    return f"rpc (key {rpc['key']} at {rpc['host']}:{rpc['port']})"


def check_tracker(rpc, timeout: float = RPC_CHECK_TIMEOUT_S) -> dict:
    """Ask the tracker for its summary (TVM's tracker protocol, with a socket timeout: TVM's own
    client retries a refused connection for 60 s) and require a server registered under the key.
    Returns the summary; raises BridgeError("rpc_unavailable") otherwise. All servers busy is only
    a warning: the runner's requests wait in the tracker's queue."""

    where = f"{rpc['host']}:{rpc['port']}"
    try:
        with socket.create_connection((rpc["host"], rpc["port"]), timeout=timeout) as sock:
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = struct.unpack("<i", base.recvall(sock, 4))[0]
            if magic != base.RPC_TRACKER_MAGIC:
                raise BridgeError("rpc_unavailable", f"{where} is not a TVM RPC tracker")
            base.sendjson(sock, [base.TrackerCode.SUMMARY])
            value = base.recvjson(sock)
    except BridgeError:
        raise
    except Exception as e:  # noqa: BLE001 - refused, timed out, unknown host, closed...
        raise BridgeError(
            "rpc_unavailable", f"RPC tracker {where} not reachable ({type(e).__name__}: {str(e) or 'no answer'})"[:500]
        ) from None
    if not (isinstance(value, list) and len(value) == 2 and value[0] == base.TrackerCode.SUCCESS):
        raise BridgeError("rpc_unavailable", f"RPC tracker {where} gave no summary ({str(value)[:200]})")
    summary = value[1]
    servers = [s for s in summary.get("server_info", []) if s.get("key") == f"server:{rpc['key']}"]
    if not servers:
        keys = sorted({str(s.get("key", "")).split(":", 1)[-1] for s in summary.get("server_info", [])})
        raise BridgeError(
            "rpc_unavailable",
            f"no RPC server registered under key '{rpc['key']}' at tracker {where} (keys there: {keys or 'none'})",
        )
    free = summary.get("queue_info", {}).get(rpc["key"], {}).get("free", len(servers))
    _log(f"tune: RPC tracker {where}: {len(servers)} server(s) under key '{rpc['key']}', {free} free")
    if not free:
        _log(f"tune: warning: every server under key '{rpc['key']}' is busy; measurements wait for one")
    return summary


def probe_servers(rpc, device: str, count: int, timeout: float = RPC_PROBE_TIMEOUT_S) -> int:
    """Opens `count` sessions through the tracker at once (so each lands on another free server),
    allocates a 1-element tensor on `device` ("cuda" or "cpu", index 0) in each and syncs: what
    every candidate's timing does first. Raises BridgeError("rpc_unavailable") naming the
    server's error when one cannot (e.g. cudaErrorInitializationError: a server process that
    initialised CUDA before forking its session, see tools/rpc_server.py); returns the number of
    servers that answered. A probe still waiting after `timeout` seconds (busy servers) only
    warns: the search's own requests queue at the tracker."""
    from tvm import rpc as tvm_rpc

    results, sessions = [], []

    def work():
        try:
            tracker = tvm_rpc.connect_tracker(rpc["host"], rpc["port"])
            for _ in range(count):
                sessions.append(tracker.request(rpc["key"], priority=1, session_timeout=timeout))
            for sess in sessions:
                dev = sess.device(device, 0)
                tvm.runtime.empty((1,), "float32", dev)
                dev.sync()
                results.append(None)
        except Exception as e:  # noqa: BLE001 - reported below
            results.append(e)
        finally:
            sessions.clear()  # the last references: the sessions end, the servers are free again

    th = threading.Thread(target=work, name="tpat-rpc-probe", daemon=True)
    th.start()
    th.join(timeout)
    where = f"{rpc['host']}:{rpc['port']}"
    if th.is_alive():
        _log(f"tune: warning: no answer from {count} RPC server(s) under key '{rpc['key']}' within {timeout:.0f} s")
        return 0
    errors = [e for e in results if e is not None]
    if errors:
        msg = _first_error(f"{type(errors[0]).__name__}: {errors[0]}")
        hint = ""
        if "InitializationError" in msg or "initialization error" in msg:
            hint = (
                " (the server process initialised CUDA before forking this session: start the servers "
                "with `python -m tpat_bridge.tools.rpc_server`, docs/tuning.md)"
            )
        raise BridgeError(
            "rpc_unavailable",
            f"an RPC server under key '{rpc['key']}' at {where} cannot use {device}:0: {msg}{hint}"[:1000],
        )
    _log(f"tune: RPC probe: {len(results)} server(s) under key '{rpc['key']}' allocated on {device}:0")
    return len(results)


def _measurers(target, choice: str, rpc=None):
    """(builder, runner, builder label, runner label) for the search: the worker-process ones
    unless `choice` is "inprocess" or (for "auto") popen_pool cannot run; see _local_measurers.
    With `rpc`: the worker-process builder and MetaSchedule's RPCRunner, never in-process. Call
    inside _workers_can_import_tpat()."""
    if rpc is not None:
        if choice == "inprocess":
            raise BridgeError(
                "invalid_request",
                f"rpc needs the worker-process builder (its tar "
                f"artifacts are uploaded), not {MEASURER_ENV}=inprocess (in-memory modules)",
            )
        missing = _popen_pool_missing()
        if missing is not None:
            raise BridgeError(
                "invalid_request",
                f"rpc needs the worker-process builder, but {missing} (pip install -r python/requirements.lock)",
            )
        try:
            builder, runner, label = _local_measurers(target, rpc=rpc)
        except BridgeError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BridgeError(
                "tvm_error", f"rpc: worker processes failed to start: {type(e).__name__}: {e}"[:1500]
            ) from None
        return builder, runner, label, _rpc_label(rpc)
    if choice != "inprocess":
        missing = _popen_pool_missing()
        if missing is None:
            try:
                return _local_measurers(target) + ("local",)
            except Exception as e:  # noqa: BLE001 - e.g. a worker that cannot start
                if choice == "local":
                    raise BridgeError(
                        "tvm_error",
                        f"{MEASURER_ENV}=local: worker processes failed to start: {type(e).__name__}: {e}"[:1500],
                    ) from None
                _log(
                    f"tune: worker processes failed to start ({type(e).__name__}: "
                    f"{(str(e).strip().splitlines() or [''])[-1][:300]}); building in this process"
                )
        elif choice == "local":
            raise BridgeError(
                "invalid_request", f"{MEASURER_ENV}=local, but {missing} (pip install -r python/requirements.lock)"
            )
        else:
            _log(f"tune: {missing}: candidates are built and timed serially in this process")
    builder, runner = _in_process_measurers(target)
    return builder, runner, "in-process", "in-process"


def _cost_model_kind() -> str:
    try:
        import xgboost  # noqa: F401  an availability probe: the cost model depends on it

        return "xgb"
    except Exception:  # noqa: BLE001 - any import failure: no xgboost
        return "random"


def _bar(done: int, total: int, width: int = 24) -> str:
    """A text progress bar over all trials of this call: [#######-----------] 12/64."""
    total = max(total, 1)
    filled = min(width, round(width * done / total))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def tune(request: dict) -> dict:
    """Bridge command "tune". Raises BridgeError for bad requests; see the module docstring."""

    model_path, work_dir, trials, batch, budget, lowering, target_name, rpc, bindings, keep = _validate(request)
    t_start = time.monotonic()
    # TPAT_TUNE_TARGET=llvm: search for this CPU instead (`tpat tune` sends the plan's sm_xx); the
    # CPU proof of RPC tuning uses it. A plan for CUDA never applies llvm records.
    target_name = (os.environ.get(TARGET_ENV) or "").strip() or target_name
    target = tuning_target(target_name)
    measurer = _measurer_choice()
    if rpc is not None:
        if measurer == "inprocess":
            _measurers(target, measurer, rpc)  # raises: no in-process measuring over RPC
        summary = check_tracker(rpc)  # before the (slow) module build and search
        free = summary.get("queue_info", {}).get(rpc["key"], {}).get("free", 0)
        if free:  # every server the search will use at once must be able to run on the device
            probe_servers(rpc, "cuda" if _is_gpu(target) else "cpu", min(int(free), rpc["max_workers"]))

    os.makedirs(work_dir, exist_ok=True)
    # Symbolic dims: MetaSchedule samples no candidate for them. The search runs at concrete
    # values (the request's bindings, else the plugin's largest reference case, else 1).
    used = None
    want = {**reference_bindings(model_path), **_env_bindings(), **bindings}
    with tempfile.TemporaryDirectory(prefix=".tpat-tune-", dir=work_dir) as tmp:
        spec = os.path.join(tmp, "specialized.onnx")
        try:
            got = specialize_model(model_path, want, spec)
        except Exception as e:  # noqa: BLE001 - an unreadable model: load_node says why below
            got = None
            _log(f"tune: cannot specialize symbolic dims ({type(e).__name__}); tuning the model as is")
        if got is not None:
            used = got[0]
            _log(f"tune: symbolic dims bound to {', '.join(f'{k}={v}' for k, v in used.items())} for the search")
        modules, note = fused_modules(spec if got is not None else model_path, target, lowering)
    db = open_database(work_dir)

    # One database for all lowerings: records are keyed by the function's structure, so a plan of
    # either lowering applies the records of its own functions.
    skipped = []  # (task, lowering, reason)
    todo, owners = [], []  # tasks to search, and the lowering(s) each belongs to
    for made_by, mod in modules:
        for t in ms.relax_integration.extract_tasks(mod, target):
            same = next((k for k, u in enumerate(todo) if _same_task(u, t)), None)
            if same is not None:  # both lowerings made this function: searched once
                owners[same] = "+".join(dict.fromkeys(owners[same].split("+") + [made_by]))
                continue
            if any(_same_task(u, t) for u, _, _ in skipped):
                continue
            kind, reason = task_space(t, target)
            if kind == "tune":
                todo.append(t)
                owners.append(made_by)
            else:
                skipped.append((t, made_by, reason))
                _log(f"tune: {made_by} {t.task_name}: not searched: {reason}")
    n = len(todo)
    names = [t.task_name for t in todo]
    stats = {i: {"trials": 0, "best_us": None, "seconds": 0.0} for i in range(n)}
    default_traces = {}  # task index -> {the default schedule's trace text}: its records are no candidates
    for i, t in enumerate(todo):
        default_traces[i] = {str(default_schedule(copy_module(t.dispatched[0]), target)[1])}
        stats[i]["best_us"] = _best_us(db, t.dispatched[0], default_traces[i])[0]
    _STOP["reason"] = None
    deadline = time.monotonic() + float(budget) if budget is not None else None
    cost_model = _cost_model_kind()
    current = {"task": 0, "deadline": None}  # the task searched now, and the end of its share of the budget

    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            st = stats[current["task"]]
            if not builder_results:
                # The search found no candidate it has not measured. One empty round can be the
                # evolutionary search's bad luck; EMPTY_ROUNDS in a row mean the space is
                # exhausted (a space with no sampled decisions has one point), and MetaSchedule
                # would go on asking.
                st["empty_rounds"] = st.get("empty_rounds", 0) + 1
                if st["empty_rounds"] >= EMPTY_ROUNDS:
                    st["exhausted"] = True
                    raise _StopTuning("exhausted")
                return
            st["empty_rounds"] = 0
            for br, rr in zip(builder_results, runner_results):
                st["trials"] += 1
                if br.error_msg is None and rr.error_msg is None and rr.run_secs:
                    secs = [float(x) for x in rr.run_secs]
                    us = sum(secs) / len(secs) * 1e6
                    if st["best_us"] is None or us < st["best_us"]:
                        st["best_us"] = us
                    continue
                # A failed candidate: recorded by MetaSchedule as failed (never applied); said here
                # (the first FAILURES_LOGGED of a task one by one, then counted), the search goes on.
                stage, msg = ("build", br.error_msg) if br.error_msg is not None else ("run", rr.error_msg)
                st["failed"] = st.get("failed", 0) + 1
                st.setdefault("first_error", f"{stage}: {_first_error(msg)}")
                if st["failed"] <= FAILURES_LOGGED:
                    _log(
                        f"tune: {names[current['task']]}: candidate {st['trials']} did not {stage}: {_first_error(msg)}"
                    )
            best = "none" if st["best_us"] is None else f"{st['best_us']:.2f}"
            _log(
                f"{_bar(sum(s['trials'] for s in stats.values()), trials)} "
                f"task {current['task'] + 1}/{n} {names[current['task']]}: trials {st['trials']}, best {best} us"
            )
            now = time.monotonic()
            if _STOP["reason"] is None and deadline is not None and now > deadline:
                _STOP["reason"] = "budget"
                _log("tune: time budget used up")
            if _STOP["reason"] is not None:
                raise _StopTuning(_STOP["reason"])
            if current["deadline"] is not None and now > current["deadline"]:
                st["budget"] = True  # this task's share of the budget: the next task gets the rest
                _log(f"tune: {names[current['task']]}: its share of the time budget is used up")
                raise _StopTuning("task budget")

    interrupted = False
    stopped_by_budget = False
    builder_kind = runner_kind = None  # nothing measured: no builder used
    defaults = {}  # task index -> (default us or None, error or None)
    failed = {}  # task index -> the search's error
    if n:
        # One search per task (trials shared out): a task whose search fails fails alone, and the
        # time per task is known. Trials and time a task leaves unused (a space of one point ends
        # after one candidate) go to the tasks after it.
        per_task = [trials // n + (1 if i < trials % n else 0) for i in range(n)]
        spent = 0
        with _workers_can_import_tpat():
            builder = runner = None
            old_handler = _install_sigint()
            try:
                builder, runner, builder_kind, runner_kind = _measurers(target, measurer, rpc)
                # AddToDatabase first: a batch is in the database before Progress may stop the search.
                callbacks = [ms.measure_callback.AddToDatabase()]
                if builder_kind != "in-process":
                    callbacks.append(ms.measure_callback.RemoveBuildArtifact())  # the tar files' temp dirs
                callbacks += [ms.measure_callback.UpdateCostModel(), Progress()]
                _log(
                    f"tune: {n} task(s) for {target_name}, {trials} trials ({'/'.join(map(str, per_task))}) in "
                    f"batches of {batch}, cost model {cost_model}, builder {builder_kind}, runner {runner_kind}, "
                    f"database {work_dir}"
                )
                for i, t in enumerate(todo):
                    share = -(-(trials - spent) // (n - i))  # ceil: the earlier tasks get the remainder
                    if _STOP["reason"] is not None or share < 1:
                        break
                    current["task"] = i
                    t0 = time.monotonic()
                    current["deadline"] = None if deadline is None else t0 + (deadline - t0) / (n - i)
                    try:
                        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                            [t],
                            work_dir=work_dir,
                            strategy=_search_strategy(),
                            num_threads=max(1, os.cpu_count() or 1),
                            seed=None,
                        )
                        ms.tune_tasks(
                            tasks=contexts,
                            task_weights=weights,
                            work_dir=work_dir,
                            max_trials_global=share,
                            num_trials_per_iter=min(batch, share),
                            builder=builder,
                            runner=runner,
                            database=db,
                            cost_model=cost_model,
                            measure_callbacks=callbacks,
                            task_scheduler="gradient",
                        )
                    except KeyboardInterrupt:
                        _STOP["reason"] = "interrupted"
                    except BridgeError:
                        raise
                    except Exception as e:  # noqa: BLE001 - exceptions raised in Python callbacks come
                        # back from MetaSchedule's C++ loop as RuntimeError(''): the reason is in _STOP.
                        if _STOP["reason"] is None and not stats[i].get("exhausted") and not stats[i].get("budget"):
                            text = f"{type(e).__name__}: {e}".strip()
                            failed[i] = text.splitlines()[-1][:500] if text else type(e).__name__
                            _log(f"tune: {names[i]}: search failed: {failed[i]}")
                    finally:
                        stats[i]["seconds"] = round(time.monotonic() - t0, 2)
                        spent += stats[i]["trials"]
                    if _STOP["reason"] != "interrupted":
                        # The default schedule is timed after the search, with the same builder
                        # and runner (the same RPC servers), and recorded in the same database.
                        us, err, trace = measure_default(copy_module(t.dispatched[0]), target, builder, runner, db)
                        defaults[i] = (us, err)
                        default_traces[i].add(str(trace))
                        _log(
                            f"tune: {names[i]}: {err}"
                            if err
                            else f"tune: {names[i]}: default schedule {us:.2f} us (runner {runner_kind}), recorded"
                        )
            finally:
                _restore_sigint(old_handler)
                _ARTIFACTS.clear()
                for m in (builder, runner):
                    if m is not None and hasattr(m, "close"):
                        m.close()
                    elif m is not None and hasattr(m, "pool"):  # MetaSchedule's RPCRunner
                        m.pool.shutdown(wait=True)
        interrupted = _STOP["reason"] == "interrupted"
        stopped_by_budget = _STOP["reason"] == "budget"
    if interrupted:
        _log("tune: interrupted; records measured so far are kept in the database")
    # Keep a task's tuned schedule only where it beats the default one (measured above, same
    # runner): otherwise its records leave the database (rejected_tuning_record.json).
    tasks, losers = [], []
    for i, t in enumerate(todo):
        best, records = _best_us(db, t.dispatched[0], default_traces.get(i, ()))
        default_us, default_err = defaults.get(i, (None, None))
        kept = best is not None and (keep == "all" or default_us is None or best < KEEP_RATIO * default_us)
        entry = {
            "name": names[i],
            "lowering": owners[i],
            "trials": stats[i]["trials"],
            "best_us": best,
            "default_us": default_us,
            "kept": kept,
            "records": records,
            "seconds": stats[i]["seconds"],
        }
        if stats[i].get("exhausted"):
            entry["exhausted"] = True
        if default_err:
            entry["default_error"] = default_err
        if stats[i].get("failed"):
            entry["failed"] = stats[i]["failed"]
            entry["first_error"] = stats[i]["first_error"]
            _log(
                f"tune: {names[i]}: {stats[i]['failed']} of {stats[i]['trials']} candidate(s) failed ({stats[i]['first_error']})"
            )
        if i in failed:
            entry["error"] = failed[i]
        if best is not None and not kept:
            losers.append(t.dispatched[0])
            entry["records"] = 0
        tasks.append(entry)
        if best is not None:
            _log(
                f"tune: {names[i]}: best {best:.2f} us vs default "
                f"{'-' if default_us is None else f'{default_us:.2f}'} us -> {'kept' if kept else 'dropped'}"
            )
    if losers:
        drop_workloads(work_dir, losers)
    for t, made_by, reason in skipped:
        tasks.append(
            {"name": t.task_name, "lowering": made_by, "trials": 0, "best_us": None, "records": 0, "skipped": reason}
        )
    answer = {
        "work_dir": work_dir,
        "target": target_name,
        "lowering": [made_by for made_by, _ in modules],
        "tasks": tasks,
        "cost_model": cost_model,
        "builder": builder_kind,
        "runner": runner_kind,
        "interrupted": interrupted,
        "budget_exhausted": stopped_by_budget,
        "seconds": round(time.monotonic() - t_start, 2),
    }
    if used is not None:
        answer["bindings"] = used
    if note:
        answer["note"] = note
    return answer


def main(argv=None) -> int:
    """`python -m tpat_bridge.tools.tune '<request json>'`: prints the answer (for manual runs)."""
    argv = sys.argv[1:] if argv is None else argv
    req = json.loads(argv[0]) if argv else json.loads(sys.stdin.read())
    try:
        ans = tune(req)
    except BridgeError as e:
        print(json.dumps({"ok": False, "error": {"code": e.code, "reason": e.reason}}))
        return 1
    print(json.dumps({"ok": True, "result": ans}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
