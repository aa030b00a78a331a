# One-command entry points; each sets up what it needs on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv test-deps test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

test-deps: venv
	bash scripts/install-dovecot.sh
	bash scripts/install-chromium.sh

test: test-deps
	$(PY) -m pytest -q -p no:cacheprovider

demo: test-deps
	$(VENV)/bin/bridge demo

bench: test-deps
	$(PY) bench/latency
	$(PY) bench/throughput
	$(PY) bench/login
	$(PY) bench/loop_stall
	$(PY) bench/slack
	$(PY) bench/classify
	$(PY) bench/odoo-watch
	$(PY) bench/sla
	$(PY) bench/mailboxes
	$(PY) bench/parse
	$(PY) bench/report

clean:
	rm -rf $(VENV) build *.egg-info
