# Two commands: `make run` starts the all-in-one with demo traffic; `make test` sets up and passes the tests.
PYTHON ?= python3
# bash: the install checks pip's own exit status through a pipe (PIPESTATUS).
SHELL  := /bin/bash
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench servers clean

# The first install takes a minute or two: pip says what it collects and installs as it goes (one line a
# package: its indented detail lines are left out), so a first `make run` is never silent.
$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing the observer with its test dependencies (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off --no-color -e '.[test]' \
	  | grep --line-buffered -v '^ ' ; \
	  test $${PIPESTATUS[0]} -eq 0
	@echo "==> installed into $(VENV)"
	touch $(STAMP)

# The demo has no identity provider: authentication is off, on purpose and loudly.
run: $(STAMP)
	JWT_DISABLED=true $(BIN)/observer up --demo

test: $(STAMP) servers
	$(BIN)/python -m pytest

# prometheus-api-client (with pandas) only serves as the bench's point of comparison, so only the bench installs it.
bench: $(STAMP)
	$(BIN)/pip install --quiet prometheus-api-client
	$(BIN)/python -m bench

# The real servers the tests start (OpenSearch, Prometheus, Alertmanager, PostgreSQL, kube-apiserver + etcd), fetched
# and installed once; the session fixtures in tests/ start and stop them. OPENSEARCH_URL skips the download;
# KUBECONFIG_TEST skips building kube-apiserver and etcd from the Go module proxy (minutes on a cold machine,
# so it runs in the background while the tests before the Kubernetes ones run; their fixture waits for it).
servers:
	@if [ -z "$$OPENSEARCH_URL" ]; then bash scripts/opensearch.sh fetch >/dev/null; fi
	@if [ -z "$$KUBECONFIG_TEST" ]; then bash scripts/kube.sh fetch --background; fi
	@if [ -z "$$POSTGRES_DSN" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  apt-get install -y -q postgresql >/dev/null || sudo apt-get install -y -q postgresql >/dev/null; fi

clean:
	rm -rf $(VENV) data bench/results .pytest_cache
