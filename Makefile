# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs eoslab, runs the main job on the embedded digits data
#   make test   creates .venv with the test extras, runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
RESULTS ?= results

.PHONY: demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/eoslab demo --results $(RESULTS)

# Two pytest workers (one per core): the suite is dominated by single-threaded XLA compilation.
# Each compiled XLA CPU program maps memory (about 800 mappings per small trainer); a pytest worker compiles
# thousands and can pass the kernel's default vm.max_map_count (65530), where XLA aborts it: raise it when root.
# make test: every module, one smoke test per reproduction through its reproduce() (about 10 min on 2 cores).
# make test-slow: the tests marked slow, full-length paper runs that check the papers' numbers (about 10 min more).
MAPS := [ "$$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)" -ge 1048576 ] || sysctl -q -w vm.max_map_count=1048576 2>/dev/null || true

test: $(VENV)/.installed-test
	-@$(MAPS)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" --durations=10

test-slow: $(VENV)/.installed-test
	-@$(MAPS)
	EOSLAB_TEST_XLA_DEFAULTS=1 $(PY) -m pytest -q -n 2 --dist worksteal -m slow --durations=10

clean:
	rm -rf $(VENV) results .pytest_cache
