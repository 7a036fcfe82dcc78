# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs eoslab, runs the main job on the embedded digits data
#   make test   creates .venv with the test extras, runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
OUT    ?= results/demo

.PHONY: demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/eoslab demo --out $(OUT)

# Two pytest workers (one per core): the suite is dominated by single-threaded XLA compilation.
test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15

test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow"

clean:
	rm -rf $(VENV) results .pytest_cache
