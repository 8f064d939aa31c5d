/*
** crash.c: as.crash.install / as.crash.uninstall, a fatal-signal handler that
** prints what folly prints when a coroutine program crashes: the native stack
** (libunwind), then the async stack of the fork that was running.
**
**   *** asyncstack: fatal signal 11 (SIGSEGV), fault address 0x0 ***
**   native stack:
**     #0 0x00007f1c2a4b1207 crash_null_deref+0x7 (asyncstack_crashhelper.so)
**     #1 0x000055d0c2e0afbe ?? (lua5.4+0xdfbe)
**     ...
**   async stack (fork #3 'co_funcC'):
**     #0 [C] in field 'null_deref'
**     #1 crash.lua:16 in function <crash.lua:15>  (root of fork #3 'co_funcC')
**     [fork #3 'co_funcC' awaited by fork #2 'co_funcB']
**     #2 [C] in field 'wait'
**     ...
**
** then the default action is restored and the signal raised again, so the
** exit status and the core dump are the signal's.
**
** The handler runs at an arbitrary instruction: inside malloc with its lock
** held, half way through a Lua API call, on a C stack that has just
** overflowed. So it keeps to what is safe there:
**  * Output is formatted by hand into a static buffer and written with
**    write(2). No stdio, no malloc: the malloc lock may be held by the very
**    frame that faulted (spec "while the allocator's lock is held").
**  * It runs on an alternate stack mapped at install time (with a guard
**    page), so a C stack overflow still gets a report.
**  * Native frames: unw_getcontext, unw_init_local, unw_step,
**    unw_get_proc_info and unw_is_signal_frame, documented as signal-safe
**    for local unwinding (man pages, "THREAD AND SIGNAL SAFETY"); install()
**    unwinds once so libunwind does its lazy setup outside signal context.
**    unw_get_proc_name is NOT used although documented the same way: in
**    libunwind 1.6 it mallocs (get_elf_image), and hung the "allocator lock"
**    spec. Function names are read from the objects' ELF symbol tables with
**    open/pread instead (symbolize_object).
**  * Shared objects: /proc/self/maps is read with open/read at crash time.
**    dladdr would not allocate in glibc, but it takes the dynamic loader's
**    lock and sees only exported symbols; open/read/close take no lock, and
**    reading at crash time also covers modules loaded after install().
**  * Lua frames: only lua_getstack and lua_getinfo with "Slnt". In Lua 5.4
**    (ldebug.c) lua_getstack walks the CallInfo list, and lua_getinfo fills
**    `ar` from the function's Proto and the CallInfo: 'S' (funcinfo,
**    luaO_chunkid into ar->short_src), 'l' (luaG_getfuncline), 'n'
**    (funcnamefromcall reads bytecode) and 't' only read. Only 'f' and 'L'
**    push values (so may grow the stack, allocate, raise): never used here.
**    Fork names come from as_fork.name_cstr (fork.h), a plain char pointer.
**  * The async stack is read while the program may have been changing it
**    when the signal came. Reading is guarded: a fault during it jumps back
**    (siglongjmp, the handler is installed with SA_NODEFER so a nested fault
**    reaches it) and the report says the walk ended early. Every loop is
**    bounded: 64 native frames, 128 Lua frames, 64 forks, truncated names.
**
** Signal dispositions belong to the process, so the configuration lives in
** statics (like the fork id counter in fork.c). install() also anchors a
** guard userdata in the installing state: when that state is closed the
** guard uninstalls the handler before Lua unloads this module's code.
*/
#define _DEFAULT_SOURCE     /* sigaltstack, MAP_ANONYMOUS, syscall, NSIG */
#define UNW_LOCAL_ONLY
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <libunwind.h>

#include "module.h"
#include "sched.h"
#include <lauxlib.h>

#define CRASH_NATIVE_MAX    64       /* native frames printed */
#define CRASH_NATIVE_COUNT  100000   /* frames counted past those, at most */
#define CRASH_LUA_MAX       128      /* Lua frames printed, all forks together */
#define CRASH_FORK_MAX      64       /* forks followed through awaiters */
#define CRASH_NAME_MAX      160      /* chars kept of a native function name */
#define CRASH_OBJECT_MAX    96       /* chars printed of a shared object name */
#define CRASH_OBJECTS_MAX   32       /* distinct shared objects in one stack */
#define CRASH_LABEL_MAX     64       /* chars printed of a fork name */
#define CRASH_ALTSTACK_SIZE (256 * 1024)
#define CRASH_GUARD_MT      "asyncstack.CrashGuard"

