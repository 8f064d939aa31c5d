/*
** debuglayout.c: the published debug descriptor and the registry of running
** schedulers (see debuglayout.h for what a tool finds in them and how).
**
** The descriptor and the registry are process-wide by nature (a tool reads
** one process, not one Lua state), so they are the module's only
** process-wide data besides as_sched_active. Their own offsets are constant
** data; the Lua part is written once, by the first require.
*/
#define _GNU_SOURCE   /* dl_iterate_phdr */
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "debuglayout.h"
#include "memwalk_verify.h"
#include "sched.h"

static as_debug_registry registry = { AS_DEBUG_MAX_SCHEDS, 0, {0} };

/* Exported and in its own section: see "How a tool finds it". Writable (the
** load-time part is filled in), so not const. */
#define AS_DEBUG_OWN_VALUE(name, value) (uint32_t)(value),
__attribute__((section(AS_DEBUG_SECTION), used, visibility("default")))
as_debug_descriptor AS_DEBUG_SYMBOL = {
  AS_DEBUG_MAGIC, AS_DEBUG_LAYOUT_VERSION, (uint32_t)sizeof(as_debug_descriptor),
  (uint32_t)sizeof(void *), AS_DEBUG_UNCHECKED, -1, AS_DEBUG_NOWN, AS_DEBUG_NLUA,
  0, 0, 0, &registry, "", "not checked yet", 0, 0, 0, "",
  { AS_DEBUG_OWN_FIELDS(AS_DEBUG_OWN_VALUE) }, {0}, {0}
};
#undef AS_DEBUG_OWN_VALUE

/* Set with the status; read by the walkers. */
static const as_lualayout *verified_layout;

const as_debug_descriptor *as_debuglayout_get(void) {
  return &AS_DEBUG_SYMBOL;
}

const as_lualayout *as_debuglayout_lua(void) {
  if (__atomic_load_n(&AS_DEBUG_SYMBOL.status, __ATOMIC_ACQUIRE) != AS_DEBUG_VERIFIED)
    return NULL;
  return verified_layout;
}

/* The release to describe: the interpreter's lua_ident, unless the
** environment names another one (ASYNCSTACK_DEBUG_LUA_RELEASE="5.4.N": for
** testing what a tool sees when the stated layout is wrong). */
static int release_minor(char *why, size_t size) {
  const char *fake = getenv("ASYNCSTACK_DEBUG_LUA_RELEASE");
  const char *ident;
  if (fake != NULL && *fake != '\0') {
    char buf[64];
    snprintf(buf, sizeof buf, "$LuaVersion: Lua %s", fake);
    snprintf(why, size, "release %s set by ASYNCSTACK_DEBUG_LUA_RELEASE", fake);
    return as_lualayout_parse_ident(buf);
  }
  ident = as_lualayout_running_ident();
  snprintf(why, size, "%s", ident != NULL ? ident : "the interpreter exports no lua_ident");
  return as_lualayout_parse_ident(ident);
}

/* The executable segment of the object holding this code (core.so). */
static int find_text(struct dl_phdr_info *info, size_t size, void *data) {
  uint64_t *range = (uint64_t *)data, self = (uint64_t)(uintptr_t)&find_text;
  int i;
  (void)size;
  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uint64_t start = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && self >= start &&
        self < start + ph->p_memsz) {
      range[0] = start;
      range[1] = start + ph->p_memsz;
      return 1;
    }
  }
  return 0;
}

void as_debuglayout_set_internal_prefix(const char *prefix, size_t len) {
  as_debug_descriptor *d = &AS_DEBUG_SYMBOL;
  if (len >= sizeof d->internal_prefix ||
      (d->internal_prefix_len == len && memcmp(d->internal_prefix, prefix, len) == 0))
    return;
  d->internal_prefix_len = 0;       /* readers see no half-written prefix */
  __atomic_signal_fence(__ATOMIC_RELEASE);
  memcpy(d->internal_prefix, prefix, len);
  d->internal_prefix[len] = '\0';
  __atomic_signal_fence(__ATOMIC_RELEASE);
  d->internal_prefix_len = (uint32_t)len;
}

void as_debuglayout_check(lua_State *L) {
  as_debug_descriptor *d = &AS_DEBUG_SYMBOL;
  uint32_t expected = AS_DEBUG_UNCHECKED;
  const as_lualayout *lay;
  char why[96], msg[sizeof d->message];
  int minor, ok = 0;
  if (!__atomic_compare_exchange_n(&d->status, &expected, AS_DEBUG_CHECKING, 0,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return;   /* checked already (or being checked by another thread) */
  {
    uint64_t range[2] = {0, 0};
    dl_iterate_phdr(find_text, range);
    d->text_start = range[0];
    d->text_end = range[1];
  }
  minor = release_minor(why, sizeof why);
  lay = as_lualayout_for_release(minor);
  if (minor >= 0) snprintf(d->lua_release, sizeof d->lua_release, "5.4.%d", minor);
  d->lua_minor = minor;
  if (lay == NULL) {
    snprintf(msg, sizeof msg, "unverified: no stated layout for %s", why);
  } else {
    int i = 0;
#define AS_DEBUG_LUA_COPY(name) d->lua[i++] = lay->name;
    AS_LUALAYOUT_FIELDS(AS_DEBUG_LUA_COPY)
#undef AS_DEBUG_LUA_COPY
    memcpy(d->lua_opmodes, lay->opmodes, sizeof d->lua_opmodes);
    d->lua_naming = (uint32_t)lay->naming;
    d->lua_finalizer_on_caller = (uint32_t)lay->finalizer_on_caller;
    d->lua_env_needs_variable = (uint32_t)lay->env_needs_variable;
    ok = as_memwalk_verify(L, lay, msg, sizeof msg);
  }
  memcpy(d->message, msg, sizeof d->message);
  d->message[sizeof d->message - 1] = '\0';
  verified_layout = ok ? lay : NULL;
  __atomic_store_n(&d->status, ok ? AS_DEBUG_VERIFIED : AS_DEBUG_UNVERIFIED,
                   __ATOMIC_RELEASE);
}

void as_debuglayout_register(as_sched *s) {
  uint32_t i;
  for (i = 0; i < AS_DEBUG_MAX_SCHEDS; i++) {
    uint64_t expected = 0;
    uint32_t count;
    if (!__atomic_compare_exchange_n(&registry.scheds[i], &expected,
                                     (uint64_t)(uintptr_t)s, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      continue;
    /* the entry before the count that covers it */
    count = __atomic_load_n(&registry.count, __ATOMIC_ACQUIRE);
    while (count < i + 1 &&
           !__atomic_compare_exchange_n(&registry.count, &count,
                                        i + 1, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE)) {}
    return;
  }
  /* full: this run is not published (readers see the others) */
}

void as_debuglayout_unregister(as_sched *s) {
  uint32_t i, n = __atomic_load_n(&registry.count, __ATOMIC_ACQUIRE);
  for (i = 0; i < n && i < AS_DEBUG_MAX_SCHEDS; i++) {
    uint64_t expected = (uint64_t)(uintptr_t)s;
    if (__atomic_compare_exchange_n(&registry.scheds[i], &expected, 0, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      return;
  }
}
