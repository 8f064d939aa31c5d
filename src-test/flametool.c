/*
** flametool.c: src/flame.c driven from a plain C program with no Lua (issue
** 16: the output formats are for C tools too, e.g. `asyncstack record`).
** Reads folded stacks ("a;b;c 12" per line) from stdin, adds them to an
** aggregator and writes it to stdout as `folded`, `speedscope` or `svg`.
** Built into build/test/ by `make test-helpers`; spec/profile_flame_spec.lua
** runs it. Never installed.
**
**   flametool folded|speedscope|svg [title]
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../src/flame.h"

#define MAX_FRAMES 512

int main(int argc, char **argv) {
  char line[65536];
  const char *frames[MAX_FRAMES];
  as_flame *f;
  int r = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: flametool folded|speedscope|svg [title]\n");
    return 2;
  }
  f = as_flame_new();
  if (f == NULL) return 1;
  while (fgets(line, sizeof line, stdin) != NULL) {
    char *space = strrchr(line, ' '), *p;
    int n = 0;
    unsigned long long count;
    if (space == NULL) continue;
    *space = '\0';
    count = strtoull(space + 1, NULL, 10);
    for (p = strtok(line, ";"); p != NULL && n < MAX_FRAMES; p = strtok(NULL, ";"))
      frames[n++] = p;
    if (as_flame_add(f, frames, n, count) != 0) return 1;
  }
  if (strcmp(argv[1], "folded") == 0)
    r = as_flame_folded(f, as_flame_file_writer, stdout);
  else if (strcmp(argv[1], "speedscope") == 0)
    r = as_flame_speedscope(f, argc > 2 ? argv[2] : NULL, 0, as_flame_file_writer, stdout);
  else if (strcmp(argv[1], "svg") == 0)
    r = as_flame_svg(f, argc > 2 ? argv[2] : NULL, NULL, as_flame_file_writer, stdout);
  else
    r = 2;
  fprintf(stderr, "flametool: %llu samples, %zu frames, %zu stacks\n",
          as_flame_total(f), as_flame_nframes(f), as_flame_nstacks(f));
  as_flame_free(f);
  return r != 0 || ferror(stdout) ? 1 : 0;
}