#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr elf_ehdr;
typedef Elf64_Phdr elf_phdr;
typedef Elf64_Shdr elf_shdr;
typedef Elf64_Sym elf_sym;
#define ELF_CLASS ELFCLASS64
#define ELF_ST_TYPE ELF64_ST_TYPE
#else
typedef Elf32_Ehdr elf_ehdr;
typedef Elf32_Phdr elf_phdr;
typedef Elf32_Shdr elf_shdr;
typedef Elf32_Sym elf_sym;
#define ELF_CLASS ELFCLASS32
#define ELF_ST_TYPE ELF32_ST_TYPE
#endif

/* Signals install() accepts, by name; the first five are the default. */
static const struct { const char *name; int sig; } known_signals[] = {
  {"SIGSEGV", SIGSEGV}, {"SIGBUS", SIGBUS}, {"SIGILL", SIGILL},
  {"SIGFPE", SIGFPE}, {"SIGABRT", SIGABRT}, {"SIGTRAP", SIGTRAP},
  {"SIGSYS", SIGSYS}
};
#define N_KNOWN ((int)(sizeof known_signals / sizeof known_signals[0]))
#define N_DEFAULT 5

/* ---------------------------------------------------------- configuration */

/* Written by install/uninstall (Lua side, never while the handler runs in
** this thread); read by the handler. */
static struct {
  int installed;
  int fd;                           /* where reports go */
  unsigned char handled[NSIG];      /* our handler is installed for it */
  struct sigaction saved[NSIG];     /* what install replaced */
  char *altstack;                   /* mapping: guard page, then the stack */
  size_t page;
  int altstack_set;                 /* we set the installing thread's */
  stack_t saved_altstack;           /* what we replaced there */
  const void *owner;                /* guard userdata of the installing state */
} conf;

/* ------------------------------------------------------ handler scratch */

typedef struct native_frame {
  uintptr_t ip;
  int object;                       /* index in h.objects, or -1 */
  uintptr_t file_offset;            /* ip as an offset into the object's file */
  uintptr_t sym_offset;             /* ip - start of the function `name` */
  char name[CRASH_NAME_MAX];        /* "" when no symbol contains ip */
} native_frame;

typedef struct native_object {
  char path[256];                   /* from /proc/self/maps ("" if too long) */
} native_object;

/* Everything the handler writes. Static (not on the small alternate stack),
** used by one thread at a time: `owner_tid` admits one reporter. */
static struct {
  long owner_tid;                   /* thread writing a report, or 0 */
  volatile sig_atomic_t guarded;    /* a fault now jumps back to `jmp` */
  sigjmp_buf jmp;
  char out[4096];
  size_t len;
  unw_context_t context;
  unw_cursor_t cursor;
  native_frame frames[CRASH_NATIVE_MAX];
  int nframes;
  unsigned long omitted;            /* native frames past the cap */
  int omitted_more;                 /* ... and counting stopped */
  native_object objects[CRASH_OBJECTS_MAX];
  int nobjects;
  int lua_printed;                  /* Lua frames printed so far */
  char maps[4096];                  /* /proc/self/maps read buffer */
  char line[512];                   /* one maps line (longer ones truncated) */
  elf_sym syms[4096 / sizeof(elf_sym)];  /* symbol table read buffer */
  uintptr_t vaddr[CRASH_NATIVE_MAX];     /* lookup_ip as a link-time address */
  uint32_t best_name[CRASH_NATIVE_MAX];  /* st_name of its symbol */
  uintptr_t best_value[CRASH_NATIVE_MAX];
  unsigned char found[CRASH_NATIVE_MAX];
} h;

/* ------------------------------------------------------------- output */

static void out_flush(void) {
  size_t done = 0;
  while (done < h.len) {
    ssize_t n = write(conf.fd, h.out + done, h.len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;                /* nowhere to write: drop it */
    done += (size_t)n;
  }
  h.len = 0;
}

static void out_char(char c) {
  if (h.len == sizeof h.out) out_flush();
  h.out[h.len++] = c;
}

static void out_str(const char *s) {
  while (*s) out_char(*s++);
}

/* At most `max` chars of untrusted text, control bytes shown as '?'. */
static void out_text(const char *s, size_t max) {
  size_t i;
  for (i = 0; s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == max) {
      out_str("...");
      return;
    }
    out_char(c < 0x20 || c == 0x7f ? '?' : (char)c);
  }
}

