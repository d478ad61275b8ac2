# Two commands on a fresh machine; each sets up what it needs on first use.
#   make run PHOTOS=/path/to/photos [OUT=albums] [CATALOG=file]   scan, cluster, write albums + report
#   make test                                       run the test suite
PYTHON ?= python3
VENV ?= .venv
PHOTOS ?=
OUT ?= albums
CATALOG ?=
BIN := $(VENV)/bin

.PHONY: run test bench clean-venv

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test,xmp]'
	touch $@

run: $(BIN)/.installed
	@test -n "$(PHOTOS)" || { echo "usage: make run PHOTOS=/path/to/photos"; exit 2; }
	$(BIN)/faceclust run "$(PHOTOS)" --out "$(OUT)" $(if $(CATALOG),--catalog "$(CATALOG)")

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_embedder.py
	$(BIN)/python benchmarks/bench_detector.py

clean-venv:
	rm -rf $(VENV)
