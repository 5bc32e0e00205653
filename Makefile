# Interceptor: two set-up commands on a fresh machine.
#   make demo   the end-to-end demo on the synthetic corpus
#   make test   the test suite
#   make test-fast   its unit tests alone (no torchrun, no corpus): under a minute on 2 cores
#   make gpu-carry   what bench/gpu_check.sh needs on a GPU machine without network (.gpu/)
# Each creates .venv and installs what it needs when missing, and puts the facenet-pytorch wheel (the default face
# detector's weights; not installed: it pins an old torch) in .venv/share/interceptor/.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo
# Real DFDC videos the demo also predicts on, when the folder is there.
DFDC_SAMPLE ?= $(or $(INTERCEPTOR_DFDC_SAMPLE),../shared/data/dfdc_sample)
PYTEST_ARGS ?=

.PHONY: demo test test-fast install clean-demo gpu-carry

install: $(STAMP)

$(STAMP): setup.py setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip download --quiet --no-deps -c constraints.txt -d $(VENV)/share/interceptor facenet-pytorch
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/interceptor demo --out $(DEMO_DIR) $(if $(wildcard $(DFDC_SAMPLE)),--dfdc-sample $(DFDC_SAMPLE))

# pytest exits 5 when it collected no tests: that is a failure, not a pass.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(MAKE) test PYTEST_ARGS='-m "not slow" $(PYTEST_ARGS)'

clean-demo:
	rm -rf $(DEMO_DIR)

# bench/gpu_check.sh on a GPU machine without network needs the packages its CUDA image lacks, as wheels for its
# Python (GPU_PYTHON), the facenet-pytorch wheel (predict's face detector's weights) and the real DFDC sample for
# predict: gathered into .gpu/ (ignored; carry it along).
GPU_PYTHON ?= 3.12
GPU_CARRY ?= .gpu
DFDC_SAMPLE ?= ../shared/data/dfdc_sample
gpu-carry: $(STAMP)
	mkdir -p $(GPU_CARRY)/wheels
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -c constraints.txt -w $(GPU_CARRY)/wheels deepspeed
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	    --platform any -c constraints.txt -d $(GPU_CARRY)/wheels \
	    webdataset braceexpand av hjson pydantic pydantic_core annotated-types typing-inspection facenet-pytorch
	rm -rf $(GPU_CARRY)/dfdc_sample
	cp -r --no-preserve=mode $(DFDC_SAMPLE) $(GPU_CARRY)/dfdc_sample
