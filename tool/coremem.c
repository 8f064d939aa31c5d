/*
** coremem.c: a process's memory from its ELF core file (see coremem.h).
*/
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "coremem.h"
#include "elffile.h"
#include "debuglayout.h"

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif


static const unsigned char *map_file(const char *path, size_t *size) {
  struct stat st;
  void *m;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    close(fd);
    return NULL;
  }
  m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return NULL;
  *size = (size_t)st.st_size;
  return (const unsigned char *)m;
}

/* Whether [off, off + len) lies inside the core. */
static int in_core(const tool_core *c, uint64_t off, uint64_t len) {
  return off <= c->size && len <= c->size - off;
}

/* The NT_FILE note: count, page size, count (start, end, page offset)
** triples, then count NUL-terminated paths. */
static int read_nt_file(tool_core *c, const unsigned char *d, uint64_t n) {
  uint64_t count, page, i, pos;
  if (n < 16) return -1;
  memcpy(&count, d, 8);
  memcpy(&page, d + 8, 8);
  if (count > n / 24 || page == 0 || page > (1u << 30)) return -1;
  c->files = calloc((size_t)count ? (size_t)count : 1, sizeof *c->files);
  if (c->files == NULL) return -1;
  pos = 16 + count * 24;
  for (i = 0; i < count; i++) {
    tool_core_file *f = &c->files[i];
    const unsigned char *e = d + 16 + i * 24;
    const unsigned char *end;
    memcpy(&f->start, e, 8);
    memcpy(&f->end, e + 8, 8);
    memcpy(&f->offset, e + 16, 8);
    f->offset *= page;
    if (pos >= n) break;
    end = memchr(d + pos, '\0', (size_t)(n - pos));
    if (end == NULL) break;
    f->path = strndup((const char *)d + pos, (size_t)(end - (d + pos)));
    pos = (uint64_t)(end - d) + 1;
    c->nfiles = (int)i + 1;
  }
  return 0;
}

static void read_notes(tool_core *c, uint64_t off, uint64_t len) {
  uint64_t pos = 0;
  const unsigned char *d = c->data + off;
  while (pos + 12 <= len) {
    uint32_t namesz, descsz, type;
    uint64_t desc;
    memcpy(&namesz, d + pos, 4);
    memcpy(&descsz, d + pos + 4, 4);
    memcpy(&type, d + pos + 8, 4);
    desc = pos + 12 + ((namesz + 3u) & ~3u);
    if (desc > len || descsz > len - desc) break;
    if (namesz == 5 && memcmp(d + pos + 12, "CORE", 5) == 0) {
      if (type == NT_FILE && c->files == NULL) read_nt_file(c, d + desc, descsz);
      else if (type == NT_PRSTATUS && c->pid == 0 && descsz >= 36)
        memcpy(&c->pid, d + desc + 32, 4);   /* elf_prstatus.pr_pid (x86_64) */
    }
    pos = desc + ((descsz + 3u) & ~3u);
  }
}

int tool_core_open(tool_core *c, const char *path, const char *exe, char *err,
                   size_t errsize) {
  Elf64_Ehdr eh;
  int i;
  memset(c, 0, sizeof *c);
  c->exe = exe;
  c->data = map_file(path, &c->size);
  if (c->data == NULL) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
      snprintf(err, errsize, "%s: not an ELF core file (it is empty)", path);
    else
      snprintf(err, errsize, "cannot open core file %s: %s", path,
               stat(path, &st) == 0 && !S_ISREG(st.st_mode) ? "not a regular file"
                                                             : strerror(errno));
    return -1;
  }
  if (c->size < sizeof eh || memcmp(c->data, ELFMAG, SELFMAG) != 0) {
    snprintf(err, errsize, "%s: not an ELF core file (no ELF header)", path);
    return -1;
  }
  memcpy(&eh, c->data, sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64) {
    snprintf(err, errsize, "%s: an ELF file of another machine (this tool reads "
                           "x86_64 cores)", path);
    return -1;
  }
  if (eh.e_type != ET_CORE) {
    snprintf(err, errsize, "%s: an ELF file but not a core file (type %s)", path,
             eh.e_type == ET_EXEC ? "executable" : eh.e_type == ET_DYN ? "shared object"
             : eh.e_type == ET_REL ? "relocatable" : "unknown");
    return -1;
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
      !in_core(c, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr))) {
    snprintf(err, errsize, "%s: truncated core file (its program headers are "
                           "missing)", path);
    return -1;
  }
  c->segs = calloc(eh.e_phnum, sizeof *c->segs);
  if (c->segs == NULL) {
    snprintf(err, errsize, "out of memory");
    return -1;
  }
  for (i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, c->data + eh.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD || ph.p_type == PT_NOTE) {
      if (!in_core(c, ph.p_offset, ph.p_filesz)) {
        snprintf(err, errsize, "%s: truncated core file (it has %zu bytes; its "
                               "segment at 0x%llx needs %llu)", path, c->size,
                 (unsigned long long)ph.p_vaddr,
                 (unsigned long long)(ph.p_offset + ph.p_filesz));
        return -1;
      }
    }
    if (ph.p_type == PT_NOTE) read_notes(c, ph.p_offset, ph.p_filesz);
    if (ph.p_type == PT_LOAD) {
      tool_core_seg *s = &c->segs[c->nsegs++];
      s->vaddr = ph.p_vaddr;
      s->memsz = ph.p_memsz;
      s->offset = ph.p_offset;
      s->filesz = ph.p_filesz;
    }
  }
  if (c->nsegs == 0) {
    snprintf(err, errsize, "%s: a core file without memory segments", path);
    return -1;
  }
  return 0;
}

