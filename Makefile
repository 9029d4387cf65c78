# linewatch — common tasks. `make run` shows the product working; `make test` runs every check CI runs.
# Everything installs into .venv from this repository's own files.

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
# torch is installed first and pinned: an unpinned `torch` makes pip fetch a multi-GB CUDA build on a CPU machine.
# On machines whose default index serves CUDA builds, point TORCH_PIP_ARGS at a CPU wheel index.
TORCH_SPEC  ?= torch==2.13.0
TORCH_PIP_ARGS ?=
CONFIG      ?= deploy/config/linewatch.example.yaml
PYTEST_ARGS ?=
STAMP       := $(VENV)/.installed

.PHONY: help install test lint typecheck pytest run train retrain evaluate evaluate-variants bench clean

help:
	@echo "make install    create $(VENV) and install linewatch with its dev tools"
	@echo "make run        the main job (see README)"
	@echo "make test       lint + type checks + tests (what CI runs)"
	@echo "make lint       ruff, formatting and the import-layer contract"
	@echo "make typecheck  mypy on ingest models serving"
	@echo "make train      train a model per asset group from the store (CONFIG=...)"
	@echo "make retrain    train on the latest data; promote only if no worse than the champion"
	@echo "make evaluate   SKAB, SMD, TEP and C-MAPSS benchmarks (data: LINEWATCH_BENCH_DATA or ../shared/data); .eval/"
	@echo "make evaluate-variants  opt-in rules and every other detector on the same benchmarks (~20 min on 2 cores); .eval/variants/"
	@echo "make bench      benchmarks (not part of make test); JSON results under .bench/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# tsb-ad's metric functions (checked against ours in a test) need only numpy and scikit-learn; its declared
	# requirements pin numpy<2 and pull in torch and transformers, so it is installed without them.
	$(BIN)/python -m pip install --quiet --no-deps "tsb-ad==1.5"
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ingest models serving tests
	$(BIN)/ruff format --check ingest models serving tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy ingest models serving

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

run: $(STAMP)
	$(BIN)/linewatch demo --config $(CONFIG)

train: $(STAMP)
	$(BIN)/linewatch train --config $(CONFIG)

# Same command: a new model is promoted only if it is no worse than the champion on the same held-out data
# (the first model of a group always is). Scheduled by deploy/systemd/linewatch-retrain.timer.
retrain: $(STAMP)
	$(BIN)/linewatch train --config $(CONFIG) --promote if_better

BENCH_DATA ?= $(or $(LINEWATCH_BENCH_DATA),../shared/data)

evaluate: $(STAMP)
	@mkdir -p .eval
	$(BIN)/linewatch evaluate skab --data $(BENCH_DATA)/skab --out .eval/skab.json --report .eval/skab
	$(BIN)/linewatch evaluate smd --data $(BENCH_DATA)/smd --out .eval/smd.json --report .eval/smd
	$(BIN)/linewatch evaluate tep --data $(BENCH_DATA)/tep --out .eval/tep.json --report .eval/tep
	$(BIN)/linewatch evaluate cmapss --data $(BENCH_DATA)/cmapss --out .eval/cmapss.json --report .eval/cmapss

# Opt-in rules and other detectors on the same protocols (each YAML says why it is not the committed config);
# results under .eval/variants/<variant>/, for the comparisons the README quotes.
VARIANTS := $(basename $(notdir $(wildcard deploy/config/evaluate-variants/*.yaml)))
evaluate-variants: $(STAMP)
	@for v in $(VARIANTS); do for d in skab smd tep cmapss; do \
		grep -q "^$$d:" deploy/config/evaluate-variants/$$v.yaml || continue; \
		mkdir -p .eval/variants/$$v && \
		$(BIN)/linewatch evaluate $$d --data $(BENCH_DATA)/$$d --eval-config deploy/config/evaluate-variants/$$v.yaml \
			--out .eval/variants/$$v/$$d.json --report .eval/variants/$$v/$$d || exit 1; \
	done; done

bench: $(STAMP)
	@mkdir -p .bench
	$(BIN)/python -m pytest -p no:cacheprovider tests/bench -q -s

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .bench dist build
