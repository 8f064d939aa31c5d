/*
** symbolize.c: the native half of the crash report: the interrupted code's
** instruction pointers (libunwind, local unwinding), the shared object each
** lies in (/proc/self/maps) and the function containing it (the object's
** ELF symbol table). See symbolize.h for why each step is safe in a signal
** handler.
**
** All scratch space is static (the alternate signal stack is small): one
** caller at a time, which the crash handler guarantees (it admits one
** reporting thread).
*/
#define _DEFAULT_SOURCE
#define UNW_LOCAL_ONLY
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <libunwind.h>

#include "symbolize.h"

#define NATIVE_COUNT    100000   /* frames counted past those printed, at most */
#define NAME_MAX_CHARS  160      /* chars kept of a native function name */
#define OBJECT_CHARS    96       /* chars printed of a shared object name */
#define OBJECTS_MAX     32       /* distinct shared objects in one stack */

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


typedef struct native_frame {
  uintptr_t ip;
  int object;                       /* index in ns.objects, or -1 */
  uintptr_t file_offset;            /* ip as an offset into the object's file */
  uintptr_t sym_offset;             /* ip - start of the function `name` */
  char name[NAME_MAX_CHARS];        /* "" when no symbol contains ip */
} native_frame;

typedef struct native_object {
  char path[256];                   /* from /proc/self/maps ("" if too long) */
} native_object;

static struct {
  unw_context_t context;
  unw_cursor_t cursor;
  native_frame frames[AS_NATIVE_MAX];
  int nframes;
  unsigned long omitted;            /* native frames past the cap */
  int omitted_more;                 /* ... and counting stopped */
  native_object objects[OBJECTS_MAX];
  int nobjects;
  char maps[4096];                  /* /proc/self/maps read buffer */
  char line[512];                   /* one maps line (longer ones truncated) */
  elf_sym syms[4096 / sizeof(elf_sym)];  /* symbol table read buffer */
  uintptr_t vaddr[AS_NATIVE_MAX];        /* lookup_ip as a link-time address */
  uint32_t best_name[AS_NATIVE_MAX];     /* st_name of its symbol */
  uintptr_t best_value[AS_NATIVE_MAX];
  unsigned char found[AS_NATIVE_MAX];
} ns;

/* ------------------------------------------------------ native frames */

/* Collects the instruction pointers of the interrupted code into ns.frames.
** The unwind starts here; the frames up to the kernel's signal trampoline
** are the handler's own and are skipped. */
void as_native_collect(void) {
  int i, skip = -1;
  ns.nframes = 0;
  ns.omitted = 0;
  ns.omitted_more = 0;
  if (unw_getcontext(&ns.context) != 0 || unw_init_local(&ns.cursor, &ns.context) != 0)
    return;
  for (i = 0; i < 16; i++) {
    unw_proc_info_t pi;
    /* unw_is_signal_frame reads what the proc-info lookup of this frame
    ** found; without this lookup it answers for the previous frame */
    (void)unw_get_proc_info(&ns.cursor, &pi);
    if (unw_is_signal_frame(&ns.cursor) > 0) {
      skip = i;
      break;
    }
    if (unw_step(&ns.cursor) <= 0) break;
  }
  /* no trampoline found (unusual unwind info): show everything */
  if (unw_init_local(&ns.cursor, &ns.context) != 0) return;
  for (i = 0; i <= skip; i++)
    if (unw_step(&ns.cursor) <= 0) return;
  for (;;) {
    native_frame *fr = &ns.frames[ns.nframes];
    unw_word_t ip = 0;
    unw_get_reg(&ns.cursor, UNW_REG_IP, &ip);
    fr->ip = (uintptr_t)ip;
    fr->object = -1;
    fr->name[0] = '\0';
    ns.nframes++;
    if (unw_step(&ns.cursor) <= 0) return;
    if (ns.nframes == AS_NATIVE_MAX) break;
  }
  for (;;) {                          /* count what is not printed */
    ns.omitted++;
    if (unw_step(&ns.cursor) <= 0) return;
    if (ns.omitted == NATIVE_COUNT) {
      ns.omitted_more = 1;
      return;
    }
  }
}