/* The file mapped at addr (from NT_FILE), or NULL. */
static tool_core_file *file_at(tool_core *c, uint64_t addr) {
  int i;
  for (i = 0; i < c->nfiles; i++)
    if (addr >= c->files[i].start && addr < c->files[i].end) return &c->files[i];
  return NULL;
}

/* The path to open for file f: --exe replaces the executable's (the first
** file of the note, mapped lowest by the kernel and gdb alike). */
static const char *file_path(const tool_core *c, const tool_core_file *f) {
  if (c->exe != NULL && c->nfiles > 0 && c->files[0].path != NULL && f->path != NULL &&
      strcmp(f->path, c->files[0].path) == 0)
    return c->exe;
  return f->path;
}

/* Copies up to `length` bytes at addr; returns how many (0: unreadable). */
static size_t read_some(tool_core *c, uint64_t addr, size_t length, unsigned char *out) {
  int i;
  for (i = 0; i < c->nsegs; i++) {
    const tool_core_seg *s = &c->segs[i];
    uint64_t rel, n;
    if (addr < s->vaddr || addr - s->vaddr >= s->memsz) continue;
    rel = addr - s->vaddr;
    if (rel < s->filesz) {            /* dumped */
      n = s->filesz - rel < length ? s->filesz - rel : length;
      memcpy(out, c->data + s->offset + rel, (size_t)n);
      return (size_t)n;
    }
    break;                            /* left out of the core */
  }
  {
    tool_core_file *f = file_at(c, addr);
    uint64_t off, n;
    if (f != NULL) {
      if (!f->tried) {
        const char *p = file_path(c, f);
        f->tried = 1;
        if (p != NULL) f->data = map_file(p, &f->size);
      }
      off = f->offset + (addr - f->start);
      if (f->data == NULL || off >= f->size) return 0;
      n = f->size - off < length ? f->size - off : length;
      if (n > f->end - addr) n = f->end - addr;
      memcpy(out, f->data + off, (size_t)n);
      return (size_t)n;
    }
    if (i < c->nsegs) {               /* anonymous memory never dumped: zeros */
      const tool_core_seg *s = &c->segs[i];
      n = s->vaddr + s->memsz - addr < length ? s->vaddr + s->memsz - addr : length;
      memset(out, 0, (size_t)n);
      return (size_t)n;
    }
  }
  return 0;
}

int tool_core_read(void *ctx, uintptr_t address, size_t length, void *out) {
  tool_core *c = (tool_core *)ctx;
  unsigned char *o = (unsigned char *)out;
  uint64_t addr = address;
  if (addr + length < addr) return -1;
  while (length > 0) {
    size_t n = read_some(c, addr, length, o);
    if (n == 0) return -1;
    o += n;
    addr += n;
    length -= n;
  }
  return 0;
}

/* A descriptor in the core's own memory, found by its magic, verified:
** for a core whose library file is not at hand. It lives in core.so's data
** segment: segments larger than SCAN_SEGMENT_MAX (heaps, the shadow memory
** of a sanitizer's process, terabytes in a sparse core) are not searched. */
#define SCAN_SEGMENT_MAX ((uint64_t)16 << 20)

static uint64_t scan_for_descriptor(tool_core *c) {
  int i;
  for (i = 0; i < c->nsegs; i++) {
    const tool_core_seg *s = &c->segs[i];
    const unsigned char *d = c->data + s->offset;
    uint64_t pos = 0;
    if (s->filesz > SCAN_SEGMENT_MAX) continue;
    while (pos + sizeof(as_debug_descriptor) <= s->filesz) {
      const unsigned char *hit = memmem(d + pos, (size_t)(s->filesz - pos),
                                        AS_DEBUG_MAGIC, 16);
      uint32_t status;
      if (hit == NULL) break;
      pos = (uint64_t)(hit - d);
      if ((pos & 7) == 0 && pos + sizeof(as_debug_descriptor) <= s->filesz) {
        memcpy(&status, hit + offsetof(as_debug_descriptor, status), 4);
        if (status == AS_DEBUG_VERIFIED) return s->vaddr + pos;
      }
      pos++;
    }
  }
  return 0;
}

uint64_t tool_core_find_descriptor(tool_core *c, char *err, size_t errsize) {
  int i, j;
  uint64_t found;
  for (i = 0; i < c->nfiles; i++) {
    const tool_core_file *f = &c->files[i];
    const char *path = file_path(c, f);
    tool_elf_section sec;
    int seen = 0;
    if (path == NULL || f->offset != 0) continue;
    for (j = 0; j < i && !seen; j++)
      seen = c->files[j].path != NULL && c->files[j].offset == 0 &&
             strcmp(c->files[j].path, f->path) == 0;
    if (seen) continue;
    if (tool_elf_find_section(path, AS_DEBUG_SECTION, &sec) == 1 && sec.size > 0) {
      snprintf(c->library, sizeof c->library, "%s", path);
      return f->start - sec.first_vaddr + sec.addr;
    }
  }
  found = scan_for_descriptor(c);
  if (found != 0) {
    snprintf(c->library, sizeof c->library, "(found in the core's memory)");
    return found;
  }
  snprintf(err, errsize,
           "the core's process had no asyncstack loaded (no file it mapped has an "
           AS_DEBUG_SECTION " section%s)",
           c->nfiles == 0 ? "; the core has no NT_FILE note" : "");
  return 0;
}

void tool_core_close(tool_core *c) {
  int i;
  for (i = 0; i < c->nfiles; i++) {
    free(c->files[i].path);
    if (c->files[i].data != NULL) munmap((void *)c->files[i].data, c->files[i].size);
  }
  free(c->files);
  free(c->segs);
  if (c->data != NULL) munmap((void *)c->data, c->size);
  memset(c, 0, sizeof *c);
}
