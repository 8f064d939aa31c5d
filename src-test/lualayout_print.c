/*
** lualayout_print.c: prints the stated layout of src/lualayout.c for one
** release ("lualayout_print 4" for 5.4.4) in the format of
** lualayout_facts.c, so `make test-lua-versions` can diff the two.
** Test tool only.
*/
#include <stdio.h>
#include <stdlib.h>
#include "lualayout.h"

int main(int argc, char **argv) {
  const as_lualayout *lay;
  unsigned i;
  if (argc != 2 || (lay = as_lualayout_for_release(atoi(argv[1]))) == NULL) {
    fprintf(stderr, "usage: lualayout_print MINOR (0-8)\n");
    return 2;
  }
#define AS_PRINT_FIELD(name) printf("%s %u\n", #name, lay->name);
  AS_LUALAYOUT_FIELDS(AS_PRINT_FIELD)
#undef AS_PRINT_FIELD
  printf("opmodes");
  for (i = 0; i < lay->num_opcodes && i < AS_LUALAYOUT_MAX_OPCODES; i++)
    printf(" %u", (unsigned)lay->opmodes[i]);
  printf("\n");
  return 0;
}
