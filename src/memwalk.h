/*
** memwalk.h: a walker over one Lua coroutine's frames that reads memory
** only through a callback, with the layout facts of lualayout.h.
**
** What it is for
** --------------
** Every other view of a stack (lua_getstack/lua_getinfo, asyncstack's
** traces) runs Lua API calls inside the process. This walker needs none: it
** is given a `lua_State *` as a plain address and a read(ctx, address,
** length, out) callback, and produces, for each frame from the top,
** what lua_getinfo(L, "Slnt") would: short_src, current line (from the saved
** pc and the Proto's line info), linedefined, what ("Lua", "C", "main"),
** tail-call flag, and the name derived from the calling instruction as
** ldebug.c derives it ("local", "global", "method", "field", "upvalue",
** "constant", "metamethod", "for iterator", "hook"). A second function finds
** a function's name in package.loaded as luaL_traceback does.
**
** The same code serves three readers:
**   * the own process inside a signal handler (as_memwalk_read_memcpy when
**     the caller knows the stack is intact, as_memwalk_read_vm with the own
**     pid when it must survive any pointer),
**   * another process (as_memwalk_read_vm with its pid: process_vm_readv),
**   * a core file later (a reader that maps addresses to file offsets).
**
** Rules (why it is safe in a signal handler and against a running process)
** -----------------------------------------------------------------------
**  * No Lua API, no allocation, no stdio, no locks; all state is on the C
**    stack or in the caller's buffers. Stack use (gcc -O2, x86_64): about
**    1 KB, plus about 300 bytes per level of register-name derivation
**    (at most AS_MEMWALK_MAX_NAME_DEPTH levels): under 6 KB in all, which
**    fits a sigaltstack of MINSIGSTKSZ-plus-headroom (use >= 16 KB).
**  * Every loop is bounded: frames by the caller's `max` and by
**    AS_MEMWALK_MAX_CALLINFO, instructions by the Proto's sizecode and
**    AS_MEMWALK_MAX_CODE, table nodes by AS_MEMWALK_MAX_LSIZENODE, register
**    name chains by AS_MEMWALK_MAX_NAME_DEPTH, and all reads for one frame
**    (or one package.loaded search) by AS_MEMWALK_FRAME_READS.
**  * Every value read is checked before use (alignment, tags, sizes, pc
**    ranges, string lengths); a read the callback refuses, or a value that
**    cannot be right, ends that frame or that walk as "failed", never as a
**    crash. Torn reads of a running process can give wrong but well-formed
**    values: the result is then wrong, not unsafe.
**  * The result says COMPLETE (every frame down to the thread's base was
**    produced and every string fit), TRUNCATED (`max` frames were produced
**    and more exist, or a name/source was cut to its buffer) or FAILED
**    (the chain could not be read to its end: the frames before the failure
**    are kept).
*/
#ifndef ASYNCSTACK_MEMWALK_H
#define ASYNCSTACK_MEMWALK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "lualayout.h"

/* Copies `length` bytes at `address` (in the inspected address space) to
** `out`; returns 0 on success, nonzero when any byte cannot be read. */
typedef int (*as_memwalk_read_fn)(void *ctx, uintptr_t address, size_t length,
                                  void *out);

typedef struct as_memwalk_reader {
  as_memwalk_read_fn read;
  void *ctx;
} as_memwalk_reader;

typedef enum as_memwalk_status {
  AS_MEMWALK_COMPLETE = 0,
  AS_MEMWALK_TRUNCATED = 1,
  AS_MEMWALK_FAILED = 2
} as_memwalk_status;

