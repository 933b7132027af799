"""Stand-in MetaSchedule runners for tuning tests without a GPU (tests/python/test_tune*.py and
tests/fixtures/tuning/make_fake_db.py).

`tpat tune` measures through `tune._in_process_measurers` (builder, runner) and times the default
schedule through `tune.measure_default`. `install` swaps both: the builder stays the real
in-process one (CUDA C source, no nvcc), every searched candidate gets the time `time_of(cuda_source)`
(seconds) and the default schedule gets `default_s`. The schedules built are real; only the times
are made up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from tpat_bridge.tools import tune as T
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture


def hashed_time(src: str) -> float:
    """10-20 us from a hash of the kernel's CUDA source: distinct schedules, distinct times."""
    h = int(hashlib.sha256(src.encode()).hexdigest(), 16)
    return 1e-5 * (1 + (h % 100) / 100)


def _cuda_source(runner_input) -> str:
    rt = T._ARTIFACTS.pop(str(runner_input.artifact_path))
    src = "".join(m.inspect_source("cuda") for m in rt.imports if m.kind == "cuda")
    assert "__global__" in src, "the in-process builder did not make a CUDA kernel"
    return src


@derived_object
class FakeGpuRunner(ms.runner.PyRunner):
    """Times each candidate by `time_of` of its CUDA source."""

    def __init__(self, time_of: Callable[[str], float]) -> None:
        super().__init__()
        self.time_of = time_of

    def run(self, runner_inputs):
        return [LocalRunnerFuture(res=[self.time_of(_cuda_source(ri))], error_message=None) for ri in runner_inputs]


@derived_object
class FixedTimeRunner(ms.runner.PyRunner):
    """Gives every input the same time (the default schedule's stand-in)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def run(self, runner_inputs):
        for ri in runner_inputs:
            T._ARTIFACTS.pop(str(ri.artifact_path), None)
        return [LocalRunnerFuture(res=[self.seconds], error_message=None) for _ in runner_inputs]


def install(setattr_: Callable, time_of: Callable[[str], float] = hashed_time, default_s: float | None = 1e-3) -> None:
    """Swaps tune's measurers through `setattr_(obj, name, value)` (pytest's monkeypatch.setattr, or
    setattr in a script). default_s None keeps the real default-schedule timing."""
    orig = T._in_process_measurers

    def measurers(target):
        builder, _ = orig(target)
        return builder, FakeGpuRunner(time_of)

    setattr_(T, "_in_process_measurers", measurers)
    if default_s is not None:
        default = T.measure_default
        setattr_(
            T,
            "measure_default",
            lambda mod, target, b, r, db=None: default(mod, target, b, FixedTimeRunner(default_s), db),
        )
