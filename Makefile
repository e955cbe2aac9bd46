# libcdp: the two commands of the README, and their parts.
#   make demo   install dependencies, build, generate the demo data set, run cdp-server on 127.0.0.1:8080
#   make test   install dependencies, build, run every C++ (ctest) and Python (pytest) test
# Both work on a fresh Debian 12 machine (they apt-get what they need; root or sudo required for that step).

BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= 2
PYTHON ?= /usr/bin/python3
VENV ?= .venv
DEMO_DIR ?= demo-data
DEMO_PROFILES ?= 100000
DEMO_EVENTS ?= 1000000
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: all deps configure build demo demo-data serve test test-cpp test-python python segment-sdk console-deps clean

all: build

deps:
	bash scripts/install-deps.sh

configure:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DPython_EXECUTABLE=$(PYTHON) \
	  -DCDP_BUILD_TESTS=ON -DCDP_BUILD_PYTHON=ON -DCDP_BUILD_SERVER=ON -DCDP_BUILD_BENCHMARKS=ON

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The demo data set is generated once (seeded, so always the same) and reused by later runs.
demo-data: build
	@if [ -f $(DEMO_DIR)/.complete ]; then echo "demo data already in $(DEMO_DIR)"; else \
	  rm -rf $(DEMO_DIR) && $(BUILD_DIR)/examples/demo/cdp-demo --data $(DEMO_DIR) \
	    --profiles $(DEMO_PROFILES) --events $(DEMO_EVENTS) && touch $(DEMO_DIR)/.complete; fi

serve:
	@echo "cdp-server: web console at http://$(HOST):$(PORT)/console/, REST API at http://$(HOST):$(PORT)/api/cdp/." \
	  "Every request needs a key: without CDP_API_KEY the server makes one up and prints it with the console's" \
	  "link (try: curl -H \"Authorization: Bearer KEY\" http://$(HOST):$(PORT)/api/cdp/stats)"
	$(BUILD_DIR)/examples/server/cdp-server --data $(DEMO_DIR) --host $(HOST) --port $(PORT)

demo: deps demo-data serve

python: build
	$(PYTHON) -m venv --system-site-packages $(VENV)
	CDP_CMAKE_BUILD_DIR=$(abspath $(BUILD_DIR)) $(VENV)/bin/pip install --no-build-isolation --no-index -q ./bindings/python

test-cpp: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --no-tests=error

# The Node SDKs that tests/server/test_segment_sdk.py drives (versions pinned in tests/segment-sdk/package-lock.json).
segment-sdk:
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: run 'make deps' (scripts/install-deps.sh installs" \
	  "Debian's nodejs and npm), then retry" >&2; exit 1; }
	npm ci --prefix tests/segment-sdk --no-audit --no-fund

# playwright-core, which tests/server/test_console.py uses to drive the web console in Debian's chromium.
console-deps:
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: run 'make deps', then retry" >&2; exit 1; }
	npm ci --prefix tests/console --no-audit --no-fund

test-python: python segment-sdk console-deps
	CDP_SERVER_BIN=$(abspath $(BUILD_DIR))/examples/server/cdp-server \
	  $(VENV)/bin/python -m pytest -q -p no:cacheprovider bindings/python/tests tests/server

test: deps
	$(MAKE) test-cpp
	$(MAKE) test-python

clean:
	rm -rf $(BUILD_DIR) $(VENV) bindings/python/build bindings/python/*.egg-info
