# deepc: thin driver over CMake. `make demo` and `make test` work on a fresh machine: they
# install the Debian packages the project needs first (scripts/install-deps.sh, idempotent).
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 8
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DDC_WERROR=ON
endif

.PHONY: all deps build check-includes check-calls test test-gpu test-parity-long test-unit test-asan test-fuzz demo bench examples exercises clean format format-check install

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite: the format check, unit, parity and CLI tests, then the same unit tests under ASan+UBSan, then
# every file reader's libFuzzer target for FUZZ_SECONDS each.
test: format-check build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-asan
	$(MAKE) test-fuzz

# The GPU tests (tests/gpu, docs/cuda.md): they skip without a GPU; on a GPU machine
# tests/gpu/on_device.sh adds compute-sanitizer.
test-gpu: build
	cd $(BUILD) && ctest --output-on-failure -L gpu

# The differential tester against PyTorch (tests/parity/test_differential.py) with 20000 cases
# for each of three seeds; `make test` runs 300.
test-parity-long: build
	for seed in 2026 1 2; do \
	  DC_DIFF_CASES=20000 DC_DIFF_SEED=$$seed DEEPC_LIB=$(BUILD)/libdeepc.so \
	    /usr/bin/python3 tests/parity/test_differential.py || exit 1; \
	  DC_DIFF_CASES=20000 DC_DIFF_SEED=$$seed DEEPC_LIB=$(BUILD)/libdeepc.so \
	    /usr/bin/python3 tests/parity/test_differential_more.py || exit 1; \
	  DC_DIFF_CASES=3000 DC_DIFF_SEED=$$seed DEEPC_LIB=$(BUILD)/libdeepc.so \
	    /usr/bin/python3 tests/parity/test_differential_nn.py || exit 1; \
	done

test-asan: deps
	# -Werror stays on the main build: sanitizer instrumentation makes GCC emit false warnings.
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDC_SANITIZE=ON $(CMAKE_FLAGS) -DDC_WERROR=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -L unit

# libFuzzer (clang, ASan+UBSan) on every reader, starting from tests/fuzz/corpus (docs/reliability.md).
test-fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DDC_FUZZ=ON \
	  -DDC_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CMAKE_FLAGS) -DDC_WERROR=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_all
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j $(JOBS) -L fuzz

# DEMO_DEVICE=cuda trains on the GPU (`deepc train --device cuda`, docs/cuda.md).
DEMO_DEVICE ?= cpu
demo: build
	@DEMO_DEVICE=$(DEMO_DEVICE) bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

# The course exercises (docs/exercises.md), outputs in runs/course/; QUICK=1: the few-batch
# versions that CI runs (tests/cli/test_exercises.sh).
exercises: build
	@bash examples/course/run_all.sh --build $(BUILD) $(if $(QUICK),--quick)

install: build
	cmake --install $(BUILD)

# Every tracked C file but third_party/'s, formatted by .clang-format (Debian's clang-format 14,
# installed by scripts/install-deps.sh); `make test` fails when one is not formatted.
FORMAT_FILES = $$(git ls-files '*.c' '*.h' ':!:third_party/*')

# Every #include of src/, tools/, include/, examples/ and bench/ points down the layer table of
# docs/internals.md, with no include circle between folders (also the CTest test lint.check_includes).
check-includes:
	@bash scripts/check-includes.sh

# The same rules for calls: the symbols each object of the library uses, read with nm from
# build/ (also the CTest test lint.check_calls).
check-calls: build
	@bash scripts/check-includes.sh --calls $(BUILD)

format:
	clang-format -i $(FORMAT_FILES)

format-check: deps
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
