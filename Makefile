# make run   - set up .venv (CPU build of PyTorch) and run the quick suite
# make test  - set up, check (ruff, import-linter, mypy) and run the test suite (installs headless Chromium)
# make bench - overhead, load-generator, gate and projection benchmarks (figures in README)
# make app   - the Streamlit app on http://127.0.0.1:8501

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
SUITE ?= workloads/suites/quick.yaml

.PHONY: install run test lint bench app browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/harness run $(SUITE)

browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) ) || \
	  echo "chromium could not be installed: browser tests will be skipped"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install browser lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run_all.py

app: install
	$(BIN)/harness app

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
