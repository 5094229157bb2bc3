# Two commands: `make run` starts the all-in-one with demo traffic; `make test` sets up and passes the tests.
# Also: `make check` (static checks: lint, types, import direction), `make unit` (the fast lane: no server).
PYTHON ?= python3
# bash: the install checks pip's own exit status through a pipe (PIPESTATUS).
SHELL  := /bin/bash
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit check lint typecheck imports bench servers lock clean

# The first install takes a minute or two: pip says what it collects and installs as it goes (one line a
# package: its indented detail lines are left out), so a first `make run` is never silent.
$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing the observer with its test dependencies (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off --no-color -c constraints.txt -e '.[test]' \
	  | grep --line-buffered -v '^ ' ; \
	  test $${PIPESTATUS[0]} -eq 0
	@echo "==> installed into $(VENV)"
	touch $(STAMP)

# constraints.txt: every dependency's version, resolved afresh (newest allowed by pyproject.toml) in a scratch
# environment. Run it after changing a dependency, then `make test`, and commit both.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet --progress-bar off -e '.[test]'
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

# The demo has no identity provider: authentication is off, on purpose and loudly.
run: $(STAMP)
	JWT_DISABLED=true $(BIN)/observer up --demo

# The thorough hypothesis profile here; developers get the quick one by default (tests/conftest.py).
test: $(STAMP) servers
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest

# The fast lane: tests/unit only, which starts no server (tests/conftest.py refuses one that would).
unit: $(STAMP)
	$(BIN)/python -m pytest -m unit tests/unit

# Lint and format, types (pydantic plugin; strict on adapters/ and collectors/) and the import direction; the
# settings of all three are in pyproject.toml. `make -k check` runs all three even when one fails.
check: lint typecheck imports

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

# prometheus-api-client (with pandas) only serves as the bench's point of comparison, so only the bench installs it.
bench: $(STAMP)
	$(BIN)/pip install --quiet prometheus-api-client
	$(BIN)/python -m bench

# The real servers the tests start (OpenSearch, Prometheus, Alertmanager, PostgreSQL, kube-apiserver + etcd) and
# helm (the chart tests), fetched
# and installed once; the session fixtures in tests/ start and stop them. OPENSEARCH_URL skips the download;
# KUBECONFIG_TEST skips building kube-apiserver and etcd from the Go module proxy (minutes on a cold machine,
# so it runs in the background while the tests before the Kubernetes ones run; their fixture waits for it).
servers:
	@if [ -z "$$OPENSEARCH_URL" ]; then bash scripts/opensearch.sh fetch >/dev/null; fi
	@if [ -z "$$KUBECONFIG_TEST" ]; then bash scripts/kube.sh fetch --background; fi
	@if [ -z "$$HELM_BIN" ]; then bash scripts/helm.sh fetch --background; fi
	@bash scripts/chromium.sh install
	@if [ -z "$$POSTGRES_DSN" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  apt-get install -y -q postgresql >/dev/null || sudo apt-get install -y -q postgresql >/dev/null; fi

clean:
	rm -rf $(VENV) data bench/results .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
