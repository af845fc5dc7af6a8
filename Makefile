# halo — build, test, demo and benchmarks. Every target installs missing
# Debian packages first (make deps is a no-op when they are present).

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
# BUILD_PACKAGES build halo (deploy/Dockerfile: make build PACKAGES='$(BUILD_PACKAGES)'); the rest test it
BUILD_PACKAGES := build-essential cmake pkg-config libuv1-dev libluajit-5.1-dev luajit \
              lua-cjson lua-cjson-dev node-llhttp zlib1g-dev libssl-dev
PACKAGES   := $(BUILD_PACKAGES) lua-busted etcd-server \
              nginx libnginx-mod-http-echo prometheus curl netcat-openbsd golang-go docker-compose chromium
BENCH_PACKAGES := erlang-base wrk
FUZZ_PACKAGES  := clang
FUZZ_SECONDS   ?= 60
BUILD_FUZZ     ?= build-fuzz

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps deps-bench bench-w10 bench-w11 bench-w14 metrics-table build build-asan build-tsan test test-c test-lua test-lua-asan test-tsan demo bench compare fuzz fuzz-build fuzz-ci clean

all: build

deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

deps-bench: deps
	@missing=""; for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHALO_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

build-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DHALO_WERROR=ON -DHALO_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS) -- --no-print-directory

# LeakSanitizer on; spec/lsan.supp names the leaks that are not halo's.
LSAN_ENV := ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/spec/lsan.supp

build-tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHALO_WERROR=ON -DHALO_TSAN=ON >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS) -- --no-print-directory

# C unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-c: build-asan
	cd $(BUILD_ASAN) && $(LSAN_ENV) ctest --output-on-failure

# The specs' npm projects, each pinned by its lock file: spec/mcp (the MCP
# client test: the official MCP SDK and ajv) and spec/observer (the Observer's
# browser test and bench/w14: puppeteer-core driving Debian's chromium): npm ci
# when node_modules is missing or older than the lock file; Debian's nodejs
# and npm when there is no npm.
MCP_NPM := spec/mcp/node_modules/.package-lock.json
OBSERVER_NPM := spec/observer/node_modules/.package-lock.json
spec/%/node_modules/.package-lock.json: spec/%/package-lock.json
	@command -v npm >/dev/null || ($(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm)
	cd spec/$* && npm ci --no-audit --no-fund
	@touch $@

# Busted specs against the -Werror build, loading build/lua/halo/core.so.
test-lua: build $(MCP_NPM) $(OBSERVER_NPM)
	HALO_BUILD=$(BUILD) busted --lua=luajit

# The same specs against the sanitized module, so the bindings get ASan+UBSan
# too; a leak anywhere in the run fails it at exit (the halo nodes the specs
# start as OS processes report theirs in their own logs).
test-lua-asan: build-asan $(MCP_NPM) $(OBSERVER_NPM)
	$(LSAN_ENV) \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	HALO_BUILD=$(BUILD_ASAN) busted --lua=luajit

# ThreadSanitizer on the C tests and on the specs of the halo binary, whose
# watchdog thread watches the loop thread; spec/tsan.supp lists known races.
TSAN_ENV := TSAN_OPTIONS="suppressions=$(CURDIR)/spec/tsan.supp halt_on_error=1"
test-tsan: build-tsan
	cd $(BUILD_TSAN) && $(TSAN_ENV) ctest --output-on-failure
	$(TSAN_ENV) HALO_BUILD=$(BUILD_TSAN) busted --lua=luajit spec/cli_spec.lua

test: test-c test-lua test-lua-asan test-tsan fuzz-ci

# The README's table of metric families, from halo.metrics.families().
metrics-table: build
	./$(BUILD)/halo run tools/metrics_table.lua write README.md

# The five-node demo on loopback (README "The demo"); DEMO_ARGS passes
# options, e.g. make demo DEMO_ARGS="--nodes 3 --base-port 9200".
demo: build
	./$(BUILD)/halo demo $(DEMO_ARGS)

bench: build
	./bench/run

compare: build deps-bench
	./bench/compare

# W10: the HTTP server against nginx under wrk (bench/w10/run).
bench-w10: build deps-bench
	./bench/w10/run

# W11: MCP tools/call latency, local and proxied, at 1k-100k processes (bench/w11/run).
bench-w11: build
	./bench/w11/run

# W14: the Observer at 100k processes: first process-table paint in chromium,
# snapshot sizes, the observed node's CPU per browser (bench/w14/run).
bench-w14: build $(OBSERVER_NPM)
	./bench/w14/run

# libFuzzer targets, each for FUZZ_SECONDS (default 60): fuzz_decode (the
# MessagePack decoder, seeded with encodings of assorted values) and
# fuzz_frame (the transport's frame, handshake and fragment parsers, seeded
# with well-formed streams) and fuzz_httpd (the HTTP server's request parsing
# on a connection without a socket, seeded with request streams). Corpora stay in $(BUILD_FUZZ)/<target>.
# fuzz-ci runs each for 20 s (make test runs it).
FUZZ_TARGETS := fuzz_decode fuzz_frame fuzz_httpd
FUZZ_SRC_fuzz_decode := fuzz/fuzz_decode.c bindings/codec.c core/msgpack.c core/pid.c core/errors.c
FUZZ_SRC_fuzz_frame := fuzz/fuzz_frame.c core/frame.c core/crypto.c core/errors.c
FUZZ_SRC_fuzz_httpd := fuzz/fuzz_httpd.c core/httpd.c core/map.c core/errors.c core/prof.c \
                       /usr/share/llhttp/llhttp.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c
FUZZ_CFLAGS := -g -O1 -DHALO_FUZZ -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               -Icore -Ibindings -I/usr/share/include/llhttp $$(pkg-config --cflags luajit libuv zlib libcrypto)
FUZZ_LIBS := $$(pkg-config --libs luajit libuv zlib libcrypto) -lm

fuzz-build: build
	@dpkg-query -W -f='$${Status}' $(FUZZ_PACKAGES) 2>/dev/null | grep -q "install ok installed" || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(FUZZ_PACKAGES))
	@mkdir -p $(addprefix $(BUILD_FUZZ)/,$(addsuffix .corpus,$(FUZZ_TARGETS)))
	@for t in $(FUZZ_TARGETS); do \
	  case $$t in fuzz_decode) src="$(FUZZ_SRC_fuzz_decode)";; fuzz_frame) src="$(FUZZ_SRC_fuzz_frame)";; \
	    fuzz_httpd) src="$(FUZZ_SRC_fuzz_httpd)";; esac; \
	  clang $(FUZZ_CFLAGS) $$src $(FUZZ_LIBS) -o $(BUILD_FUZZ)/$$t || exit 1; \
	done
	LUA_CPATH="$(BUILD)/lua/?.so" luajit fuzz/seeds.lua $(BUILD_FUZZ)/fuzz_decode.corpus
	luajit fuzz/frame_seeds.lua $(BUILD_FUZZ)/fuzz_frame.corpus
	luajit fuzz/httpd_seeds.lua $(BUILD_FUZZ)/fuzz_httpd.corpus

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  ./$(BUILD_FUZZ)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	    $(BUILD_FUZZ)/$$t.corpus || exit 1; \
	done

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ)
