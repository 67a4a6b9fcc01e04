# Everything the project needs is installed from its own files: requirements*.txt, pyproject.toml,
# package.json + package-lock.json. Targets install what is missing, then run.
# Python 3.13: Azure's own Python worker (azure-functions-runtime) exists on PyPI from 3.13 on.
# PYTHON=… wins; then python3.13 on PATH; then an installed pyenv 3.13.
PYTHON ?= $(shell for p in python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v "$$p"; break; }; done)
VENV := .venv
# checkov in an environment of its own: its pins clash with pytest's (requirements-infra.txt).
INFRA_VENV := .venv-infra
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 7071
PYTEST_ARGS ?=

.PHONY: install orthanc run test test-fast demo lint check-infra bench clean

# Python and Node packages only: enough for run, demo and lint. Orthanc comes with `make test` (or `make orthanc`).
install: $(VENV)/.installed node_modules/.installed $(INFRA_VENV)/.installed

# Orthanc and its DICOMweb plugin from Debian, for the tests against an external DICOMweb store (CI runs as root).
# Only `test` needs it; run and demo use the built-in blob store on Azurite.
orthanc:
	@test -x /usr/sbin/Orthanc && ls /usr/lib/orthanc/libOrthancDicomWeb.so* >/dev/null 2>&1 || { \
		apt-get update && apt-get install -y --no-install-recommends orthanc orthanc-dicomweb; }

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" && "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || { \
		echo "Python 3.13 is needed (found: $(or $(PYTHON),none)). Install it (pyenv install 3.13," \
		"or apt-get install python3.13 where your distribution has it) or run make PYTHON=/path/to/python3.13."; exit 1; }
	test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || { rm -rf $(VENV); "$(PYTHON)" -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

$(INFRA_VENV)/.installed: requirements-infra.txt
	test -x $(INFRA_VENV)/bin/python && $(INFRA_VENV)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || { \
		rm -rf $(INFRA_VENV); "$(PYTHON)" -m venv $(INFRA_VENV); }
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
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
PYTEST_ON_AZURITE = rm -rf .azurite/test && mkdir -p .azurite/test && \
	$(PY) -m devhost.azurite --data-dir .azurite/test/data -- $(PY) -m pytest
# The one target that installs Orthanc (through apt-get, if /usr/sbin/Orthanc or its plugin is missing).
test: install orthanc
	$(PYTEST_ON_AZURITE) $(PYTEST_ARGS)

# The tests that start no local host and no Orthanc (markers from tests/conftest.py), in under a minute.
test-fast: export TESTKIT_NO_SERVERS := 1
test-fast: install
	$(PYTEST_ON_AZURITE) -m "not host and not orthanc" $(PYTEST_ARGS)

# pydicom's sample files loaded, exported and reported, on Azurite and the local host on free ports;
# everything it starts is stopped at the end, also on Ctrl-C. Output and logs in .demo/.
demo: install
	$(PY) -m scripts.demo

lint: install check-infra
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The azd template checked offline: every .bicep parses, its security properties hold, checkov passes,
# the app settings match what the code reads, azure.yaml has what azd reads. No Azurite needed.
check-infra: install
	$(PY) -m pytest -q tests/infra

clean:
	rm -rf .azurite .devhost .demo