static void out_dec(long long v) {
  char tmp[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  if (v < 0) out_char('-');
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  while (n > 0) out_char(tmp[--n]);
}

static void out_hex(uintptr_t v, int width) {
  static const char digits[] = "0123456789abcdef";
  char tmp[2 * sizeof v];
  int n = 0;
  do {
    tmp[n++] = digits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  out_str("0x");
  while (n < width) tmp[n++] = '0';
  while (n > 0) out_char(tmp[--n]);
}

static const char *signal_name(int sig) {
  int i;
  for (i = 0; i < N_KNOWN; i++)
    if (known_signals[i].sig == sig) return known_signals[i].name;
  return "?";
}

/* "fork #4 'name'" */
static void out_fork(const as_fork *f) {
  const char *name = f->name_cstr;
  out_str("fork #");
  out_dec((long long)f->id);
  if (name != NULL) {
    out_str(" '");
    out_text(name, CRASH_LABEL_MAX);
    out_char('\'');
  }
}

/* ------------------------------------------------------- the header line */

static void report_header(int sig, const siginfo_t *info) {
  out_str("*** asyncstack: fatal signal ");
  out_dec(sig);
  out_str(" (");
  out_str(signal_name(sig));
  out_str(")");
  if (info != NULL && info->si_code > 0 && sig != SIGABRT) {
    /* sent by the kernel for a fault: the address is meaningful */
    out_str(", fault address ");
    out_hex((uintptr_t)info->si_addr, 1);
  } else if (info != NULL && info->si_code <= 0) {
    if (info->si_pid == getpid()) {
      out_str(", raised by this process");
    } else {
      out_str(", sent by pid ");
      out_dec(info->si_pid);
    }
  }
  out_str(" ***\n");
}

/* ------------------------------------------------------ native frames */

/* Collects the instruction pointers of the interrupted code into h.frames.
** The unwind starts here; the frames up to the kernel's signal trampoline
** are the handler's own and are skipped. */
static void native_collect(void) {
  int i, skip = -1;
  h.nframes = 0;
  h.omitted = 0;
  h.omitted_more = 0;
  if (unw_getcontext(&h.context) != 0 || unw_init_local(&h.cursor, &h.context) != 0)
    return;
  for (i = 0; i < 16; i++) {
    unw_proc_info_t pi;
    /* unw_is_signal_frame reads what the proc-info lookup of this frame
    ** found; without this lookup it answers for the previous frame */
    (void)unw_get_proc_info(&h.cursor, &pi);
    if (unw_is_signal_frame(&h.cursor) > 0) {
      skip = i;
      break;
    }
    if (unw_step(&h.cursor) <= 0) break;
  }
  /* no trampoline found (unusual unwind info): show everything */
  if (unw_init_local(&h.cursor, &h.context) != 0) return;
  for (i = 0; i <= skip; i++)
    if (unw_step(&h.cursor) <= 0) return;
  for (;;) {
    native_frame *fr = &h.frames[h.nframes];
    unw_word_t ip = 0;
    unw_get_reg(&h.cursor, UNW_REG_IP, &ip);
    fr->ip = (uintptr_t)ip;
    fr->object = -1;
    fr->name[0] = '\0';
    h.nframes++;
    if (unw_step(&h.cursor) <= 0) return;
    if (h.nframes == CRASH_NATIVE_MAX) break;
  }
  for (;;) {                          /* count what is not printed */
    h.omitted++;
    if (unw_step(&h.cursor) <= 0) return;
    if (h.omitted == CRASH_NATIVE_COUNT) {
      h.omitted_more = 1;
      return;
    }
  }
}

/* The address to look frame i up by: past the first frame ip is a return
** address, and the call before it may be the last instruction of its
** function (a call to abort()), so look up the byte before. */
static uintptr_t lookup_ip(int i) {
  return i > 0 ? h.frames[i].ip - 1 : h.frames[i].ip;
}

static uintptr_t parse_hex(const char **p) {
  uintptr_t v = 0;
  for (;; (*p)++) {
    char c = **p;
    if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
    else return v;
  }
}

static int find_object(const char *path) {
  int i;
  size_t n = strlen(path);
  for (i = 0; i < h.nobjects; i++)
    if (strcmp(h.objects[i].path, path) == 0) return i;
  if (h.nobjects == CRASH_OBJECTS_MAX) return -1;
  if (n >= sizeof h.objects[0].path) n = 0;   /* too long to open: no path */
  memcpy(h.objects[h.nobjects].path, path, n);
  h.objects[h.nobjects].path[n] = '\0';
  return h.nobjects++;
}

/* One line of /proc/self/maps: "start-end perms offset dev inode   path".
** Frames whose address falls in it are attached to its object. */
static void maps_line(const char *line) {
  const char *p = line, *path;
  uintptr_t start, end, offset;
  int i;
  start = parse_hex(&p);
  if (*p++ != '-') return;
  end = parse_hex(&p);
  while (*p == ' ') p++;
  while (*p != ' ' && *p != '\0') p++;     /* perms */
  while (*p == ' ') p++;
  offset = parse_hex(&p);
  for (i = 0; i < 2; i++) {                 /* dev, inode */
    while (*p == ' ') p++;
    while (*p != ' ' && *p != '\0') p++;
  }
  while (*p == ' ') p++;
  if (*p == '\0') return;                   /* anonymous mapping */
  path = p;
  for (i = 0; i < h.nframes; i++) {
    native_frame *fr = &h.frames[i];
    uintptr_t ip = lookup_ip(i);
    if (fr->object < 0 && ip >= start && ip < end) {
      fr->object = find_object(path);
      fr->file_offset = fr->ip - start + offset;
    }
  }
}

/* Attaches each collected frame to its shared object (see the file
** comment: read now, with open/read only). */
static void native_objects(void) {
  size_t used = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  h.nobjects = 0;
  if (fd < 0) return;
  for (;;) {
    ssize_t n = read(fd, h.maps, sizeof h.maps);
    ssize_t i;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (i = 0; i < n; i++) {
      char c = h.maps[i];
      if (c == '\n') {
        h.line[used] = '\0';
        maps_line(h.line);
        used = 0;
      } else if (used < sizeof h.line - 1) {
        h.line[used++] = c;           /* a longer line keeps its start */
      }
    }
  }
  close(fd);
}

static int read_at(int fd, void *buf, size_t len, uintptr_t off) {
  char *p = (char *)buf;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    p += n;
    off += (uintptr_t)n;
    len -= (size_t)n;
  }
  return 1;
}

/* Names the frames of object `obj` from its ELF symbol table (.symtab when
** present, else .dynsym), read with pread in fixed chunks. libunwind's
** unw_get_proc_name would do it, but it calls malloc (libunwind 1.6,
** get_elf_image): it hangs when the crash came with the malloc lock held.
** A symbol names a frame only if the frame lies inside it, so a stripped
** object gives "??" rather than the nearest exported name. */
static void symbolize_object(int obj) {
  elf_ehdr eh;
  elf_shdr sh, symtab, strtab;
  int fd, i, have = 0, any = 0;
  uintptr_t off;
  memset(&symtab, 0, sizeof symtab);
  for (i = 0; i < h.nframes; i++) h.found[i] = 0;
  if (h.objects[obj].path[0] != '/') return;   /* [vdso] and the like */
  fd = open(h.objects[obj].path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELF_CLASS || eh.e_shentsize != sizeof(elf_shdr) ||
      eh.e_phentsize != sizeof(elf_phdr))
    goto done;
  /* file offset -> link-time address, through the PT_LOAD segment */
  for (i = 0; i < h.nframes; i++) {
    native_frame *fr = &h.frames[i];
    int k;
    if (fr->object != obj) continue;
    for (k = 0; k < eh.e_phnum; k++) {
      elf_phdr ph;
      uintptr_t fo = fr->file_offset - (fr->ip - lookup_ip(i));
      if (!read_at(fd, &ph, sizeof ph, (uintptr_t)eh.e_phoff + (uintptr_t)k * sizeof ph))
        break;
      if (ph.p_type == PT_LOAD && fo >= ph.p_offset && fo < ph.p_offset + ph.p_filesz) {
        h.vaddr[i] = fo - ph.p_offset + ph.p_vaddr;
        h.found[i] = 1;             /* 1: has an address; 2: has a symbol */
        any = 1;
        break;
      }
    }
  }
  if (!any) goto done;
  for (i = 0; i < eh.e_shnum; i++) {
    if (!read_at(fd, &sh, sizeof sh, (uintptr_t)eh.e_shoff + (uintptr_t)i * sizeof sh))
      goto done;
    if (sh.sh_type == SHT_SYMTAB || (sh.sh_type == SHT_DYNSYM && !have)) {
      symtab = sh;
      have = sh.sh_type == SHT_SYMTAB ? 2 : 1;
    }
  }
  if (!have || symtab.sh_entsize != sizeof(elf_sym) || symtab.sh_link >= eh.e_shnum ||
      !read_at(fd, &strtab, sizeof strtab,
               (uintptr_t)eh.e_shoff + (uintptr_t)symtab.sh_link * sizeof strtab))
    goto done;
  for (off = 0; off + sizeof(elf_sym) <= symtab.sh_size; ) {
    size_t want = sizeof h.syms, n, k;
    if (symtab.sh_size - off < want) want = (size_t)(symtab.sh_size - off);
    want -= want % sizeof(elf_sym);
    if (!read_at(fd, h.syms, want, (uintptr_t)symtab.sh_offset + off)) break;
    off += want;
    n = want / sizeof(elf_sym);
    for (k = 0; k < n; k++) {
      const elf_sym *sym = &h.syms[k];
      int type = ELF_ST_TYPE(sym->st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym->st_shndx == SHN_UNDEF ||
          sym->st_size == 0)
        continue;
      for (i = 0; i < h.nframes; i++) {
        uintptr_t a = h.vaddr[i];
        if (h.frames[i].object == obj && h.found[i] == 1 &&
            a >= sym->st_value && a - sym->st_value < sym->st_size) {
          h.found[i] = 2;
          h.best_name[i] = sym->st_name;
          h.best_value[i] = (uintptr_t)sym->st_value;
        }
      }
    }
  }
  for (i = 0; i < h.nframes; i++) {
    native_frame *fr = &h.frames[i];
    if (fr->object != obj || h.found[i] != 2) continue;
    if (h.best_name[i] >= strtab.sh_size) continue;
    if (!read_at(fd, fr->name, sizeof fr->name - 1,
                 (uintptr_t)strtab.sh_offset + h.best_name[i])) {
      /* near the end of the file: read what there is */
      size_t left = (size_t)(strtab.sh_size - h.best_name[i]);
      if (left > sizeof fr->name - 1) left = sizeof fr->name - 1;
      if (!read_at(fd, fr->name, left, (uintptr_t)strtab.sh_offset + h.best_name[i]))
        left = 0;
      fr->name[left] = '\0';
    }
    fr->name[sizeof fr->name - 1] = '\0';
    fr->sym_offset = h.vaddr[i] + (fr->ip - lookup_ip(i)) - h.best_value[i];
  }
done:
  close(fd);
}

static void native_symbols(void) {
  int obj;
  for (obj = 0; obj < h.nobjects; obj++) symbolize_object(obj);
}

static const char *object_name(const native_frame *fr) {
  const char *path, *base, *p;
  if (fr->object < 0) return NULL;
  path = base = h.objects[fr->object].path;
  if (*path == '\0') return NULL;
  for (p = path; *p != '\0'; p++)
    if (*p == '/' && p[1] != '\0') base = p + 1;
  return base;
}

static void native_print(void) {
  int i;
  for (i = 0; i < h.nframes; i++) {
    const native_frame *fr = &h.frames[i];
    const char *object = object_name(fr);
    out_str("  #");
    out_dec(i);
    out_char(' ');
    out_hex(fr->ip, 2 * (int)sizeof(uintptr_t));
    out_char(' ');
    if (fr->name[0] != '\0') {
      out_text(fr->name, CRASH_NAME_MAX);
      out_char('+');
      out_hex(fr->sym_offset, 1);
    } else {
      out_str("??");
    }
    if (object != NULL) {
      out_str(" (");
      out_text(object, CRASH_OBJECT_MAX);
      if (fr->name[0] == '\0') {           /* what addr2line -e wants */
        out_char('+');
        out_hex(fr->file_offset, 1);
      }
      out_char(')');
    }
    out_char('\n');
  }
  if (h.omitted > 0) {
    out_str(h.omitted_more ? "  ... more than " : "  ... ");
    out_dec((long long)h.omitted);
    out_str(" frames omitted\n");
  }
}

/* ---------------------------------------------------------- Lua frames */

/* The deepest valid level of L's stack, or -1 (lauxlib's lastlevel: a
** doubling search then a binary one, so a deep stack costs O(log n) calls). */
static int last_level(lua_State *L) {
  lua_Debug ar;
  int li = 1, le = 1;
  if (!lua_getstack(L, 0, &ar)) return -1;
  while (lua_getstack(L, le, &ar)) {
    li = le;
    if (le > INT_MAX / 2) break;
    le *= 2;
  }
  while (li < le) {
    int m = li + (le - li) / 2;
    if (lua_getstack(L, m, &ar)) li = m + 1;
    else le = m;
  }
  return le - 1;
}

/* What the frame is, in the words the trace text uses (init.lua describe). */
static void out_function(const lua_Debug *ar) {
  if (ar->name != NULL && ar->namewhat != NULL && *ar->namewhat != '\0') {
    out_str(strcmp(ar->namewhat, "global") == 0 ? "function" : ar->namewhat);
    out_str(" '");
    out_text(ar->name, CRASH_LABEL_MAX);
    out_char('\'');
  } else if (*ar->what == 'm') {
    out_str("main chunk");
  } else if (*ar->what == 'C') {
    out_str("?");
  } else {
    out_str("function <");
    out_text(ar->short_src, LUA_IDSIZE);
    out_char(':');
    out_dec(ar->linedefined);
    out_char('>');
  }
}

/* Prints the frames of coroutine `th`, innermost first; when `root_of` is
** given, its bottom frame is that fork's root function. */
static void lua_frames(lua_State *th, const as_fork *root_of) {
  lua_Debug ar;
  int level, last;
  if (th == NULL) return;
  last = last_level(th);
  for (level = 0; level <= last; level++) {
    if (h.lua_printed == CRASH_LUA_MAX) {
      out_str("  ... ");
      out_dec(last - level + 1);
      out_str(last == level ? " Lua frame omitted\n" : " Lua frames omitted\n");
      return;
    }
    if (!lua_getstack(th, level, &ar)) return;
    /* "Slnt" only: no 'f' or 'L', which push values (file comment) */
    if (!lua_getinfo(th, "Slnt", &ar)) return;
    out_str("  #");
    out_dec(h.lua_printed++);
    out_char(' ');
    if (ar.currentline > 0) {
      out_text(ar.short_src, LUA_IDSIZE);
      out_char(':');
      out_dec(ar.currentline);
    } else if (*ar.what == 'C') {
      out_str("[C]");
    } else {
      out_text(ar.short_src, LUA_IDSIZE);
    }
    out_str(" in ");
    out_function(&ar);
    if (root_of != NULL && level == last) {
      out_str("  (root of ");
      out_fork(root_of);
      out_char(')');
    }
    out_char('\n');
    if (ar.istailcall) out_str("  (...tail calls...)\n");
  }
}

/* The running fork's coroutines down to its root, then each fork that waits
** for it, and from run()'s root fork on to the code that called run(). */
static void async_section(void) {
  as_sched *s = as_sched_active;
  as_fork *f = s != NULL ? s->running : NULL;
  int forks = 0;
  h.lua_printed = 0;
  if (f == NULL) {
    out_str("async stack: no fork is running\n");
    return;
  }
  out_str("async stack (");
  out_fork(f);
  out_str("):\n");
  for (;;) {
    int depth = f->astack.depth, i;
    as_fork *w;
    if (depth > f->astack.capacity) depth = f->astack.capacity;
    for (i = depth - 1; i >= 0; i--) {
      if (i < depth - 1) out_str("  [resumed by the coroutine below]\n");
      lua_frames(f->astack.frames[i].thread, i == 0 ? f : NULL);
    }
    w = f->waiters != NULL ? f->waiters->waiter : NULL;
    if (w != NULL) {
      int others = 0;
      const as_waitnode *o;
      for (o = f->waiters->next; o != NULL && others < CRASH_FORK_MAX; o = o->next)
        others++;
      out_str("  [");
      out_fork(f);
      out_str(" awaited by ");
      out_fork(w);
      if (others > 0) {
        out_str(" and ");
        out_dec(others);
        out_str(others == 1 ? " other fork" : " other forks");
      }
      out_str("]\n");
    } else if (f == s->root) {
      out_str("  [");
      out_fork(f);
      out_str(" started by run()]\n");
      lua_frames(s->L, NULL);
      break;
    } else {
      out_str("  [");
      out_fork(f);
      out_str(" is awaited by no fork; spawned by ");
      if (f->spawner_id > 0) {
        out_str("fork #");
        out_dec((long long)f->spawner_id);
      } else {
        out_str("the scheduler");
      }
      out_str("]\n");
      break;
    }
    if (++forks == CRASH_FORK_MAX) {
      out_str("  ... more forks omitted\n");
      break;
    }
    f = w;
  }
}

/* ------------------------------------------------------------ handler */

/* Default action back, signal unblocked, raised again: for every signal we
** handle that ends the process with the signal's status and core dump. If
** raise returned all the same, the handler returns and a fault re-executes
** the faulting instruction, now with the default action. */
static void reraise(int sig) {
  struct sigaction dfl;
  sigset_t set;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
}

static void crash_handler(int sig, siginfo_t *info, void *ucontext);

/* The guarded sections rely on a fault re-entering crash_handler. When the
** report is for SIGABRT only, say, route SIGSEGV and SIGBUS there too for
** the rest of the process's life, which is short now. */
static void catch_faults_while_reporting(void) {
  static const int faults[] = {SIGSEGV, SIGBUS};
  struct sigaction sa;
  size_t i;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = crash_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < sizeof faults / sizeof faults[0]; i++)
    if (!conf.handled[faults[i]]) sigaction(faults[i], &sa, NULL);
}

