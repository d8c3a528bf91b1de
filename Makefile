# Two commands do everything on a fresh machine:
#   make run    # set up .venv, then `re2llm-tui run --dataset games` (the workbench)
#   make test   # set up .venv, then the whole test suite
VENV ?= .venv
DATASET ?= games
.PHONY: setup run test bench
setup:
	@bash scripts/bootstrap.sh
run: setup
	$(VENV)/bin/re2llm-tui run --dataset $(DATASET)
test: setup
	$(VENV)/bin/python -m pytest -q
bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done
