# Interceptor: two set-up commands on a fresh machine.
#   make demo   the end-to-end demo on the synthetic corpus
#   make test   the test suite
#   make test-fast   its unit tests alone (no torchrun, no corpus): under a minute on 2 cores
# Each creates .venv and installs what it needs when missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo
# Real DFDC videos the demo also predicts on, when the folder is there.
DFDC_SAMPLE ?= $(or $(INTERCEPTOR_DFDC_SAMPLE),../shared/data/dfdc_sample)
PYTEST_ARGS ?=

.PHONY: demo test test-fast install clean-demo

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
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