static void report(int sig, const siginfo_t *info) {
  catch_faults_while_reporting();
  h.len = 0;
  report_header(sig, info);
  out_flush();                        /* should anything below go wrong */
  out_str("native stack:\n");
  if (sigsetjmp(h.jmp, 1) == 0) {
    h.guarded = 1;
    native_collect();
    native_objects();
    native_symbols();
    h.guarded = 0;
    native_print();
  } else {
    h.guarded = 0;
    native_print();
    out_str("  ... (a fault while unwinding ended the native stack here)\n");
  }
  out_flush();                        /* the riskier part comes next */
  if (sigsetjmp(h.jmp, 1) == 0) {
    h.guarded = 1;
    async_section();
    h.guarded = 0;
  } else {
    h.guarded = 0;
    out_str("  ... (a fault while reading the async stack ended it here: it was "
            "inconsistent, e.g. being changed when the signal came)\n");
  }
  out_flush();
}

static void crash_handler(int sig, siginfo_t *info, void *ucontext) {
  long tid = (long)syscall(SYS_gettid), none = 0;
  (void)ucontext;
  if (__atomic_load_n(&h.owner_tid, __ATOMIC_SEQ_CST) == tid) {
    /* a fault inside our own report */
    if (h.guarded) siglongjmp(h.jmp, 1);
    reraise(sig);
    return;
  }
  if (!__atomic_compare_exchange_n(&h.owner_tid, &none, tid, 0,
                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    /* another thread is reporting and will end the process; give it a few
    ** seconds in case it is stuck, then die of our own signal */
    struct timespec ts = {0, 100 * 1000 * 1000};
    int i;
    for (i = 0; i < 50; i++) nanosleep(&ts, NULL);
    reraise(sig);
    return;
  }
  report(sig, info);
  reraise(sig);
}

/* ------------------------------------------------------- install / uninstall */

static void restore_actions(void) {
  int sig;
  for (sig = 1; sig < NSIG; sig++) {
    if (conf.handled[sig]) {
      sigaction(sig, &conf.saved[sig], NULL);
      conf.handled[sig] = 0;
    }
  }
}

static char *altstack_base(void) {
  return conf.altstack + conf.page;
}

/* Gives the calling thread our alternate stack, mapping it on first use.
** The mapping is never unmapped: a thread that still has it as its
** alternate stack must not be left pointing at freed memory. */
static int set_altstack(void) {
  stack_t ss, old;
  if (conf.altstack == NULL) {
    long page = sysconf(_SC_PAGESIZE);
    void *p;
    if (page <= 0) page = 4096;
    p = mmap(NULL, (size_t)page + CRASH_ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 0;
    mprotect(p, (size_t)page, PROT_NONE);   /* guard page below the stack */
    conf.altstack = (char *)p;
    conf.page = (size_t)page;
  }
  if (sigaltstack(NULL, &old) != 0) return 0;
  if (!(old.ss_flags & SS_DISABLE) && old.ss_sp == (void *)altstack_base())
    return 1;                               /* already ours */
  ss.ss_sp = altstack_base();
  ss.ss_size = CRASH_ALTSTACK_SIZE;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, NULL) != 0) return 0;
  conf.saved_altstack = old;
  conf.altstack_set = 1;
  return 1;
}

