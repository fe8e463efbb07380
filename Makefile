# `make run` and `make test` set everything up on a fresh machine with Python 3.11.
# `make install` (and run) puts only the runtime requirements in .venv: that is
# a production install. `make dev` (and test) adds the test tools on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
CHROMIUM ?= /usr/bin/chromium
# The tests start hundreds of Python processes: let them keep compiled
# bytecode even where the environment says not to write it.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast install dev browser clean

$(STAMP): setup.py chatd/__init__.py requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

install: $(STAMP)

dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/chatd --config config.ini

# The browser tests drive Debian's Chromium and the nginx tests run the
# shipped site in Debian's nginx; install what is missing where we may (root
# with apt), else those tests skip and say what is missing.
browser:
	@if { [ ! -x $(CHROMIUM) ] || [ ! -x /usr/sbin/nginx ]; } && \
			[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and nginx for the browser and proxy tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji nginx >/dev/null) \
		|| echo "could not install chromium and nginx: their tests will skip"; \
	fi

# Four at a time: most of a test is waiting on a chatd process, so two cores
# run four workers well (the whole suite: 4.7 min instead of 12).
test: $(DEV_STAMP) browser
	$(BIN)/python -m pytest -n 4 $(PYTEST_ARGS)

# The quick loop while working: no slow, browser, cluster or PostgreSQL tests,
# four at a time. `make test` (and CI) still runs everything.
test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 4 -m "not slow and not browser and not cluster and not postgres" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
