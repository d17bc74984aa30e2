# `make run` serves the agent on :8080 offline; `make test` runs every test; `make lint` runs ruff and mypy. Each sets
# up ./.venv first, from the lock file. `make lock` regenerates the lock files from the ranges (requirements.txt,
# pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What is installed: every release pinned, with the sha256 of each of its files (pip --require-hashes).
#   requirements.lock      the runtime (requirements.txt): what the Dockerfile installs
#   requirements-dev.lock  the runtime + pyproject.toml's `test` and `dev` extras: what .venv gets (make, CI)
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# The lock tool: uv (the same release as .ci/agentcore-cli's), installed into .venv by `make lock`.
UV_VERSION := 0.13.9
# The benchmarks' own environment: LangGraph's Agent Server (the peer bench/peer.py measures beside ours) and
# matplotlib, from bench/requirements.lock, never in the product's. Inside .venv, as the other Pythons' below are:
# git, the Docker image and AgentCore's code zip all leave .venv out, and `make clean` takes them with it.
BENCH_VENV := .venv/bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_LOCK := bench/requirements.lock
# The other Pythons AgentCore's code-zip runtime offers (PYTHON_3_12, PYTHON_3_13), where this machine has them
# (pyenv's, or the system's), each in .venv/pyX.Y from the dev lock: `make bench` measures the runtime on each
# (bench/interpreters.py), and `make test-newest` (CI) runs the suite again on the newest.
OTHER_PYTHONS := 3.12 3.13
python_for = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1) /usr/bin/python$(1) /usr/local/bin/python$(1)))
FOUND_PYTHONS := $(foreach v,$(OTHER_PYTHONS),$(if $(call python_for,$(v)),$(v)))
NEWEST_PYTHON := $(lastword $(FOUND_PYTHONS))

.PHONY: postgres run test test-quick test-newest lint bench bench-smoke clean ui-vendor browser lock

# The package itself goes in last, without dependencies: everything it needs came from the lock.
$(STAMP): pyproject.toml requirements.txt $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

.PRECIOUS: .venv/py%/.installed
.venv/py%/.installed: $(DEV_LOCK) pyproject.toml
	test -x .venv/py$*/bin/python || $(call python_for,$*) -m venv .venv/py$*
	.venv/py$*/bin/python -m pip install --quiet --upgrade pip
	.venv/py$*/bin/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	.venv/py$*/bin/python -m pip install --quiet --no-deps -e .
	touch $@

$(BENCH_STAMP): $(BENCH_LOCK) pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet --require-hashes -r $(BENCH_LOCK)
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(BENCH_STAMP)

# The lock files, resolved by uv for every platform and Python >= 3.11 at once (--universal: markers where they
# differ; the hashes of every file of each pinned release, so Linux x86_64 and aarch64, Python 3.11-3.13 all verify).
# A pin that still fits its range is kept; `make lock UPGRADE=1` takes the newest releases the ranges allow. The
# runtime lock is resolved within the dev lock's pins, so the image installs the releases the tests ran.
# tests/test_dependencies.py checks that .venv matches the dev lock and that requirements.txt matches the runtime lock.
# uv rewrites its output even when nothing changed: each lock is written beside, and replaced only if it changed
# (so .venv is not reinstalled for nothing).
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --annotation-style line \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
define compile_lock
	cp $(2) $(2).new 2>/dev/null || true
	$(UV_COMPILE) $(1) -o $(2).new || { rm -f $(2).new; exit 1; }
	cmp -s $(2).new $(2) && rm $(2).new || mv $(2).new $(2)
endef
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(call compile_lock,pyproject.toml --extra test --extra dev,$(DEV_LOCK))
	$(call compile_lock,requirements.txt -c $(DEV_LOCK),$(LOCK))
	$(call compile_lock,bench/requirements.txt -c $(DEV_LOCK),$(BENCH_LOCK))

run: $(STAMP)
	MODEL_PROVIDER=$${MODEL_PROVIDER:-offline} OFFLINE_TOKEN_DELAY_MS=$${OFFLINE_TOKEN_DELAY_MS:-40} \
		$(BIN)/python -m bedrock.agent_runtime

# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set (as on this machine): otherwise each of the
# suite's Python processes compiles the checkout's modules again, and pytest rewrites every test module's asserts
# again in each worker (collection: 10 s of CPU without the cache, 5.4 s with it).
PYTEST = PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest
test: $(STAMP) browser postgres
	$(PYTEST) -n 2 -q

# Every test but the `slow` ones (pyproject.toml says which): about half the time, while editing. CI runs `make test`.
test-quick: $(STAMP) browser postgres
	$(PYTEST) -n 2 -q -m "not slow"

# The suite again on the newest other Python found (the dependencies support 3.11-3.13): CI runs it. Without one it
# says so, and fails under REQUIRE_NEWEST_PYTHON=1 (as CI runs it).
test-newest:
	$(if $(NEWEST_PYTHON),$(MAKE) test VENV=.venv/py$(NEWEST_PYTHON) PYTHON=$(call python_for,$(NEWEST_PYTHON)),\
		@echo "make: no Python $(OTHER_PYTHONS) here (pyenv's or /usr/bin's)"; test -z "$(REQUIRE_NEWEST_PYTHON)")

# The linter and the type checker, configured in pyproject.toml (what each checks, and why): both must be clean.
lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/mypy

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

INTERPRETERS := $(foreach v,$(FOUND_PYTHONS),.venv/py$(v)/.installed)
bench: $(STAMP) $(BENCH_STAMP) $(INTERPRETERS) postgres
	$(BIN)/python -m bench.run_all

bench-smoke: $(STAMP) $(BENCH_STAMP) $(INTERPRETERS) postgres
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