static void restore_altstack(void) {
  stack_t cur;
  if (!conf.altstack_set) return;
  conf.altstack_set = 0;
  /* only if this thread has ours and is not running on it */
  if (sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & (SS_DISABLE | SS_ONSTACK)) ||
      cur.ss_sp != (void *)altstack_base())
    return;
  if (conf.saved_altstack.ss_flags & SS_DISABLE) {
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
  } else {
    sigaltstack(&conf.saved_altstack, NULL);
  }
}

static void uninstall_all(void) {
  restore_actions();
  restore_altstack();
  conf.installed = 0;
  conf.owner = NULL;
}

/* libunwind sets itself up on first use (its caches, and the pipe it probes
** memory with, under a lock taken with signals blocked): have that happen
** now, outside any signal handler. No unw_step here: its memory probes
** (write(2) of the address to that pipe) look like errors to valgrind. */
static void warm_up_unwinder(void) {
  unw_context_t context;
  unw_cursor_t cursor;
  unw_proc_info_t pi;
  if (unw_getcontext(&context) != 0 || unw_init_local(&cursor, &context) != 0) return;
  (void)unw_get_proc_info(&cursor, &pi);
  (void)unw_is_signal_frame(&cursor);
}

static int crash_guard_gc(lua_State *L) {
  if (conf.installed && conf.owner == lua_touserdata(L, 1)) uninstall_all();
  return 0;
}

