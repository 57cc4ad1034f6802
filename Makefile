# `make demo` and `make test` work on a fresh clone: each bootstraps .venv itself
# (again whenever pyproject.toml changes). Everything else runs from .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

# What `make demo` runs (services/demo): the whole system, 500 orders, then the invariants.
# Options pass through: make demo DEMO_ARGS="--mode choreography --orders 200"
DEMO = $(BIN)/sagas demo $(DEMO_ARGS)

.PHONY: demo test test-kafka test-kafka-if-available test-unit test-integration test-e2e \
	test-faults lint system-deps venv compiled test-compiled test-compiled-if-available

demo: $(STAMP)
	$(DEMO)

# Two halves, run side by side (scripts/test-halves.sh): the whole suite on the embedded
# broker (needs only Python), and the integration, e2e and short fault suites on a local
# Apache Kafka (Java 17 + Maven), whose output goes to .test-logs/kafka-half.log.
test: system-deps $(STAMP)
	@PYTEST="$(PYTEST)" ./scripts/test-halves.sh

# The Apache Kafka half alone: the suite starts Apache Kafka 4.4 (sagas/kafka/apache_kafka,
# jars fetched once with Maven into ~/.cache/sagastream) and stops it by PID.
test-kafka: system-deps $(STAMP)
	SAGAS_TEST_BROKER=kafka $(PYTEST) tests/integration tests/e2e tests/faults -q

# $(call if_available,CHECK,TARGET,NEEDS,INSTALL): make TARGET if the shell test CHECK
# holds; if not, fail under CI (CI set) and skip with a note anywhere else.
define if_available
	@if $(1); then \
	    $(MAKE) --no-print-directory $(2); \
	elif [ -n "$$CI" ]; then \
	    echo "error: make $(2) (part of make test) needs $(3), and CI is set:" \
	        "install them ($(4))" >&2; \
	    exit 1; \
	else \
	    echo "make test: skipping make $(2) (it needs $(3));" \
	        "install them ($(4)), then run make $(2)"; \
	fi
endef

# Under CI the Apache Kafka half must run: no Java or Maven fails the run.
HAS_JAVA_AND_MAVEN = command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1
test-kafka-if-available:
	$(call if_available,$(HAS_JAVA_AND_MAVEN),test-kafka,Java 17+ and Maven,Debian: apt-get install openjdk-17-jre-headless maven)

# The optional compiled build (issue 19, sagas/compiled_build.py): the checkout copied to
# .compiled with the coordinator's hot modules compiled by mypyc. Run any command from it
# with PYTHONPATH=.compiled (the checkout itself stays pure Python). Needs a C compiler.
compiled: $(STAMP)
	$(BIN)/python scripts/build_compiled.py .compiled

# The same tests on the compiled build, in that copy: the unit tests and the coordinator's
# integration tests (make test runs this after its embedded half).
COMPILED_TESTS := tests/unit tests/integration/test_coordinator_saga.py \
	tests/integration/test_coordinator_crash.py tests/integration/test_overload.py
test-compiled: compiled
	cd .compiled && SAGAS_EXPECT_COMPILED=1 PYTHONPATH="$$PWD" \
	    "$(abspath $(BIN))/python" -m pytest -p no:cacheprovider $(COMPILED_TESTS) -q

# Under CI the compiled half must run: no C compiler (or no Python.h) fails the run.
HAS_C_COMPILER = { command -v cc || command -v gcc; } >/dev/null 2>&1 && \
	$(BIN)/python -c "import os, sys, sysconfig; \
	sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"
test-compiled-if-available: $(STAMP)
	$(call if_available,$(HAS_C_COMPILER),test-compiled,a C compiler and Python's headers,Debian: apt-get install gcc python3-dev)

test-unit: $(STAMP)
	$(PYTEST) tests/unit -q

test-integration: $(STAMP)
	$(PYTEST) tests/integration -q

# Exit code 5 is "no tests collected": fine while tests/e2e is still empty.
test-e2e: $(STAMP)
	$(PYTEST) tests/e2e -q || [ $$? -eq 5 ]

# Fault injection, long version: thousands of sagas per scenario, then the scenario table.
# (`make test` runs the short version of the same scenarios; tests/faults/plan.py.)
# The broker faults need Apache Kafka (a 3-node cluster of their own, each node in a
# network namespace when run as root): their own session, after the others, once in each
# processing guarantee (exactly_once also fails on any command or lifecycle event sent twice).
test-faults: system-deps $(STAMP)
	SAGAS_FAULTS=long $(PYTEST) tests/faults -q -rxX
	SAGAS_FAULTS=long SAGAS_TEST_BROKER=kafka $(PYTEST) tests/faults/test_8_broker_faults.py -q -rxX
	SAGAS_FAULTS=long SAGAS_TEST_BROKER=kafka SAGAS_FAULTS_GUARANTEE=exactly_once \
		$(PYTEST) tests/faults/test_8_broker_faults.py -q -rxX

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy events sagas

system-deps:
	./scripts/system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
	    rm -rf $(VENV); \
	    echo "$(PYTHON) -m venv $(VENV)"; \
	    $(PYTHON) -m venv $(VENV) || { echo "cannot create $(VENV): on Debian/Ubuntu" \
	        "install python3-venv (apt-get install python3-venv)" >&2; rm -rf $(VENV); exit 1; }; \
	fi
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)
