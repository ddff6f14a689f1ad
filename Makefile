# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EVIDENCE := $(VENV)/bin/evidence
STAMP := $(VENV)/.installed

.PHONY: demo test install lint typecheck bench clean report-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,postgres]'
	touch $(STAMP)

install: $(STAMP)

# Builds the default library (SQLite in the user-data folder) from data/ on first use and runs real queries.
demo: $(STAMP)
	$(EVIDENCE) db upgrade
	$(EVIDENCE) db path
	$(EVIDENCE) claims
	$(EVIDENCE) find --mechanism neural-stimulation --stance supports --max-level 2 --sort level --limit 10

# The seed library's report (HTML, PDF) with a screenshot and the PDF's first page as PNG, for a reviewer.
report-demo: $(STAMP)
	$(EVIDENCE) db upgrade
	$(PY) tests/report_demo.py build/report-demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2

lint: $(STAMP)
	$(VENV)/bin/ruff check evidence cli.py tests
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) tests/bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
