/*
** elffile.c: a section of an ELF file on disk, by name (see elffile.h).
*/
#define _GNU_SOURCE
#include <elf.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <fcntl.h>
#include "elffile.h"

#define MAX_SECTIONS 4096
#define MAX_SEGMENTS 512

static int read_at(int fd, uint64_t off, void *buf, size_t n) {
  ssize_t got = pread(fd, buf, n, (off_t)off);
  return got == (ssize_t)n ? 0 : -1;
}

int tool_elf_find_section(const char *path, const char *name,
                          tool_elf_section *out) {
  Elf64_Ehdr eh;
  Elf64_Shdr strsh, sh;
  size_t namelen = strlen(name);
  int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0, i;
  if (fd < 0) return -1;
  memset(out, 0, sizeof *out);
  if (read_at(fd, 0, &eh, sizeof eh) != 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof sh ||
      eh.e_shnum == 0 || eh.e_shnum > MAX_SECTIONS || eh.e_shstrndx >= eh.e_shnum ||
      read_at(fd, eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof sh, &strsh, sizeof strsh) != 0) {
    close(fd);
    return 0;
  }
  for (i = 0; i < eh.e_shnum && !found; i++) {
    char buf[64];
    if (read_at(fd, eh.e_shoff + (uint64_t)i * sizeof sh, &sh, sizeof sh) != 0) break;
    if (namelen + 1 > sizeof buf || sh.sh_name >= strsh.sh_size ||
        read_at(fd, strsh.sh_offset + sh.sh_name, buf, namelen + 1) != 0)
      continue;
    if (memcmp(buf, name, namelen + 1) == 0) {
      out->addr = sh.sh_addr;
      out->size = sh.sh_size;
      found = 1;
    }
  }
  if (found && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum <= MAX_SEGMENTS) {
    for (i = 0; i < eh.e_phnum; i++) {
      Elf64_Phdr ph;
      if (read_at(fd, eh.e_phoff + (uint64_t)i * sizeof ph, &ph, sizeof ph) != 0) break;
      if (ph.p_type == PT_LOAD && ph.p_offset == 0) {
        out->first_vaddr = ph.p_vaddr & ~(uint64_t)0xfff;
        break;
      }
    }
  }
  close(fd);
  return found;
}
