# critdiff: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out/demo

.PHONY: install demo test test-slow bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,diffusers]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/critdiff demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n 2 -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_patch.py
	$(BIN)/python benchmarks/bench_theory.py
	$(BIN)/python benchmarks/bench_probes.py

clean:
	rm -rf $(VENV) out build src/*.egg-info