static const char crash_guard_key = 'G';  /* its address keys the registry */

/* The state's guard userdata, created on first use (may raise: memory). */
static const void *crash_guard(lua_State *L) {
  const void *g;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &crash_guard_key) == LUA_TUSERDATA) {
    g = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return g;
  }
  lua_pop(L, 1);
  g = lua_newuserdatauv(L, 1, 0);
  if (luaL_newmetatable(L, CRASH_GUARD_MT)) {
    lua_pushcfunction(L, crash_guard_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &crash_guard_key);
  return g;
}

static int install_error(lua_State *L, const char *detail) {
  return luaL_error(L, "bad argument #1 to 'install' (%s)", detail);
}

static void read_signals(lua_State *L, int idx, unsigned char want[NSIG]) {
  lua_Integer n, i;
  if (!lua_istable(L, idx))
    install_error(L, lua_pushfstring(L, "field 'signals': table expected, got %s",
                                     luaL_typename(L, idx)));
  n = (lua_Integer)lua_rawlen(L, idx);
  if (n == 0) install_error(L, "field 'signals': at least one signal name expected");
  for (i = 1; i <= n; i++) {
    const char *name;
    int k;
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      install_error(L, lua_pushfstring(L, "field 'signals': signal name expected at "
                                       "index %I, got %s", (LUAI_UACINT)i,
                                       luaL_typename(L, -1)));
    name = lua_tostring(L, -1);
    for (k = 0; k < N_KNOWN; k++) {
      if (strcmp(name, known_signals[k].name) == 0) {
        want[known_signals[k].sig] = 1;
        break;
      }
    }
    if (k == N_KNOWN)
      install_error(L, lua_pushfstring(L, "field 'signals': '%s' is not one of SIGSEGV, "
                                       "SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS",
                                       name));
    lua_pop(L, 1);
  }
}

