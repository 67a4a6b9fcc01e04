# Everything the project needs is installed from its own files: requirements*.txt, pyproject.toml,
# package.json + package-lock.json. Targets install what is missing, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 7071
PYTEST_ARGS ?=

.PHONY: install run test demo lint bench clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The app on the local host at http://$(HOST):$(PORT), with Azurite on its default ports
# (reused if one already answers). Ctrl-C stops both.
run: install
	test -f local.settings.json || cp local.settings.json.example local.settings.json
	$(PY) -m devhost.azurite --ports default --data-dir .azurite/data -- \
		$(PY) -m devhost --app-dir . --host $(HOST) --port $(PORT)

# The whole suite against a throw-away Azurite on free ports; Azurite is stopped whatever happens.
test: install
	rm -rf .azurite/test && mkdir -p .azurite/test
	$(PY) -m devhost.azurite --data-dir .azurite/test/data -- \
		$(PY) -m pytest $(PYTEST_ARGS)

# pydicom's sample files loaded, exported and reported, on Azurite and the local host on free ports;
# everything it starts is stopped at the end, also on Ctrl-C. Output and logs in .demo/.
demo: install
	$(PY) -m scripts.demo

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf .azurite .devhost .demo
