# `make run` serves the agent on :8080 offline; `make test` runs every test. Both set up ./.venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: postgres run test bench bench-smoke clean ui-vendor browser

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[test,dev]'
	touch $(STAMP)

run: $(STAMP)
	MODEL_PROVIDER=$${MODEL_PROVIDER:-offline} OFFLINE_TOKEN_DELAY_MS=$${OFFLINE_TOKEN_DELAY_MS:-40} \
		$(BIN)/python -m bedrock.agent_runtime

test: $(STAMP) browser postgres
	$(BIN)/python -m pytest -n 2 -q

# The chat page's tests drive Debian's Chromium (Playwright's own browser download cannot work offline): installed
# here when missing, if this user can (root with apt-get); otherwise those tests say why they are skipped, and
# fail instead under REQUIRE_BROWSER=1 (as CI runs them).
browser:
	@[ -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make: no Chromium at /usr/bin/chromium (apt-get install chromium): the browser tests will be skipped"

# The PostgreSQL tests start their own throwaway clusters from Debian's `postgresql` package: installed the same way
# (the package's own cluster is not used); without it they are skipped and say why, or fail under REQUIRE_POSTGRES=1.
postgres:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
		echo "make: no PostgreSQL (apt-get install postgresql): the PostgreSQL tests will be skipped"

bench: $(STAMP) postgres
	$(BIN)/python -m bench.run_all

bench-smoke: $(STAMP) postgres
	$(BIN)/python -m bench.run_all --smoke

# The chat page's SSE parser, vendored as published (needs npm; `make run` and `make test` do not).
UI_VENDOR := bedrock/server/static/vendor/eventsource-parser
ui-vendor:
	test -n "$(VERSION)" || { echo "usage: make ui-vendor VERSION=x.y.z"; exit 2; }
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent eventsource-parser@$(VERSION) >/dev/null && tar xzf *.tgz && \
		cp package/dist/parse.js package/dist/errors.js package/dist/stream.js package/LICENSE $(CURDIR)/$(UI_VENDOR)/
	@echo "now update $(UI_VENDOR)/SOURCE: the version and: (cd $(UI_VENDOR) && sha256sum parse.js errors.js stream.js LICENSE)"

clean:
	rm -rf $(VENV) .pytest_cache
