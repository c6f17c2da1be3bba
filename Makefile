# The README's commands. Everything a fresh machine needs is installed from here.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SANDBOX := $(VENV)/bin/sandbox
PYTHON ?= python3
export MUJOCO_GL ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: install demo test bench lint format clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,ray]'
	touch $@

install: $(VENV)/.installed

# Every registered study at quick scale (or only STUDIES="a b"); prints where the reports are.
demo: install
	@studies="$(STUDIES)"; [ -n "$$studies" ] || studies=$$($(SANDBOX) list --names) || exit 2; \
	failed=""; \
	for s in $$studies; do \
	  echo "== $$s (quick scale)"; \
	  $(SANDBOX) run $$s --scale quick --out runs/demo/$$s --resume || failed="$$failed $$s"; \
	done; \
	echo; echo "Reports:"; for s in $$studies; do [ -f runs/demo/$$s/report.md ] && echo "  runs/demo/$$s/report.md"; done; \
	if [ -n "$$failed" ]; then echo "Studies with failed runs:$$failed (rerun: make demo STUDIES=\"$$failed\")"; exit 1; fi

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m benchmarks

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache
