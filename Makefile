# asyncstack: build, test, demo, sanitizers, install.
# Variables follow LuaRocks' names so `luarocks make` can drive this file.

LUA        ?= lua5.4
LUA_INCDIR ?= $(shell pkg-config --variable=includedir lua5.4 2>/dev/null)/lua5.4
UNWIND_CFLAGS := $(shell pkg-config --cflags libunwind 2>/dev/null)
UNWIND_LIBS   := $(shell pkg-config --libs libunwind 2>/dev/null)
CC         ?= cc
WARN       := -Wall -Wextra -Wshadow -Wundef -Wwrite-strings \
              -Wmissing-prototypes -Wstrict-prototypes \
              -Wdeclaration-after-statement -Wmissing-declarations
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
TOOL        = $(BUILD)/bin/asyncstack
# Crashes on request, for spec/crash_spec.lua and examples/crash.lua only:
# built by `make test` / `make test-helpers`, never installed.
CRASHHELPER = $(BUILD)/test/asyncstack_crashhelper.so
LUA_LIBDIR ?= $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)
# A host that opens and closes Lua states (signal handlers must not outlive
# them): links liblua, the module does not. Built by `make test-helpers`.
STATEHOST   = $(BUILD)/test/statehost

PREFIX     ?= /usr/local
LUA_VERSION = 5.4
INST_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
INST_LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
INST_BINDIR ?= $(PREFIX)/bin
INST_GDBDIR ?= $(PREFIX)/share/asyncstack

BUSTED     ?= $(LUA) /usr/bin/busted
RUN_ENV     = LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/?.so;;' \
              ASYNCSTACK_BENCH_FLOOR=$(FLOOR)

.PHONY: all test test-helpers demo asan valgrind install clean deps bench rock \
        notrack bench-callgrind bench-profile bench-quick profile-stress

all: $(CORE) $(TOOL)

