# TPAT: the two commands of the README.
#   make demo   set up everything (venv, build) and run the pipeline on examples/demo.onnx
#   make test   set up everything and run every test (Swift and Python)
#   make real-models  export the real-model suite (own venv, .venv-models) and run the pipeline on it
#   make lint   check formatting and lint findings (Swift, Python, plugin-runtime C++); fails on any
#   make format rewrite the tree in the formatters' style (then `make lint` passes)
# Both are quick when nothing changed: the venv is rebuilt only when python/requirements.lock changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tpat-stamp
SWIFT_FLAGS ?=
DEMO_MODEL := examples/demo.onnx

.PHONY: all venv build demo test test-swift test-python tune-rpc-check lint lint-swift lint-python lint-cxx format fuzz fixtures conformance clean models-venv real-models-export real-models

all: build

venv: $(STAMP)

# The venv holds TVM, ONNX, ONNX Runtime, the CUDA 13 compiler and TensorRT-RTX, all pinned in
# python/requirements.lock (top-level intent in python/requirements.txt).
$(STAMP): python/requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-input -r python/requirements.lock
	@# TensorRT-RTX's parser dlopens the unversioned libtensorrt_rtx.so; the wheel ships only .so.1.
	@mkdir -p $(VENV)/tpat-lib
	@ln -sf "$$($(PY) -c 'import os, tensorrt_rtx_libs as m; print(os.path.join(os.path.realpath(os.path.dirname(m.__file__)), "libtensorrt_rtx.so.1"))')" $(VENV)/tpat-lib/libtensorrt_rtx.so
	@# The CUDA wheels' nvcc links from lib64/ and CMake's FindCUDAToolkit wants libcudart.so.
	@cu=$$($(PY) -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))'); \
	  ln -sfn lib "$$cu/lib64"; ln -sf libcudart.so.13 "$$cu/lib/libcudart.so"
	@touch $@

build: venv
	swift build $(SWIFT_FLAGS)

demo: build
	.build/debug/tpat demo --model $(DEMO_MODEL) -o out/demo

test: build
	$(MAKE) test-swift test-python

test-swift:
	swift test $(SWIFT_FLAGS)

# pytest exits 5 when it collects nothing: that is a failure here too.
test-python: venv
	$(PY) -m pytest -q tests/python

# CPU proof of `tpat tune` through TVM's RPC tracker (a tracker and 2 servers on localhost, llvm
# target, 3 plugins, tiny trial counts; 750 s on the 2 busy cores it was run on): not in `make test`.
tune-rpc-check: build
	scripts/tune_rpc_cpu.sh

# Formatters and linters: swift-format is the Swift toolchain's own (Swift 6.3.1 ships swift-format 6.3.1;
# config .swift-format), ruff and clang-format are pinned wheels in the venv (ruff.toml,
# plugin-runtime/.clang-format). Not formatted: generated protobuf sources (ONNX/Generated), the
# mustache templates and tests/fixtures (golden files the tests compare byte for byte).
SWIFT_FORMAT ?= $(shell command -v swift-format 2>/dev/null || echo "swift format")
SWIFT_SOURCES = $(shell find Package.swift Sources Tests -name '*.swift' -not -path '*/Generated/*' | sort)
CXX_SOURCES = $(shell find plugin-runtime \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)

# `make -k lint` reports all three languages even when the first fails.
lint: lint-swift lint-python lint-cxx

lint-swift:
	@echo "$(SWIFT_FORMAT) lint --strict: $(words $(SWIFT_SOURCES)) Swift files"
	@$(SWIFT_FORMAT) lint --strict --parallel $(SWIFT_SOURCES)

lint-python: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint-cxx: venv
	@echo "clang-format --dry-run --Werror: $(words $(CXX_SOURCES)) plugin-runtime files"
	@$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

format: venv
	@echo "$(SWIFT_FORMAT) format --in-place: $(words $(SWIFT_SOURCES)) Swift files"
	@$(SWIFT_FORMAT) format --in-place --parallel $(SWIFT_SOURCES)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

# The hostile-input fuzzers at full length (make test runs a short seeded subset of them).
fuzz: build
	TPAT_FUZZ_ITERATIONS=$${TPAT_FUZZ_ITERATIONS:-20000} TPAT_FUZZ_CLI=$${TPAT_FUZZ_CLI:-40} swift test $(SWIFT_FLAGS) --filter HostileFuzzTests
	TPAT_FUZZ_ITERATIONS=$${TPAT_FUZZ_ITERATIONS:-20000} $(PY) -m pytest -q tests/python/test_hostile_values.py

# ONNX's backend node tests through inspect -> generate -> CPU check (docs/conformance.md); make test
# runs a handful of them (tests/python/test_conformance.py). CONFORMANCE_ARGS: e.g. --resume --jobs 1.
conformance: build
	$(PY) scripts/conformance.py run $(CONFORMANCE_ARGS)

fixtures: venv
	$(PY) scripts/make_fixtures.py

# The real-model suite (scripts/real_models): its own venv with a CPU torch, pinned in
# scripts/real_models/requirements.lock. torch 2.13.0+cpu comes from pip's find-links folder when it
# holds the wheel (PIP_FIND_LINKS), else from PyTorch's CPU index (PyPI's Linux torch is the CUDA build).
MODELS_VENV := .venv-models
MODELS_PY := $(MODELS_VENV)/bin/python
MODELS_LOCK := scripts/real_models/requirements.lock
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
MODELS_PIP_ARGS ?= $(if $(wildcard $(PIP_FIND_LINKS)/torch-2.13.0+cpu-*.whl),,--extra-index-url $(TORCH_CPU_INDEX))
MODELS_DIR ?= .real-models
REAL_MODELS_OUT ?= out/real-models

models-venv: $(MODELS_VENV)/.tpat-stamp

$(MODELS_VENV)/.tpat-stamp: $(MODELS_LOCK)
	@test -x $(MODELS_PY) || $(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_PY) -m pip install -q --disable-pip-version-check --no-input $(MODELS_PIP_ARGS) -r $(MODELS_LOCK)
	@touch $@

# Exports what is not in $(MODELS_DIR) yet (a failed export is retried next time and gets a row).
real-models-export: models-venv
	$(MODELS_PY) scripts/real_models/export.py --out $(MODELS_DIR) || echo "some exports failed: $(MODELS_DIR)/*.failed.json"

# inspect -> generate --auto -> build -> engine per model; results in $(REAL_MODELS_OUT)/results.{md,json},
# copied to reports/real-models.{md,json} and into README's table.
real-models: build real-models-export
	$(PY) scripts/real_models/run.py --models $(MODELS_DIR) --out $(REAL_MODELS_OUT) --readme README.md
	cp $(REAL_MODELS_OUT)/results.md reports/real-models.md
	cp $(REAL_MODELS_OUT)/results.json reports/real-models.json

clean:
	rm -rf .build $(VENV) $(MODELS_VENV)
