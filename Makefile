# Entry points. A fresh Debian 12 machine needs only `make demo` or `make test`.
PY := .venv/bin/python

.PHONY: help setup kit kit-test demo demo-clean bench bench-n8n bench-backup bench-multi-host test lint unit sanity molecule clean

help:
	@echo "make demo       set up, start a disposable systemd host container, run site.yml -i inventories/demo against it"
	@echo "make test       set up and run the whole suite (lint, unit, collection artifact, molecule); ends with 'N passed, N failed'"
	@echo "make lint|unit|sanity|molecule   one stage of the suite (sanity: ansible-test 2.19+2.18, galaxy-importer, antsibull-docs)"
	@echo "make bench      after make demo: time no-op/--tags/--check runs and n8n webhook throughput on the demo host"
	@echo "make bench-n8n  after make demo: n8n webhook throughput before the tuning, with each n8n_profile and in regular mode"
	@echo "make bench-backup  after make demo: backup size and time, drill time, wipe the stack and time its restore (RTO)"
	@echo "make bench-multi-host  converges molecule's multi_host hosts, then webhook throughput with one vs two worker hosts"
	@echo "make demo-clean remove the demo host; make clean also removes the image kit"

setup:
	@bash scripts/setup.sh

kit: setup
	@$(PY) tests/images/kit.py up --with n8n

# The suite also needs the previous n8n release (the lifecycle scenario's upgrade).
kit-test: setup
	@$(PY) tests/images/kit.py up --with n8n --with n8n-previous

demo: kit
	@$(PY) scripts/demo.py up

demo-clean:
	@$(PY) scripts/demo.py down

bench: setup
	@$(PY) benchmarks/run.py

bench-n8n: setup
	@$(PY) benchmarks/run.py --n8n-profiles

bench-backup: setup
	@$(PY) benchmarks/backup.py

# Molecule converges from the installed artifact, as tests/run.py runs it.
bench-multi-host: kit
	@$(PY) tests/run.py --stages collection
	@PATH=$(CURDIR)/.venv/bin:$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections ANSIBLE_PIPELINING=True \
		.venv/bin/molecule converge -s multi_host
	@$(PY) benchmarks/multi_host.py

test: kit-test
	@$(PY) tests/run.py

lint: setup
	@$(PY) tests/run.py --stages lint

unit: setup
	@$(PY) tests/run.py --stages unit

sanity: setup
	@$(PY) tests/run.py --stages sanity

molecule: kit-test
	@$(PY) tests/run.py --stages collection,molecule

clean: demo-clean
	@$(PY) tests/image_store.py --clean
	@$(PY) tests/images/kit.py clean
	rm -rf .cache