# The `asyncstack` command (issue 15, tool/): the memory walker's sources
# linked in directly, no Lua. Installed into $(INST_BINDIR), with the gdb
# script (gdb/asyncstack-gdb.py, which runs it) in $(INST_GDBDIR).
TOOL_SRCS   = $(wildcard tool/*.c) src/lualayout.c src/memwalk.c src/memwalk_proto.c \
              src/memwalk_names.c src/memwalk_loaded.c src/memwalk_forks.c \
              src/memwalk_render.c src/render.c src/flame.c
$(TOOL): $(TOOL_SRCS) $(HDRS) $(wildcard tool/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $(TOOL_SRCS) -lm $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(ALL_CFLAGS) -o $@ $(OBJS) $(UNWIND_LIBS) $(LDLIBS)

$(CRASHHELPER): src-test/crashhelper.c
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(ALL_CFLAGS) -pthread -o $@ $< $(LDLIBS)

# The allocation-failure host (issue 13, src-test/oomhost.c): a test
# program that links liblua (Debian's); never installed. Its sweep modes
# serve `make oomtest`, its "script" mode the allocation-failure
# regression specs (a script arms failalloc(n)).
OOMHOST     = $(BUILD)/test/oomhost
$(OOMHOST): src-test/oomhost.c src-test/abort_trace.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(WERROR) $(CFLAGS) -std=c99 -I$(LUA_INCDIR) -o $@ $^ -llua5.4 $(LDLIBS)

test-helpers: $(CRASHHELPER) $(OOMHOST)
$(STATEHOST): src-test/statehost.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) $(WERROR) $(CFLAGS) -I$(LUA_INCDIR) -o $@ $< -llua5.4 $(LDLIBS)

test-helpers: $(CRASHHELPER) $(STATEHOST)

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
	$(MAKE) BUILD=build-asan CFLAGS='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DASYNCSTACK_ASSERT' LDLIBS='-fsanitize=address,undefined' all test-helpers
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ASYNCSTACK_ASAN=1 \
	  $(MAKE) BUILD=build-asan test-only

test-only:
	$(RUN_ENV) $(BUSTED) $(BUSTED_FLAGS) spec

# Issue 16 item 4: as.profile sampling at 1 kHz for PROFILE_STRESS_SECONDS
# (wall clock; then a quarter of that on the CPU clock) over a busy program
# (spec/profile_stress_spec.lua), under ASan+UBSan and then under valgrind:
# each fails on the first bad read. `make test` leaves that spec pending.
PROFILE_STRESS_SECONDS ?= 10
PROFILE_STRESS_SPEC     = spec/profile_stress_spec.lua

profile-stress: all
	$(MAKE) BUILD=build-asan CFLAGS='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DASYNCSTACK_ASSERT' LDLIBS='-fsanitize=address,undefined' all
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ASYNCSTACK_ASAN=1 ASYNCSTACK_PROFILE_STRESS=$(PROFILE_STRESS_SECONDS) \
	  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build-asan/?.so;;' \
	  $(BUSTED) $(BUSTED_FLAGS) $(PROFILE_STRESS_SPEC)
	$(RUN_ENV) ASYNCSTACK_PROFILE_STRESS=$(PROFILE_STRESS_SECONDS) \
	  valgrind --error-exitcode=1 --leak-check=no --quiet \
	  $(BUSTED) $(BUSTED_FLAGS) $(PROFILE_STRESS_SPEC)

valgrind: all test-helpers
	$(RUN_ENV) valgrind --error-exitcode=1 --leak-check=no --quiet \
	  $(BUSTED) --exclude-tags=slow,child $(BUSTED_FLAGS) spec

# Side-by-side benchmarks (issues 7 and 17): bench/run.lua prints one table row per
# measurement with medians, the ratio, the target and whether it is met.
# BENCH_ARGS passes options and row numbers, e.g. BENCH_ARGS='--quick 1 2'.
NOTRACK    ?= build-notrack
BENCH_ENV   = $(RUN_ENV) ASYNCSTACK_BENCH_NOTRACK=$(NOTRACK)
LUAPROF     = $(BUILD)/bench/luaprof
# The least scheduler of rows 11 and 14 (bench/floor.c): a measuring
# instrument bench/run.lua loads from $(BUILD)/bench, never installed.
FLOOR       = $(BUILD)/bench/floor.so

bench: all notrack $(FLOOR)
	$(BENCH_ENV) $(LUA) bench/run.lua $(BENCH_ARGS)
	$(BENCH_ENV) $(LUA) bench/profile.lua $(BENCH_ARGS)
	$(RUN_ENV) $(LUA) bench/outside.lua
	$(RUN_ENV) $(LUA) bench/record.lua

# Every row once, briefly (3 rounds, 10 ms batches, smaller counts): checks
# that each kernel, peer and the TCP echo run, in well under a minute. The
# figures are rough. Issue 17's peers: lua-cqueues, lua-luv, lua-copas,
# lua-socket and strace (rows skip a peer that is missing, with a note).
bench-quick: all notrack $(FLOOR)
	$(BENCH_ENV) $(LUA) bench/run.lua --quick $(BENCH_ARGS)

# The module with the async-stack watchers compiled out, for row 4 only: its
# traces are wrong (see ASYNCSTACK_NO_TRACKING in src/astack.h).
notrack:
	$(MAKE) BUILD=$(NOTRACK) CFLAGS='$(CFLAGS) -DASYNCSTACK_NO_TRACKING' all

# Rows 1, 2 and 4, and the kernels of rows 13, 17 and 18, as instruction
# counts under valgrind --tool=callgrind.
bench-callgrind: all notrack
	$(BENCH_ENV) $(LUA) bench/callgrind.lua $(BENCH_ARGS)

# Per-function instructions of one fork+wait and one as.yield(), under a
# Lua interpreter that keeps liblua's internal symbols (bench/luaprof.c).
$(LUAPROF): bench/luaprof.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -I$(LUA_INCDIR) -o $@ $< $(LUA_LIBDIR)/liblua5.4.a -Wl,-E -lm -ldl

$(FLOOR): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $< $(LDLIBS)

# spec/bench_spec.lua runs the floor's kernels too (after FLOOR is set:
# a prerequisite list is expanded where it is read).
test-helpers: $(FLOOR)

bench-profile: all $(LUAPROF)
	$(BENCH_ENV) ASYNCSTACK_BENCH_LUAPROF=$(LUAPROF) $(LUA) bench/callgrind.lua --profile $(BENCH_ARGS)

# What `luarocks make` builds (asyncstack-scm-1.rockspec sets BUILD=build-rock):
# always from scratch, so a stale build directory is never installed.
rock:
	rm -rf $(BUILD)
	$(MAKE) BUILD=$(BUILD) all

install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/asyncstack $(DESTDIR)$(INST_LUADIR)/asyncstack
	install -m 755 $(CORE) $(DESTDIR)$(INST_LIBDIR)/asyncstack/core.so
	install -m 644 lua/asyncstack/*.lua $(DESTDIR)$(INST_LUADIR)/asyncstack/
	install -d $(DESTDIR)$(INST_BINDIR) $(DESTDIR)$(INST_GDBDIR)
	install -m 755 $(TOOL) $(DESTDIR)$(INST_BINDIR)/asyncstack
	install -m 644 gdb/asyncstack-gdb.py $(DESTDIR)$(INST_GDBDIR)/asyncstack-gdb.py

clean:
	rm -rf build build-asan build-rock $(NOTRACK)

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

# ------------------------------------------- memory-level walker (issue 14)
# asyncstack_memwalk: a test-only module over the memory walker
# (src/lualayout.c, src/memwalk.c, src/memwalk_verify.c) for
# spec/memwalk_spec.lua. Nothing in core.so calls the walker yet.
MEMWALK_TEST = $(BUILD)/test/asyncstack_memwalk.so
MEMWALK_SRCS = src/lualayout.c src/memwalk.c src/memwalk_proto.c src/memwalk_names.c \
               src/memwalk_loaded.c src/memwalk_verify.c src/memwalk_forks.c

$(MEMWALK_TEST): src-test/memwalk_module.c $(MEMWALK_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(ALL_CFLAGS) -Isrc -o $@ src-test/memwalk_module.c $(MEMWALK_SRCS) $(LDLIBS)

test-helpers: $(MEMWALK_TEST)

# flametool: src/flame.c from a C program without Lua (issue 16), for
# spec/profile_flame_spec.lua. Test-only.
FLAMETOOL = $(BUILD)/test/flametool
$(FLAMETOOL): src-test/flametool.c src/flame.c src/flame.h
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) $(WERROR) $(CFLAGS) -o $@ src-test/flametool.c src/flame.c $(LDLIBS)

test-helpers: $(FLAMETOOL)

# crashhost: a Lua 5.4.4 host (from LUA_TARBALL, compiled into the program)
# whose allocator and API lock end it once the crash handler runs
# (src-test/crashhost.c; spec/crash_nolua_spec.lua). Test-only.
CRASHHOST     = $(BUILD)/test/crashhost
CRASHHOST_DIR = $(BUILD)/crashhost
$(CRASHHOST): src-test/crashhost.c
	@rm -rf $(CRASHHOST_DIR) && mkdir -p $(CRASHHOST_DIR) $(dir $@)
	tar -xzf $(LUA_TARBALL) -C $(CRASHHOST_DIR)
	$(CC) -O1 -g -std=gnu99 -DLUA_USE_LINUX '-Dlua_lock(L)=crashhost_lua_lock(L)' '-Dlua_unlock(L)=((void)0)' \
	  -I$$(ls -d $(CRASHHOST_DIR)/lua-5.4.*) -Wl,-E -o $@ $< -lm -ldl

test-helpers: $(CRASHHOST)

# test-lua-versions: the stated layouts (src/lualayout.c) are compared with
# what every release's own headers say (src-test/lualayout_facts.c, 5.4.0 to
# 5.4.8), then spec/memwalk_spec.lua runs under interpreters built from
# ../shared/lua/ (LUA_VERSIONS) and under the system's lua5.4, through
# src-test/memwalk_runner.lua, and so does spec/memwalk_forks_spec.lua (the
# descriptor and the walker of every fork, issue 14) (busted's C modules are built for Debian's
# lua5.4 only). Lua's sources are unpacked under $(BUILD)/lua-versions/.
LUA_VERSIONS    ?= 5.4.0 5.4.3 5.4.6 5.4.8
LUA_FACTS_VERSIONS ?= 5.4.0 5.4.1 5.4.2 5.4.3 5.4.4 5.4.5 5.4.6 5.4.7 5.4.8
LUA_TARBALLS    ?= ../shared/lua
LUAV            = $(BUILD)/lua-versions
LUAV_ENV        = LUA_PATH='lua/?.lua;lua/?/init.lua;$(SYS_LUA_PATH)' LUA_CPATH='$(BUILD)/test/?.so;$(BUILD)/?.so;$(SYS_LUA_CPATH)'

.PHONY: test-lua-versions
.PRECIOUS: $(LUAV)/%/unpacked $(LUAV)/%/lua $(LUAV)/%/facts

$(LUAV)/%/unpacked:
	@mkdir -p $(LUAV)/$*
	tar -xzf $(LUA_TARBALLS)/lua-$*.tar.gz -C $(LUAV)/$*
	@touch $@

$(LUAV)/%/lua: $(LUAV)/%/unpacked
	$(CC) -O2 -std=gnu99 -DLUA_USE_LINUX -Wl,-E -o $@ $(LUAV)/$*/lua-$*/onelua.c -lm -ldl

$(LUAV)/%/facts: src-test/lualayout_facts.c $(LUAV)/%/unpacked
	$(CC) -std=gnu99 -DLUA_USE_LINUX -I$(LUAV)/$*/lua-$* -o $@ $< $(LUAV)/$*/lua-$*/lopcodes.c

$(LUAV)/lualayout_print: src-test/lualayout_print.c src/lualayout.c src/lualayout.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ src-test/lualayout_print.c src/lualayout.c

test-lua-versions: all $(MEMWALK_TEST) $(LUAV)/lualayout_print \
                   $(foreach v,$(LUA_FACTS_VERSIONS),$(LUAV)/$(v)/facts) \
                   $(foreach v,$(LUA_VERSIONS),$(LUAV)/$(v)/lua)
	@for v in $(LUA_FACTS_VERSIONS); do \
	  minor=$${v##*.}; \
	  $(LUAV)/$$v/facts > $(LUAV)/$$v/facts.txt && \
	  $(LUAV)/lualayout_print $$minor > $(LUAV)/$$v/stated.txt && \
	  if diff $(LUAV)/$$v/facts.txt $(LUAV)/$$v/stated.txt; then \
	    echo "lualayout: Lua $$v: the stated layout matches its headers"; \
	  else echo "lualayout: Lua $$v: the stated layout differs from its headers"; exit 1; fi; \
	done
	@status=0; for lua in $(foreach v,$(LUA_VERSIONS),$(LUAV)/$(v)/lua) $(LUA); do \
	  for spec in spec/memwalk_spec.lua spec/memwalk_forks_spec.lua; do \
	    $(LUAV_ENV) $$lua src-test/memwalk_runner.lua $$spec || status=1; \
	  done; \
	done; exit $$status

# bench-memwalk: the memory walker's time per frame next to lua_getinfo, and
# the load-time verification (src-test/memwalk_bench.lua; numbers only).
.PHONY: bench-memwalk
bench-memwalk: $(MEMWALK_TEST)
	$(LUAV_ENV) $(LUA) src-test/memwalk_bench.lua
# ------------------------------------------- the C API contract (issue 13)
# test-apicheck: the whole spec suite under a Lua 5.4.4 interpreter built
# from ../shared/lua/ with LUA_USE_APICHECK and LUAI_ASSERT, so every C API
# misuse (a push with no stack room, a bad index) aborts at the call instead
# of corrupting memory. Only the interpreter is rebuilt: the module is the
# ordinary build, loaded into it (the interpreter exports the API, -Wl,-E).
# Lua's sources are extracted into build/, never committed. Children the
# specs start as `lua5.4` run under the same interpreter (a PATH shim; its
# include/ holds Lua's headers, so luarocks, which finds its Lua through
# PATH, builds the rock for it too).
# Failures still open are listed, each naming its issue-13 defect, in
# tools/apicheck-known.txt by signature (see there); they still run.
# APICHECK_JOBS (default 2) spec files run at once.
LUA_TARBALL    ?= ../shared/lua/lua-5.4.4.tar.gz
APICHECK_DIR    = $(BUILD)/lua-apicheck
APICHECK_LUA    = $(APICHECK_DIR)/lua
SYS_LUA_PATH   := $(shell $(LUA) -e 'io.write(package.path)' 2>/dev/null)
SYS_LUA_CPATH  := $(shell $(LUA) -e 'io.write(package.cpath)' 2>/dev/null)
APICHECK_ENV    = PATH="$(CURDIR)/$(APICHECK_DIR)/bin:$$PATH" \
                  LUA_PATH='lua/?.lua;lua/?/init.lua;$(SYS_LUA_PATH)' \
                  LUA_CPATH='$(BUILD)/?.so;$(BUILD)/test/?.so;$(SYS_LUA_CPATH)'

# ------------------------------------------- allocation failure (issue 13)
# oomtest: the full sweep (tools/oomtest.lua over src-test/oomprog.lua, every
# failure point, modes "every" and "next") against the ASan+UBSan build, the
# host ASan-instrumented too, with leak detection. make test runs a sample
# of it (spec/oom_spec.lua, OOMTEST_SAMPLE points per mode).
ASAN_CFLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
.PHONY: oomtest
oomtest:
	$(MAKE) BUILD=build-asan CFLAGS='$(ASAN_CFLAGS)' LDLIBS='-fsanitize=address,undefined' all test-helpers
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build-asan/?.so;;' \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(LUA) tools/oomtest.lua build-asan/test/oomhost $(OOMTEST_FLAGS)

.PHONY: test-apicheck apicheck-lua

$(APICHECK_LUA): $(LUA_TARBALL) src-test/abort_trace.c
	@rm -rf $(APICHECK_DIR) && mkdir -p $(APICHECK_DIR)/bin
	tar -xzf $(LUA_TARBALL) -C $(APICHECK_DIR)
	$(CC) -O1 -g -std=gnu99 -DLUA_USE_LINUX -DLUA_USE_APICHECK -DLUAI_ASSERT \
	  -Wl,-E -o $@ $(APICHECK_DIR)/lua-5.4.4/onelua.c src-test/abort_trace.c -lm -ldl
	ln -sf ../lua $(APICHECK_DIR)/bin/lua5.4
	mkdir -p $(APICHECK_DIR)/include
	cp $(addprefix $(APICHECK_DIR)/lua-5.4.4/,lua.h luaconf.h lualib.h lauxlib.h) $(APICHECK_DIR)/include/

apicheck-lua: $(APICHECK_LUA)

test-apicheck: all test-helpers $(APICHECK_LUA)
	$(APICHECK_ENV) $(LUA) tools/apicheck.lua $(APICHECK_LUA) $(BUSTED_FLAGS)
# ------------------------------------------------------ Lua's own tests (issue 12)
# luatests: Lua 5.4.4's coroutine.lua, db.lua, errors.lua, calls.lua and
# closure.lua (extracted from LUA_TESTES into $(BUILD)/luatests/, never into
# the tree) with as.install() and inside as.run(); the line edits they need
# inside a fork, each with its reason, are in spec/luatests/edits.lua.
LUA_TESTES ?= ../shared/lua/lua-5.4.4-testes.tar.gz

.PHONY: luatests

luatests: all
	$(LUA) spec/luatests/run.lua --tarball $(LUA_TESTES) --build $(BUILD) --lua $(LUA)
