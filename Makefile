# The README's two commands: `make demo` and `make test`. Both set everything up first
# (virtual environment, CPU torch where there is no GPU, the package and its extension).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.logo_fast-installed
SETUP_INPUTS := pyproject.toml setup.py scripts/setup_env.sh $(wildcard csrc/*)

.PHONY: setup demo test lint gpu-check gpu-check-device bench mutate clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

demo: $(STAMP)
	$(VENV)/bin/logo-fast demo

# bench/ runs too: with --benchmark-disable (pyproject) each benchmark executes once as a smoke test.
# pytest's exit code 5 (no tests collected) is turned into a failure.
test: $(STAMP)
	@$(PY) -m pytest -q tests bench; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pytest -q bench --benchmark-enable

# Mutation testing of the core (issue 17): mutmut 3 on a copy of the tree under /tmp (never this one),
# one worker, about 15 minutes; report in bench/results/mutation/. Not part of `make test` or CI (slow).
# MUTATE_ARGS="--groups ops,sampler_reference --sample 60 --merge --budget-s 900" chooses groups, a fixed
# seeded subset of each group's mutants and the budget; --rerun-survivors re-runs the last survivors.
mutate: $(STAMP)
	$(PY) scripts/mutate.py $(MUTATE_ARGS)

gpu-check:
	VENV=$(VENV) bash scripts/gpu_check.sh

# The lent GPU machine as it is (its python3, no package registry): see scripts/gpu_device_check.py.
gpu-check-device:
	bash scripts/gpu_check.sh --device

clean:
	rm -rf build *.egg-info logo_fast/_C*.so runs