#define AS_MEMWALK_SOURCE_SIZE 60       /* LUA_IDSIZE of every 5.4 release */
#define AS_MEMWALK_NAME_SIZE 64
#define AS_MEMWALK_MAX_CALLINFO 1100000 /* > LUAI_MAXSTACK (1e6) frames */
#define AS_MEMWALK_MAX_CODE (1 << 26)
#define AS_MEMWALK_MAX_LSIZENODE 24
#define AS_MEMWALK_MAX_NAME_DEPTH 16
#define AS_MEMWALK_PREFIX_MAX 255       /* as_memwalk_string_has_prefix */
/* Reads allowed for one frame's fields and name, and for one search of
** package.loaded: a bound on the work when sizes read are torn. */
#define AS_MEMWALK_FRAME_READS (1L << 20)

/* Where a frame's name comes from (as_memwalk_frame.name_kind). */
enum {
  AS_MEMWALK_NAME_CALL = 0,   /* the calling instruction (namewhat says how) */
  AS_MEMWALK_NAME_GLOBAL,     /* package.loaded (fork walker) */
  AS_MEMWALK_NAME_UPVALUE     /* a root's upvalue in its spawner (fork walker) */
};

typedef struct as_memwalk_frame {
  uintptr_t ci;          /* address of the frame's CallInfo */
  uintptr_t func;        /* the called value: closure address, or the
                            function pointer of a light C function */
  uintptr_t cfunc;       /* C frames: the lua_CFunction's address */
  uintptr_t source_ts;   /* Lua frames: the source TString's address */
  unsigned char func_tag;  /* its type tag (raw, with the collectable bit) */
  unsigned char istailcall;
  unsigned char status;    /* as_memwalk_status of this frame alone */
  /* set by the fork walker (memwalk_forks.h) only: */
  unsigned char coroutine_start; /* first frame of a coroutine that resumed
                                    the one above it */
  unsigned char name_kind;       /* AS_MEMWALK_NAME_* of `name` */
  const char *what;        /* "Lua", "C", "main" (static strings) */
  const char *namewhat;    /* "" when unnamed, else as lua_getinfo's 'n' */
  int currentline;         /* -1 for C functions or without line info */
  int linedefined;         /* -1 for C functions */
  int lastlinedefined;
  char source[AS_MEMWALK_SOURCE_SIZE];  /* short_src, as luaO_chunkid */
  char name[AS_MEMWALK_NAME_SIZE];      /* valid when *namewhat != '\0' */
} as_memwalk_frame;

/*
** Walks the coroutine at address `L`: skips `level` frames from the top
** (level 0 is the running function, as lua_getstack), then fills up to `max`
** frames of `out`; `*count` receives how many were filled. Returns the
** status of the whole walk (see above).
*/
as_memwalk_status as_memwalk_frames(const as_lualayout *lay,
                                    const as_memwalk_reader *rd, uintptr_t L,
                                    int level, as_memwalk_frame *out, int max,
                                    int *count);

/*
** Counts the frames of the coroutine at `L` (what lua_getstack would walk),
** stopping at `limit`; returns -1 when the chain cannot be read.
*/
int as_memwalk_depth(const as_lualayout *lay, const as_memwalk_reader *rd,
                     uintptr_t L, int limit);

/*
** The name luaL_traceback gives `frame`'s function from the loaded modules:
** "mod.name" when package.loaded[mod][name] is the function (and "name"
** for mod "_G"), "mod" when package.loaded[mod] is. The search visits the
** tables' entries in lua_next order, as luaL_traceback, so it finds the
** same name when there are several. `L` is any thread of the state.
** Returns 1 and fills `out` when found, 0 when not, -1 when the tables could
** not be read.
*/
int as_memwalk_global_name(const as_lualayout *lay, const as_memwalk_reader *rd,
                           uintptr_t L, const as_memwalk_frame *frame,
                           char *out, size_t size);

/*
** Fills source, what, linedefined and lastlinedefined of `out` (and func,
** func_tag, source_ts) for the Lua closure at `closure`, as lua_getinfo
** "S" would (currentline -1, no name). Returns 0, or -1 when it cannot be
** read or is no Lua closure.
*/
int as_memwalk_closure(const as_lualayout *lay, const as_memwalk_reader *rd,
                       uintptr_t closure, as_memwalk_frame *out);

