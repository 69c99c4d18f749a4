# Two commands do all the set-up on a fresh clone: `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/default
CONFIG ?= configs/default.py
# test, plus an accelerator's JAX build: EXTRAS=test,cuda13 | test,cuda12 | test,tpu
EXTRAS ?= test

.PHONY: install train test bench ablate ablate-quick clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[$(EXTRAS)]'
	touch $@

train: install
	$(PY) -m memgpt_jax.cli.train --config=$(CONFIG) --workdir=$(WORKDIR)

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests

# BENCH_FLAGS: e.g. '--config=configs/gpt_350m.py:memgpt --config.train.batch_size=16
# --models=plain_gpt,memgpt_delta_chunked' (experiments/bench.py lists them all).
BENCH_FLAGS ?=

bench: install
	$(PY) experiments/bench.py $(BENCH_FLAGS)

# The ablation grid (experiments/ablate.py): results in experiments/results/<grid>.{md,json,png}.
ablate: install
	$(PY) experiments/ablate.py --grid=full

ablate-quick: install
	$(PY) experiments/ablate.py --grid=quick

clean:
	rm -rf $(VENV) runs
