# Two entry points (see README):
#   make demo   create .venv if needed, then train + evaluate the demo preset on the built-in dataset
#   make test   create .venv if needed, then run pytest (library) and nbval (every book chapter)
#   make lab    create .venv if needed, then open the book's notebooks in JupyterLab (from the same .venv)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lab lab-check book site-check bench clean install

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so repeated `make test` is quick.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,book,lab]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vicreg-edu train --preset demo

# Lint and format check (ruff, configured in pyproject.toml; the chapters' scripts for undefined names),
# then pytest + nbval.
# First the system packages some tests need (chromium: site check; slurm-wlm + munge: the SLURM
# tests): installed when missing if run as root with apt-get (CI), else listed, and those tests skip.
test: $(STAMP)
	bash scripts/system_deps.sh
	$(PY) -m ruff check vicreg_edu tests scripts bench
	$(PY) -m ruff format --check vicreg_edu tests scripts bench
	$(PY) -m ruff check book --select F821,F811 --no-fix  # chapters: a name used but never imported or defined
	VICREG_EDU_FAST=1 MPLBACKEND=Agg $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider tests book

# JupyterLab on book/, from .venv: ipywidgets render, a paired .py opens as a notebook (jupytext).
# Extra options: make lab LAB_ARGS="--no-browser --port 8890"
# As root (containers, CI) JupyterLab refuses to start without --allow-root.
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m jupyterlab --ServerApp.root_dir=book $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Starts JupyterLab from .venv on a free port without a browser, fetches its page and API, stops it.
lab-check: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_lab.py

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# Opens every page of the built site in the system Chromium through Playwright, every host but localhost
# blocked: pages load, math renders (MathJax from _static), figures load, each explorer's slider drag and
# checkbox click show the stored figure of the new point, no console error; prints each page's weight
# (scripts/check_site.py; full-page screenshots, before/after a drag, in _build/screenshots/).
site-check: book
	$(PY) scripts/check_site.py

bench: $(STAMP)
	$(PY) bench/loss.py --quick
	$(PY) bench/throughput.py --preset demo

clean:
	rm -rf _build runs .pytest_cache