/* The address to look frame i up by: past the first frame ip is a return
** address, and the call before it may be the last instruction of its
** function (a call to abort()), so look up the byte before. */
static uintptr_t lookup_ip(int i) {
  return i > 0 ? ns.frames[i].ip - 1 : ns.frames[i].ip;
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
  for (i = 0; i < ns.nobjects; i++)
    if (strcmp(ns.objects[i].path, path) == 0) return i;
  if (ns.nobjects == OBJECTS_MAX) return -1;
  if (n >= sizeof ns.objects[0].path) n = 0;   /* too long to open: no path */
  memcpy(ns.objects[ns.nobjects].path, path, n);
  ns.objects[ns.nobjects].path[n] = '\0';
  return ns.nobjects++;
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
  for (i = 0; i < ns.nframes; i++) {
    native_frame *fr = &ns.frames[i];
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
  ns.nobjects = 0;
  if (fd < 0) return;
  for (;;) {
    ssize_t n = read(fd, ns.maps, sizeof ns.maps);
    ssize_t i;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (i = 0; i < n; i++) {
      char c = ns.maps[i];
      if (c == '\n') {
        ns.line[used] = '\0';
        maps_line(ns.line);
        used = 0;
      } else if (used < sizeof ns.line - 1) {
        ns.line[used++] = c;           /* a longer line keeps its start */
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
  for (i = 0; i < ns.nframes; i++) ns.found[i] = 0;
  if (ns.objects[obj].path[0] != '/') return;   /* [vdso] and the like */
  fd = open(ns.objects[obj].path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELF_CLASS || eh.e_shentsize != sizeof(elf_shdr) ||
      eh.e_phentsize != sizeof(elf_phdr))
    goto done;
  /* file offset -> link-time address, through the PT_LOAD segment */
  for (i = 0; i < ns.nframes; i++) {
    native_frame *fr = &ns.frames[i];
    int k;
    if (fr->object != obj) continue;
    for (k = 0; k < eh.e_phnum; k++) {
      elf_phdr ph;
      uintptr_t fo = fr->file_offset - (fr->ip - lookup_ip(i));
      if (!read_at(fd, &ph, sizeof ph, (uintptr_t)eh.e_phoff + (uintptr_t)k * sizeof ph))
        break;
      if (ph.p_type == PT_LOAD && fo >= ph.p_offset && fo < ph.p_offset + ph.p_filesz) {
        ns.vaddr[i] = fo - ph.p_offset + ph.p_vaddr;
        ns.found[i] = 1;             /* 1: has an address; 2: has a symbol */
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
    size_t want = sizeof ns.syms, n, k;
    if (symtab.sh_size - off < want) want = (size_t)(symtab.sh_size - off);
    want -= want % sizeof(elf_sym);
    if (!read_at(fd, ns.syms, want, (uintptr_t)symtab.sh_offset + off)) break;
    off += want;
    n = want / sizeof(elf_sym);
    for (k = 0; k < n; k++) {
      const elf_sym *sym = &ns.syms[k];
      int type = ELF_ST_TYPE(sym->st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym->st_shndx == SHN_UNDEF ||
          sym->st_size == 0)
        continue;
      for (i = 0; i < ns.nframes; i++) {
        uintptr_t a = ns.vaddr[i];
        if (ns.frames[i].object == obj && ns.found[i] == 1 &&
            a >= sym->st_value && a - sym->st_value < sym->st_size) {
          ns.found[i] = 2;
          ns.best_name[i] = sym->st_name;
          ns.best_value[i] = (uintptr_t)sym->st_value;
        }
      }
    }
  }
  for (i = 0; i < ns.nframes; i++) {
    native_frame *fr = &ns.frames[i];
    if (fr->object != obj || ns.found[i] != 2) continue;
    if (ns.best_name[i] >= strtab.sh_size) continue;
    if (!read_at(fd, fr->name, sizeof fr->name - 1,
                 (uintptr_t)strtab.sh_offset + ns.best_name[i])) {
      /* near the end of the file: read what there is */
      size_t left = (size_t)(strtab.sh_size - ns.best_name[i]);
      if (left > sizeof fr->name - 1) left = sizeof fr->name - 1;
      if (!read_at(fd, fr->name, left, (uintptr_t)strtab.sh_offset + ns.best_name[i]))
        left = 0;
      fr->name[left] = '\0';
    }
    fr->name[sizeof fr->name - 1] = '\0';
    fr->sym_offset = ns.vaddr[i] + (fr->ip - lookup_ip(i)) - ns.best_value[i];
  }
done:
  close(fd);
}

static void native_symbols(void) {
  int obj;
  for (obj = 0; obj < ns.nobjects; obj++) symbolize_object(obj);
}

static const char *object_name(const native_frame *fr) {
  const char *path, *base, *p;
  if (fr->object < 0) return NULL;
  path = base = ns.objects[fr->object].path;
  if (*path == '\0') return NULL;
  for (p = path; *p != '\0'; p++)
    if (*p == '/' && p[1] != '\0') base = p + 1;
  return base;
}

void as_native_print(as_sigsafe *w) {
  int i;
  for (i = 0; i < ns.nframes; i++) {
    const native_frame *fr = &ns.frames[i];
    const char *object = object_name(fr);
    as_sigsafe_str(w, "  #");
    as_sigsafe_dec(w, i);
    as_sigsafe_char(w, ' ');
    as_sigsafe_hex(w, fr->ip, 2 * (int)sizeof(uintptr_t));
    as_sigsafe_char(w, ' ');
    if (fr->name[0] != '\0') {
      as_sigsafe_text(w, fr->name, NAME_MAX_CHARS);
      as_sigsafe_char(w, '+');
      as_sigsafe_hex(w, fr->sym_offset, 1);
    } else {
      as_sigsafe_str(w, "??");
    }
    if (object != NULL) {
      as_sigsafe_str(w, " (");
      as_sigsafe_text(w, object, OBJECT_CHARS);
      if (fr->name[0] == '\0') {           /* what addr2line -e wants */
        as_sigsafe_char(w, '+');
        as_sigsafe_hex(w, fr->file_offset, 1);
      }
      as_sigsafe_char(w, ')');
    }
    as_sigsafe_char(w, '\n');
  }
  if (ns.omitted > 0) {
    as_sigsafe_str(w, ns.omitted_more ? "  ... more than " : "  ... ");
    as_sigsafe_dec(w, (long long)ns.omitted);
    as_sigsafe_str(w, " frames omitted\n");
  }
}


void as_native_resolve(void) {
  native_objects();
  native_symbols();
}

/* libunwind sets itself up on first use (its caches, and the pipe it probes
** memory with, under a lock taken with signals blocked): have that happen
** now, outside any signal handler. No unw_step here: its memory probes
** (write(2) of the address to that pipe) look like errors to valgrind. */
void as_native_warm_up(void) {
  unw_context_t context;
  unw_cursor_t cursor;
  unw_proc_info_t pi;
  if (unw_getcontext(&context) != 0 || unw_init_local(&cursor, &context) != 0) return;
  (void)unw_get_proc_info(&cursor, &pi);
  (void)unw_is_signal_frame(&cursor);
}

