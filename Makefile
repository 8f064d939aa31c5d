# asyncstack: build, test, demo, sanitizers, install.
# Variables follow LuaRocks' names so `luarocks make` can drive this file.

LUA        ?= lua5.4
LUA_INCDIR ?= $(shell pkg-config --variable=includedir lua5.4 2>/dev/null)/lua5.4
UNWIND_CFLAGS := $(shell pkg-config --cflags libunwind 2>/dev/null)
UNWIND_LIBS   := $(shell pkg-config --libs libunwind 2>/dev/null)
CC         ?= cc
WARN       := -Wall -Wextra -Wshadow -Wundef -Wwrite-strings \
              -Wmissing-prototypes -Wstrict-prototypes
CFLAGS     ?= -O2 -g
WERROR     ?=
ALL_CFLAGS  = -std=c99 -fPIC -fvisibility=hidden $(WARN) $(WERROR) $(CFLAGS) \
              -I$(LUA_INCDIR) $(UNWIND_CFLAGS)
LIBFLAG    ?= -shared
LDLIBS     ?=

BUILD      ?= build
SRCS       := $(wildcard src/*.c)
HDRS       := $(wildcard src/*.h)
OBJS        = $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE        = $(BUILD)/asyncstack/core.so
# Crashes on request, for spec/crash_spec.lua and examples/crash.lua only:
# built by `make test` / `make test-helpers`, never installed.
CRASHHELPER = $(BUILD)/test/asyncstack_crashhelper.so

PREFIX     ?= /usr/local
LUA_VERSION = 5.4
INST_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
INST_LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)

BUSTED     ?= $(LUA) /usr/bin/busted
RUN_ENV     = LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/?.so;;'

.PHONY: all test test-helpers demo asan valgrind install clean deps bench \
        notrack bench-callgrind bench-profile

all: $(CORE)

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(ALL_CFLAGS) -o $@ $(OBJS) $(UNWIND_LIBS) $(LDLIBS)

$(CRASHHELPER): src-test/crashhelper.c
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(ALL_CFLAGS) -pthread -o $@ $< $(LDLIBS)

test-helpers: $(CRASHHELPER)

test: all test-helpers
	$(RUN_ENV) $(BUSTED) $(BUSTED_FLAGS) spec

# Installs what the build needs when it is missing and we may (root + apt).
deps:
	@sh tools/deps.sh

demo: deps all
	$(RUN_ENV) $(LUA) examples/demo.lua

# ASan+UBSan build of the module, specs run with the runtime preloaded
# (Debian's lua5.4 is not instrumented).
asan:
	$(MAKE) BUILD=build-asan CFLAGS='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' LDLIBS='-fsanitize=address,undefined' all test-helpers
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ASYNCSTACK_ASAN=1 \
	  $(MAKE) BUILD=build-asan test-only

test-only:
	$(RUN_ENV) $(BUSTED) $(BUSTED_FLAGS) spec

valgrind: all
	$(RUN_ENV) valgrind --error-exitcode=1 --leak-check=no --quiet \
	  $(BUSTED) --exclude-tags=slow,child $(BUSTED_FLAGS) spec

# Side-by-side benchmarks (issue 7): bench/run.lua prints one table row per
# measurement with medians, the ratio, the target and whether it is met.
# BENCH_ARGS passes options and row numbers, e.g. BENCH_ARGS='--quick 1 2'.
NOTRACK    ?= build-notrack
BENCH_ENV   = $(RUN_ENV) ASYNCSTACK_BENCH_NOTRACK=$(NOTRACK)
LUA_LIBDIR ?= $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)
LUAPROF     = $(BUILD)/bench/luaprof

bench: all notrack
	$(BENCH_ENV) $(LUA) bench/run.lua $(BENCH_ARGS)

# The module with the async-stack watchers compiled out, for row 4 only: its
# traces are wrong (see ASYNCSTACK_NO_TRACKING in src/astack.h).
notrack:
	$(MAKE) BUILD=$(NOTRACK) CFLAGS='$(CFLAGS) -DASYNCSTACK_NO_TRACKING' all

# Rows 1, 2 and 4 as instruction counts under valgrind --tool=callgrind.
bench-callgrind: all notrack
	$(BENCH_ENV) $(LUA) bench/callgrind.lua $(BENCH_ARGS)

# Per-function instructions of one fork+wait and one as.yield(), under a
# Lua interpreter that keeps liblua's internal symbols (bench/luaprof.c).
$(LUAPROF): bench/luaprof.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -I$(LUA_INCDIR) -o $@ $< $(LUA_LIBDIR)/liblua5.4.a -Wl,-E -lm -ldl

bench-profile: all $(LUAPROF)
	$(BENCH_ENV) ASYNCSTACK_BENCH_LUAPROF=$(LUAPROF) $(LUA) bench/callgrind.lua --profile $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/asyncstack $(DESTDIR)$(INST_LUADIR)/asyncstack
	install -m 755 $(CORE) $(DESTDIR)$(INST_LIBDIR)/asyncstack/core.so
	install -m 644 lua/asyncstack/*.lua $(DESTDIR)$(INST_LUADIR)/asyncstack/

clean:
	rm -rf build build-asan $(NOTRACK)

# ------------------------------------------------------- reliability (issue 8)
# fuzz: FUZZ_PROGRAMS random programs (spec/random_spec.lua) from FUZZ_SEED,
# through the asan target (its build, flags and preloaded runtimes). When the
# run dies, the seed of the program it was in is printed; a failing seed
# replays with tools/replay.lua, or under ASan with FUZZ_PROGRAMS=1.
# gc-stress: the specs again, with busted's process under an aggressive
# collector (spec/support/gc_stress.lua), once per mode; #slow (scale) and
# #child specs are left out (a child process is not under the helper).
# scale: spec/scale_spec.lua alone, printing its numbers (make test runs it
# too, quietly).
FUZZ_PROGRAMS     ?= 20000
FUZZ_SEED         ?= $(shell date +%s)
GC_STRESS_MODES   ?= pause0 generational
GC_STRESS_FLAGS   ?= --exclude-tags=slow,child

.PHONY: fuzz gc-stress scale

fuzz:
	@echo "fuzz: $(FUZZ_PROGRAMS) random programs from seed $(FUZZ_SEED) under ASan+UBSan"
	@ASYNCSTACK_PROGRAMS=$(FUZZ_PROGRAMS) ASYNCSTACK_SEED=$(FUZZ_SEED) \
	  ASYNCSTACK_SEED_LOG=$(CURDIR)/build-asan/fuzz-seed \
	  $(MAKE) --no-print-directory asan BUSTED_FLAGS='--tags=random $(BUSTED_FLAGS)' || { \
	  seed=$$(cat build-asan/fuzz-seed 2>/dev/null); \
	  echo "fuzz: failed; the last program started has seed $$seed. Replay it with"; \
	  echo "  $(RUN_ENV) $(LUA) tools/replay.lua $$seed"; \
	  echo "  make fuzz FUZZ_PROGRAMS=1 FUZZ_SEED=$$seed    (under ASan+UBSan)"; \
	  exit 1; }

gc-stress: all test-helpers
	@for mode in $(GC_STRESS_MODES); do \
	  echo "gc-stress: $$mode"; \
	  $(RUN_ENV) $(BUSTED) --helper=spec/support/gc_stress.lua -Xhelper=$$mode \
	    $(GC_STRESS_FLAGS) $(BUSTED_FLAGS) spec || exit 1; \
	done

scale: all
	$(RUN_ENV) ASYNCSTACK_SCALE_REPORT=1 $(BUSTED) $(BUSTED_FLAGS) spec/scale_spec.lua

# ------------------------------------------------------ Lua's own tests (issue 12)
# luatests: Lua 5.4.4's coroutine.lua, db.lua, errors.lua, calls.lua and
# closure.lua (extracted from LUA_TESTES into $(BUILD)/luatests/, never into
# the tree) with as.install() and inside as.run(); the line edits they need
# inside a fork, each with its reason, are in spec/luatests/edits.lua.
LUA_TESTES ?= ../shared/lua/lua-5.4.4-testes.tar.gz

.PHONY: luatests

luatests: all
	$(LUA) spec/luatests/run.lua --tarball $(LUA_TESTES) --build $(BUILD) --lua $(LUA)