static int read_fd(lua_State *L, int idx) {
  int isint;
  lua_Integer fd = lua_tointegerx(L, idx, &isint);
  if (!isint || lua_type(L, idx) != LUA_TNUMBER || fd < 0 || fd > INT_MAX) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      install_error(L, lua_pushfstring(L, "field 'fd': non-negative integer expected, "
                                       "got %s", lua_tostring(L, idx)));
    install_error(L, lua_pushfstring(L, "field 'fd': non-negative integer expected, "
                                     "got %s", luaL_typename(L, idx)));
  }
  if (fcntl((int)fd, F_GETFD) == -1)
    install_error(L, lua_pushfstring(L, "field 'fd': %I is not an open file descriptor",
                                     (LUAI_UACINT)fd));
  return (int)fd;
}

/* Reads install's options table at index 1 into `want` and `fd`. */
static void read_options(lua_State *L, unsigned char want[NSIG], int *fd) {
  int i;
  memset(want, 0, NSIG);
  for (i = 0; i < N_DEFAULT; i++) want[known_signals[i].sig] = 1;
  *fd = 2;
  if (lua_isnoneornil(L, 1)) return;
  if (!lua_istable(L, 1))
    install_error(L, lua_pushfstring(L, "table expected, got %s", luaL_typename(L, 1)));
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING ||
        (strcmp(lua_tostring(L, -1), "signals") != 0 && strcmp(lua_tostring(L, -1), "fd") != 0)) {
      if (lua_type(L, -1) == LUA_TSTRING)
        install_error(L, lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -1)));
      install_error(L, lua_pushfstring(L, "unknown option (a %s key)", luaL_typename(L, -1)));
    }
  }
  if (lua_getfield(L, 1, "signals") != LUA_TNIL) {
    memset(want, 0, NSIG);
    read_signals(L, 2, want);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "fd") != LUA_TNIL) *fd = read_fd(L, 2);
  lua_pop(L, 1);
}

