/*
** coremem.h: the memory of a process from its ELF core file, for the
** `asyncstack` command (tool/): cores written by the kernel and by gdb's
** `gcore`. The PT_LOAD segments hold what was dumped; the NT_FILE note says
** which file was mapped where, which finds the library holding the
** "asyncstack_debug" section (so the descriptor, as for a live process:
** load base + section address) and serves the bytes the core left out
** (file-backed pages the kernel does not dump) from the file on disk.
** Everything read from the core is checked against its size: a truncated
** or foreign file gives an error, never a fault.
*/
#ifndef ASYNCSTACK_TOOL_COREMEM_H
#define ASYNCSTACK_TOOL_COREMEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct tool_core_seg {
  uint64_t vaddr, memsz, offset, filesz;
} tool_core_seg;

typedef struct tool_core_file {
  uint64_t start, end, offset;    /* offset in bytes into the file */
  char *path;                     /* as recorded in the core */
  const unsigned char *data;      /* the file, mapped on first use */
  size_t size;
  int tried;                      /* data was looked for */
} tool_core_file;

typedef struct tool_core {
  const unsigned char *data;      /* the core, mapped */
  size_t size;
  tool_core_seg *segs;
  int nsegs;
  tool_core_file *files;
  int nfiles;
  const char *exe;                /* --exe: the executable, when moved */
  int pid;                        /* from NT_PRSTATUS, 0 unknown */
  char library[4096];             /* the file holding the descriptor */
} tool_core;

/* Opens core file `path` (exe: --exe or NULL): 0, or -1 with the reason
** in err (cannot open, not ELF, not a core, another machine, truncated). */
int tool_core_open(tool_core *c, const char *path, const char *exe, char *err,
                   size_t errsize);

/* The descriptor's address, or 0 with the reason in err. */
uint64_t tool_core_find_descriptor(tool_core *c, char *err, size_t errsize);

/* as_memwalk_read_fn over a tool_core (ctx). */
int tool_core_read(void *ctx, uintptr_t address, size_t length, void *out);

void tool_core_close(tool_core *c);

#endif
