/*
** procmem.h: another process's memory, for the `asyncstack` command
** (tool/): its mappings (/proc/PID/maps), the debug descriptor found
** through them (the mapped file with the "asyncstack_debug" section: load
** base + section address; no symbols needed), a reader over
** process_vm_readv (as_memwalk_read_vm) that fetches whole blocks of a
** mapping and keeps them (one system call per 64 KB instead of one per
** field: 100,000 forks are read in well under a second), and pausing every
** thread of the process (--stop: PTRACE_SEIZE + PTRACE_INTERRUPT) with a
** resume that always runs, also when the tool is interrupted.
**
** Without --stop the process runs while it is read: a fork can change
** between two reads, and the walker's per-fork status (memwalk_forks.h)
** says when a walk could not be completed. The block cache makes each
** block a single copy, which narrows that window but does not close it.
*/
#ifndef ASYNCSTACK_TOOL_PROCMEM_H
#define ASYNCSTACK_TOOL_PROCMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tool_mapping {
  uint64_t start, end, offset;
  char perms[5];
  char *path;                 /* NULL for anonymous mappings */
} tool_mapping;

typedef struct tool_block tool_block;

typedef struct tool_proc {
  pid_t pid;
  tool_mapping *maps;
  int nmaps;
  tool_block **table;         /* block cache: hash by block number */
  size_t nblocks;
  tool_block *last;           /* the block the last read used */
  unsigned char *arena;       /* where blocks live (see procmem.c) */
  size_t arena_used;
  long reads;                 /* reads served (for the test hook) */
  long exit_after;            /* test hook: SIGKILL the process after N reads */
  int read_failures;          /* reads the process refused */
  pid_t *stopped;             /* threads seized by tool_proc_stop */
  int nstopped, capstopped;
  char library[4096];         /* the file holding the descriptor */
} tool_proc;

/* Opens process `pid` for reading: 0, or -1 with the reason in err (no
** such process, no permission and why, ...). */
int tool_proc_open(tool_proc *p, pid_t pid, char *err, size_t errsize);

/* The descriptor's address in the process, or 0 with the reason in err
** (no mapped file has the section: asyncstack is not loaded). */
uint64_t tool_proc_find_descriptor(tool_proc *p, char *err, size_t errsize);

/* as_memwalk_read_fn over a tool_proc (ctx). */
int tool_proc_read(void *ctx, uintptr_t address, size_t length, void *out);

/* Forgets every cached block, so the next reads see the memory as it is
** now (a sampler reading the same process again and again). */
void tool_proc_forget(tool_proc *p);

/* Pauses every thread (PTRACE_SEIZE, PTRACE_INTERRUPT, wait for the stop):
** 0, or -1 with the reason in err (every thread paused so far is resumed). */
int tool_proc_stop(tool_proc *p, char *err, size_t errsize);

/* Resumes (detaches from) every thread tool_proc_stop paused. Idempotent;
** async-signal-safe (the tool's SIGINT/SIGTERM handler calls it). */
void tool_proc_resume(tool_proc *p);

/* 1 when the process has exited (or is a zombie) since it was opened. */
int tool_proc_gone(const tool_proc *p);

/* Why reading `pid` is not permitted, as a sentence (another user, Yama's
** ptrace_scope, CAP_SYS_PTRACE, not dumpable). */
void tool_proc_why_denied(pid_t pid, char *out, size_t size);

void tool_proc_close(tool_proc *p);

#endif