/* The line of instruction `pc` of the Lua closure at `closure` (what
** lua_getinfo's currentline says of a frame of it stopped there), or -1
** when it cannot be read or has no line info (stripped). */
int as_memwalk_closure_line(const as_lualayout *lay, const as_memwalk_reader *rd,
                            uintptr_t closure, int pc);

/*
** The name under which the Lua closure `fn` is an upvalue of the Lua
** closure `holder` (what lua_getupvalue names it; "(no name)" when
** stripped): 1 and `out` filled, 0 when it is none of its upvalues, -1
** when they cannot be read.
*/
int as_memwalk_upvalue_name(const as_lualayout *lay,
                            const as_memwalk_reader *rd, uintptr_t holder,
                            uintptr_t fn, char *out, size_t size);

/* 1 when the string (TString) at `ts` starts with prefix[0, len), 0 when
** not, -1 when it cannot be read. */
int as_memwalk_string_has_prefix(const as_lualayout *lay,
                                 const as_memwalk_reader *rd, uintptr_t ts,
                                 const char *prefix, size_t len);

/*
** A frame known by its raw parts, as a sampler records them in a signal
** handler (profile.c) to name them later: the called value, its Proto (Lua
** closures) or lua_CFunction (C closures; 0 for a light C function, whose
** value is the function), the CallInfo's saved pc and callstatus.
*/
typedef struct as_memwalk_raw {
  uintptr_t func;
  unsigned char func_tag;   /* raw type tag, as in the TValue */
  uintptr_t proto;
  uintptr_t savedpc;
  unsigned callstatus;
} as_memwalk_raw;

/*
** Fills `out` as as_memwalk_frames would for `raw`, whose caller in the same
** coroutine is `caller` (NULL for a coroutine's bottom frame): source,
** lines, what, and the name the caller's instruction gives it. Reads only
** the Protos (and strings) through `rd`: a Proto freed since the raw frame
** was recorded gives a failed or wrong frame, never a fault with a safe
** reader. `L` is any thread of the state. Returns out->status.
*/
as_memwalk_status as_memwalk_raw_frame(const as_lualayout *lay,
                                       const as_memwalk_reader *rd, uintptr_t L,
                                       const as_memwalk_raw *raw,
                                       const as_memwalk_raw *caller,
                                       as_memwalk_frame *out);

/*
** The line of every instruction of the Proto at `proto` (what
** lua_getinfo's currentline gives at that pc), in lines[0, n) with n its
** sizecode cut to `max`; *code receives the address of its code (a saved
** pc is code + 4 * (pc + 1)). For a sampler that names many pcs of one
** function: one pass over the line info instead of one per pc. Returns n,
** or -1 when the Proto cannot be read. `L` is any thread of the state.
*/
int as_memwalk_proto_lines(const as_lualayout *lay, const as_memwalk_reader *rd,
                           uintptr_t L, uintptr_t proto, int *lines, int max,
                           uintptr_t *code);

/* Reader over the own address space with memcpy: only for memory known to
** be intact (the checks above keep addresses inside the objects read). */
int as_memwalk_read_memcpy(void *ctx, uintptr_t address, size_t length,
                           void *out);

/* Reader through process_vm_readv; ctx points to the pid (a pid_t). Safe on
** any address (a bad one fails with EFAULT); async-signal-safe. */
int as_memwalk_read_vm(void *ctx, uintptr_t address, size_t length, void *out);

/* Sets *rd to read the own process safely: process_vm_readv with the own
** pid (stored in *pid, which must outlive *rd) when the kernel allows it
** (returns 1), else memcpy (returns 0: the caller then relies on the
** walker's checks and on the memory being intact). Async-signal-safe. */
int as_memwalk_reader_self(as_memwalk_reader *rd, pid_t *pid);

#endif
