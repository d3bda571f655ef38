# taskgate: build, install, test, benchmark.
#
#   make            release libtaskgate.so in build/lib
#   make install    PREFIX=/usr/local (default): lib, headers, taskgate.pc
#   make demo       the shipped example, a real workload (installs what it needs)
#   make check      every test: Swift, C, header drift, no-toolchain load, Python, TSan stress
#   make bench      benchmarks beside the baselines in ../shared/baselines
SHELL := /bin/bash
PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^\#define TG_VERSION_STRING "\(.*\)"/\1/p' include/taskgate.h)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
SONAME := libtaskgate.so.$(MAJOR)
BUILD := $(CURDIR)/build
STAGE := $(BUILD)/stage
CC ?= cc
CFLAGS_TEST := -std=c99 -O2 -g -Wall -Wextra -Werror -pthread

# lld rather than gold: gold leaves the engine's type metadata in .dynsym as
# LOCAL entries; lld keeps the dynamic symbol table to exactly the tg_* exports.
# The CLI is built with the same flags, so the two builds share every object
# (other flags would recompile the engine): on an executable the export map
# only keeps its dynamic symbol table empty, and the SONAME is inert.
SWIFT_FLAGS := -c release -Xswiftc -static-stdlib -Xswiftc -use-ld=lld \
	-Xlinker --version-script=$(CURDIR)/scripts/exports.map \
	-Xlinker -soname=$(SONAME)
SWIFT_RELEASE := swift build $(SWIFT_FLAGS) --product taskgate
PLUGIN_CFLAGS := -std=c99 -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -pthread -Iinclude
PLUGINS := $(patsubst examples/plugins/%.c,$(BUILD)/plugins/lib%.so,$(wildcard examples/plugins/*.c))

SOURCES := $(shell find Sources include -type f) Package.swift scripts/exports.map Makefile

.PHONY: python all lib cli plugins install stage deps demo check test-cli test-python test-header test-library test-swift test-c test-tsan bench bench-python clean
all: lib cli plugins
lib: $(BUILD)/lib/libtaskgate.so
cli: $(BUILD)/bin/taskgate
plugins: $(PLUGINS)

$(BUILD)/bin/taskgate: $(SOURCES)
	swift build $(SWIFT_FLAGS) --product taskgate-cli
	mkdir -p $(BUILD)/bin
	cp .build/release/taskgate-cli $(BUILD)/bin/taskgate

# The example plugins: plain C against taskgate_plugin.h alone (no -ltaskgate).
$(BUILD)/plugins/lib%.so: examples/plugins/%.c examples/plugins/plugin_support.h include/taskgate_plugin.h
	mkdir -p $(BUILD)/plugins
	$(CC) $(PLUGIN_CFLAGS) -o $@ $<

# SwiftPM does not relink when only the file behind a linker flag (the export
# map) changed, so the old library goes first.
$(BUILD)/lib/libtaskgate.so: $(SOURCES)
	rm -f .build/release/libtaskgate.so
	$(SWIFT_RELEASE)
	mkdir -p $(BUILD)/lib
	cp .build/release/libtaskgate.so $(BUILD)/lib/libtaskgate.so.$(VERSION)
	ln -sf libtaskgate.so.$(VERSION) $(BUILD)/lib/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/lib/libtaskgate.so

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/lib/libtaskgate.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libtaskgate.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libtaskgate.so
	install -m 644 include/taskgate.h include/taskgate_plugin.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' scripts/taskgate.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/taskgate.pc

# A private install that the C tests and the example build against, exactly as a user would.
stage: lib
	$(MAKE) --no-print-directory install PREFIX=$(STAGE)

deps:
	@scripts/install-deps

# The main job on the shipped example: a task file run through the example plugins.
demo: deps cli plugins
	rm -rf examples/pipeline/out
	$(BUILD)/bin/taskgate run examples/pipeline/tasks.json --results $(BUILD)/pipeline-results.json
	@echo "results: $(BUILD)/pipeline-results.json; outputs: examples/pipeline/out/"

# The C example linking the library directly.
demo-c: deps stage
	PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig $(CC) -std=c99 -O2 -Wall -Wextra -o $(BUILD)/checksum_files \
		examples/checksum_files.c $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --cflags --libs taskgate)
	$(BUILD)/checksum_files examples/data $(BUILD)/data.manifest

check: deps test-header test-library test-swift test-c test-cli test-python test-tsan

# The header compiles as C99 and C++ with warnings as errors, and agrees with the exports.
test-header:
	mkdir -p $(BUILD)
	$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c - <<< '#include "taskgate.h"'
	g++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c++ - <<< '#include "taskgate.h"'
	$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c - <<< '#include "taskgate_plugin.h"'
	g++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c++ - <<< '#include "taskgate_plugin.h"'
	BUILD=$(BUILD) Tests/c/header_drift.sh

test-library: lib
	Tests/c/check_library.sh $(BUILD)/lib/libtaskgate.so

test-swift:
	swift test 2>&1 | tee $(BUILD)/swift-test.log | tail -n 40; exit $${PIPESTATUS[0]}

test-c: stage
	PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig CC=$(CC) BUILD=$(BUILD) Tests/c/run-c-tests

# The core's tests, the 100k-task stress test among them, under ThreadSanitizer,
# in a build folder of their own.
test-tsan:
	mkdir -p $(BUILD)
	TSAN_OPTIONS=halt_on_error=0:exitcode=66 swift test --sanitize=thread --scratch-path .build-tsan 2>&1 \
		| tee $(BUILD)/tsan.log; status=$${PIPESTATUS[0]}; \
	if grep -q "WARNING: ThreadSanitizer" $(BUILD)/tsan.log; then \
		echo "ThreadSanitizer reported races (see $(BUILD)/tsan.log)"; exit 1; fi; exit $$status

# The CLI and the task-file schema, driven by Python's unittest on the real binary.
test-cli: cli plugins
	TASKGATE=$(BUILD)/bin/taskgate PLUGINS=$(BUILD)/plugins python3 -m unittest discover -s Tests/cli -t Tests/cli -v 2>&1 \
		| tee $(BUILD)/cli-test.log | tail -n 30; exit $${PIPESTATUS[0]}

bench: deps stage python
	benchmarks/run
	benchmarks/run-plugins
	PYTHON=$(PYVENV)/bin/python benchmarks/run-python

# The Python bindings installed with pip into a fresh virtual environment, as a
# user would (the package carries its own copy of build/lib/libtaskgate.so).
PYVENV := $(BUILD)/py-venv
python: lib
	rm -rf $(PYVENV)
	python3 -m venv $(PYVENV)
	$(PYVENV)/bin/pip install --quiet --disable-pip-version-check ./bindings/python pytest

# pytest on the real library and the example plugins, from the installed package.
test-python: python plugins
	cd bindings/python && PLUGINS=$(BUILD)/plugins $(PYVENV)/bin/python -m pytest -q -p no:cacheprovider tests 2>&1 \
		| tee $(BUILD)/python-test.log | tail -n 30; exit $${PIPESTATUS[0]}

bench-python: python
	PYTHON=$(PYVENV)/bin/python benchmarks/run-python

clean:
	rm -rf $(BUILD) .build .build-tsan
