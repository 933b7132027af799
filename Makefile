# TPAT: the two commands of the README.
#   make demo   set up everything (venv, build) and run the pipeline on examples/demo.onnx
#   make test   set up everything and run every test (Swift and Python)
# Both are quick when nothing changed: the venv is rebuilt only when python/requirements.lock changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tpat-stamp
SWIFT_FLAGS ?=
DEMO_MODEL := examples/demo.onnx

.PHONY: all venv build demo test test-swift test-python fuzz fixtures conformance clean

all: build

venv: $(STAMP)

# The venv holds TVM, ONNX, ONNX Runtime, the CUDA 13 compiler and TensorRT-RTX, all pinned in
# python/requirements.lock (top-level intent in python/requirements.txt).
$(STAMP): python/requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-input -r python/requirements.lock
	@# TensorRT-RTX's parser dlopens the unversioned libtensorrt_rtx.so; the wheel ships only .so.1.
	@mkdir -p $(VENV)/tpat-lib
	@ln -sf "$$($(PY) -c 'import os, tensorrt_rtx_libs as m; print(os.path.join(os.path.dirname(m.__file__), "libtensorrt_rtx.so.1"))')" $(VENV)/tpat-lib/libtensorrt_rtx.so
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

# The hostile-input fuzzers at full length (make test runs a short seeded subset of them).
fuzz: build
	TPAT_FUZZ_ITERATIONS=$${TPAT_FUZZ_ITERATIONS:-20000} TPAT_FUZZ_CLI=$${TPAT_FUZZ_CLI:-40} swift test $(SWIFT_FLAGS) --filter HostileFuzzTests

# ONNX's backend node tests through inspect -> generate -> CPU check (docs/conformance.md); make test
# runs a handful of them (tests/python/test_conformance.py). CONFORMANCE_ARGS: e.g. --resume --jobs 1.
conformance: build
	$(PY) scripts/conformance.py run $(CONFORMANCE_ARGS)

fixtures: venv
	$(PY) scripts/make_fixtures.py

clean:
	rm -rf .build $(VENV)
