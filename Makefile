# Two commands do all the set-up: `make demo` and `make test`. Both create a project-local
# virtualenv (.venv) and install what they need into it, offline on a machine that has the
# package registries (torch comes from the pinned CPU wheel).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INTEGRATIONS := integrations/llama-index-postprocessor-crossrank integrations/langchain-crossrank
export CROSSRANK_CACHE ?= $(CURDIR)/.cache/crossrank
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo serve test lint typecheck pytest bench bench-peers clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(wildcard integrations/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,onnx]" \
		$(foreach d,$(INTEGRATIONS),-e "$(d)[test]")
	touch $(STAMP)

# The reranker (crossrank.engine.resolve): $CROSSRANK_RERANKER, else one trained here by
# `crossrank train --preset starter` (in the cache), else the project's shared starter model.
demo: $(STAMP)
	$(BIN)/crossrank demo

# The reranking service on 127.0.0.1:8080 (Cohere /v1|v2/rerank, TEI /rerank), same model
# resolution as the demo; e.g. make serve SERVE_ARGS="--port 9000 --api-key secret".
SERVE_ARGS ?=
serve: $(STAMP)
	$(BIN)/crossrank serve $(SERVE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	cd integrations/langchain-crossrank && MYPYPATH=. $(abspath $(BIN))/mypy --strict \
		-p langchain_crossrank
	cd integrations/llama-index-postprocessor-crossrank && MYPYPATH=. $(abspath $(BIN))/mypy \
		--strict --namespace-packages --explicit-package-bases -p llama_index.postprocessor.crossrank

TEST_DIRS := tests $(wildcard $(addsuffix /tests,$(INTEGRATIONS)))
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

# pytest, then out at once with its exit status: the process has loaded torch, OpenVINO, ONNX
# Runtime, FAISS and Ray's core worker, and one full run in a few ended in a segfault while
# the interpreter tore those down, after every test had passed and been reported. Nothing is
# left to report by then, so the teardown is skipped. PYTHONFAULTHANDLER prints the Python
# stacks of a crash anywhere earlier.
PYTEST_THEN_EXIT := import os, sys, pytest; code = int(pytest.main(sys.argv[1:])); \
	sys.stdout.flush(); sys.stderr.flush(); os._exit(code)

pytest: $(STAMP)
	PYTHONFAULTHANDLER=1 $(BIN)/python -c '$(PYTEST_THEN_EXIT)' -q $(TEST_DIRS) \
		$(if $(NOTEBOOKS),--nbmake $(NOTEBOOKS))

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_vs_st.py

# Every reranking peer on the same model (their packages stay out of the dev extra).
PEERS_ARGS ?= --queries 10 --out reports/peers
bench-peers: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -r benchmarks/requirements-peers.txt
	$(BIN)/python benchmarks/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
