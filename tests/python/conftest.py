"""Fixtures shared by the lowering tests (test_lowering_*.py): a module declares CASES
(name -> (model, ...)) and optionally NOT_LOWERED (name -> model); `built` plans them all,
`compiled` compiles every CASES plan with nvcc. Modules that define their own fixtures of the
same names (test_planner.py, test_lowerings.py) keep theirs."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import compile_all, plan_all  # noqa: E402


@pytest.fixture(scope="module")
def workdir(request):
    return Path(tempfile.mkdtemp(prefix=f"tpat_{request.module.__name__}_"))


@pytest.fixture(scope="module")
def built(request, workdir):
    mod = request.module
    models = {n: c[0] for n, c in mod.CASES.items()}
    models.update(getattr(mod, "NOT_LOWERED", {}))
    return plan_all(models, workdir)


@pytest.fixture(scope="module")
def compiled(request, built, workdir):
    return compile_all(built, request.module.CASES, workdir)
