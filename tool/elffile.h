/*
** elffile.h: what the `asyncstack` command needs from an ELF file on disk
** (tool/): where a named section lies (the debug descriptor's
** "asyncstack_debug", debuglayout.h) and the address its first loadable
** segment asks for, so the section's run-time address is the file's load
** base plus its address. Reads the headers only, trusts none of them.
*/
#ifndef ASYNCSTACK_TOOL_ELFFILE_H
#define ASYNCSTACK_TOOL_ELFFILE_H

#include <stdint.h>

typedef struct tool_elf_section {
  uint64_t addr;         /* sh_addr: relative to the load base for a .so */
  uint64_t size;
  uint64_t first_vaddr;  /* page-aligned p_vaddr of the PT_LOAD at offset 0 */
} tool_elf_section;

/* 1 and *out filled when `path` is a 64-bit ELF file with section `name`,
** 0 when it has none (or is no such ELF file), -1 when it cannot be read. */
int tool_elf_find_section(const char *path, const char *name,
                          tool_elf_section *out);

#endif
