/*
** symbolize.h: the native stack of the interrupted code, for the crash
** report: collect, resolve, print. Safe inside a signal handler:
**  * Native frames: unw_getcontext, unw_init_local, unw_step,
**    unw_get_proc_info and unw_is_signal_frame, documented as signal-safe
**    for local unwinding (man pages, "THREAD AND SIGNAL SAFETY");
**    as_native_warm_up() has libunwind do its lazy setup outside signal
**    context. unw_get_proc_name is NOT used although documented the same
**    way: in libunwind 1.6 it mallocs (get_elf_image), and hung the
**    "allocator lock" spec. Function names are read from the objects' ELF
**    symbol tables with open/pread instead.
**  * Shared objects: /proc/self/maps is read with open/read at crash time.
**    dladdr would not allocate in glibc, but it takes the dynamic loader's
**    lock and sees only exported symbols; open/read/close take no lock, and
**    reading at crash time also covers modules loaded after install().
**  * Bounded: AS_NATIVE_MAX frames printed, the rest counted up to 100000.
** Nothing read is trusted; a fault while collecting or resolving is the
** caller's to catch (crash.c jumps back and prints what was collected).
*/
#ifndef ASYNCSTACK_SYMBOLIZE_H
#define ASYNCSTACK_SYMBOLIZE_H

#include "sigsafe.h"

#define AS_NATIVE_MAX 64   /* native frames printed */

/* Collects the instruction pointers of the code the signal interrupted: the
** frames up to the kernel's signal trampoline are the handler's own and are
** skipped. Call from the signal handler. */
void as_native_collect(void);
/* Attaches each collected frame to its shared object and function name. */
void as_native_resolve(void);
/* "  #i 0x... name+0xoff (object)" per frame, then the omitted count. */
void as_native_print(as_sigsafe *w);
/* libunwind's lazy setup, outside any signal handler (install time). */
void as_native_warm_up(void);

#endif
