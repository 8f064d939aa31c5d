/*
** memwalk_loaded.c: the global name of a function, found in package.loaded
** from memory as luaL_traceback finds it (memwalk.h as_memwalk_global_name).
*/
#include "memwalk_internal.h"



/* ------------------------------------------------------------ package.loaded */

/* The node part of table `t`: its first node and its size (2^lsizenode). */
static int table_nodes(walker *w, uintptr_t t, uintptr_t *node, int *size) {
  unsigned char lsize;
  if (!as_mw_gc_ok(t) || as_mw_rd_byte(w, t + w->lay->t_lsizenode, &lsize) != 0 ||
      lsize > AS_MEMWALK_MAX_LSIZENODE || as_mw_rd_ptr(w, t + w->lay->t_node, node) != 0 ||
      !as_mw_gc_ok(*node))
    return -1;
  *size = 1 << lsize;
  return 0;
}

/* One node: its key's tag and payload, its value's tag and payload. */
typedef struct nodeinfo {
  unsigned char key_tt, val_tt;
  uintptr_t key, val;
} nodeinfo;

static int read_node(walker *w, uintptr_t node, int i, nodeinfo *ni) {
  const as_lualayout *lay = w->lay;
  unsigned char buf[64];
  uint64_t v;
  if (lay->size_Node > sizeof buf ||
      as_mw_rd(w, node + (uintptr_t)i * lay->size_Node, lay->size_Node, buf) != 0)
    return -1;
  ni->key_tt = buf[lay->node_key_tt];
  ni->val_tt = buf[lay->node_val + lay->tv_tt];
  memcpy(&v, buf + lay->node_key_val, 8); ni->key = (uintptr_t)v;
  memcpy(&v, buf + lay->node_val + lay->tv_value, 8); ni->val = (uintptr_t)v;
  return 0;
}

static int is_string_tag(const as_lualayout *lay, unsigned char tt) {
  return tt == (lay->tag_shrstr | lay->bit_collectable) ||
         tt == (lay->tag_lngstr | lay->bit_collectable);
}

static int is_empty_tag(unsigned char tt) {
  return (tt & 0x0F) == 0;  /* LUA_TNIL with any variant: empty slot */
}

/* lua_rawequal of a node value with the frame's function. */
static int same_function(const as_memwalk_frame *f, const nodeinfo *ni) {
  return ni->val_tt == f->func_tag && ni->val == f->func;
}

/* A string key equal to the NUL-terminated `want`. */
static int key_is(walker *w, const nodeinfo *ni, const char *want) {
  char buf[16];
  size_t len, wl = strlen(want);
  int saved = w->truncated;
  if (!is_string_tag(w->lay, ni->key_tt) || wl >= sizeof buf) return 0;
  if (as_mw_read_string(w, ni->key, 0, buf, sizeof buf, &len) != 0) return 0;
  w->truncated = saved;
  return len == wl && memcmp(buf, want, wl) == 0;
}

/* Appends the string key of `ni` to out at *pos; 0, or -1 if unreadable. */
static int append_key(walker *w, const nodeinfo *ni, char *out, size_t size,
                      size_t *pos) {
  if (*pos >= size - 1) { w->truncated = 1; return 0; }
  if (as_mw_read_string(w, ni->key, 0, out + *pos, size - *pos, NULL) != 0) return -1;
  *pos += strlen(out + *pos);
  return 0;
}

/*
** luaL_traceback's pushglobalfuncname: findfield(loaded, 2) visits
** package.loaded's string keys in lua_next order (array part first, which
** holds no string keys, then the node part by index); for each, the value
** itself, then (when it is a table) that table's string keys, one level.
** A name starting with "_G." loses that prefix.
*/
int as_memwalk_global_name(const as_lualayout *lay, const as_memwalk_reader *rdr,
                           uintptr_t L, const as_memwalk_frame *frame,
                           char *out, size_t size) {
  walker w;
  uintptr_t g, reg_t, node, loaded = 0;
  unsigned char tt;
  int size_reg, size_loaded, i;
  if (size < 4 || as_mw_init_walker(&w, lay, rdr, L) != 0) return -1;
  out[0] = '\0';
  if (as_mw_rd_ptr(&w, L + lay->L_l_G, &g) != 0 || !as_mw_gc_ok(g) ||
      as_mw_rd_byte(&w, g + lay->g_l_registry + lay->tv_tt, &tt) != 0 ||
      tt != (lay->tag_table | lay->bit_collectable) ||
      as_mw_rd_ptr(&w, g + lay->g_l_registry + lay->tv_value, &reg_t) != 0 ||
      table_nodes(&w, reg_t, &node, &size_reg) != 0)
    return -1;
  for (i = 0; i < size_reg; i++) {  /* registry._LOADED */
    nodeinfo ni;
    if (read_node(&w, node, i, &ni) != 0) return -1;
    if (!is_empty_tag(ni.val_tt) && key_is(&w, &ni, "_LOADED")) {
      if (ni.val_tt != (lay->tag_table | lay->bit_collectable)) return 0;
      loaded = ni.val;
      break;
    }
  }
  if (loaded == 0 || table_nodes(&w, loaded, &node, &size_loaded) != 0)
    return loaded == 0 ? 0 : -1;
  for (i = 0; i < size_loaded; i++) {
    nodeinfo mod;
    uintptr_t mnode;
    int msize, j;
    size_t pos = 0;
    if (read_node(&w, node, i, &mod) != 0) return -1;
    if (is_empty_tag(mod.val_tt) || !is_string_tag(lay, mod.key_tt)) continue;
    if (same_function(frame, &mod))
      return append_key(&w, &mod, out, size, &pos) == 0 ? 1 : -1;
    if (mod.val_tt != (lay->tag_table | lay->bit_collectable)) continue;
    if (table_nodes(&w, mod.val, &mnode, &msize) != 0) continue;
    for (j = 0; j < msize; j++) {
      nodeinfo fld;
      if (read_node(&w, mnode, j, &fld) != 0) break;
      if (is_empty_tag(fld.val_tt) || !is_string_tag(lay, fld.key_tt) ||
          !same_function(frame, &fld))
        continue;
      if (!key_is(&w, &mod, "_G")) {
        if (append_key(&w, &mod, out, size, &pos) != 0) return -1;
        if (pos < size - 1) out[pos++] = '.';
        out[pos] = '\0';
      }
      return append_key(&w, &fld, out, size, &pos) == 0 ? 1 : -1;
    }
  }
  return 0;
}