/* as.crash.install([opts]) -> true | nil, message. A second call replaces
** the first one's configuration. */
static int crash_install(lua_State *L) {
  unsigned char want[NSIG];
  int fd, sig;
  struct sigaction sa;
  const void *guard;
  read_options(L, want, &fd);
  guard = crash_guard(L);             /* may raise: before any change */
  if (!set_altstack()) {
    int err = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "install: cannot set up the alternate signal stack (%s)",
                    strerror(err));
    return 2;
  }
  warm_up_unwinder();
  if (conf.installed) restore_actions();
  conf.fd = fd;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = crash_handler;
  /* SA_NODEFER: a fault while reading the async stack re-enters the handler,
  ** which jumps back (see report). Other signals wait until we are done. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigfillset(&sa.sa_mask);
  for (sig = 0; sig < N_KNOWN; sig++) sigdelset(&sa.sa_mask, known_signals[sig].sig);
  for (sig = 1; sig < NSIG; sig++) {
    if (!want[sig]) continue;
    if (sigaction(sig, &sa, &conf.saved[sig]) != 0) {
      int err = errno;
      uninstall_all();
      luaL_pushfail(L);
      lua_pushfstring(L, "install: cannot handle %s (%s)", signal_name(sig), strerror(err));
      return 2;
    }
    conf.handled[sig] = 1;
  }
  conf.installed = 1;
  conf.owner = guard;
  lua_pushboolean(L, 1);
  return 1;
}

/* as.crash.uninstall() -> true if a handler was installed. */
static int crash_uninstall(lua_State *L) {
  int was = conf.installed;
  if (was) uninstall_all();
  lua_pushboolean(L, was);
  return 1;
}

void as_crash_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"crash_install", crash_install}, {"crash_uninstall", crash_uninstall},
    {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
