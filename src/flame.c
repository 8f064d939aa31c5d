/*
** flame.c: the stack aggregator and the flame-graph writers (see flame.h).
** Plain C and malloc: no Lua, so the same code serves the in-process
** profiler and a command that samples another process.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "flame.h"

#define NO_FRAME ((unsigned)-1)

typedef struct flame_node {
  unsigned frame;              /* interned frame id; NO_FRAME for the root */
  unsigned parent;             /* node index (the root is its own parent) */
  unsigned depth;              /* 0 for the root */
  unsigned long long self;     /* samples of exactly this stack */
  unsigned long long total;    /* self + every descendant's */
} flame_node;

struct as_flame {
  char **frames;               /* interned texts, by id */
  size_t nframes, capframes;
  size_t *frame_slots;         /* open addressing: id + 1, 0 empty */
  size_t frame_slots_cap;      /* a power of two, >= 2 * nframes */
  flame_node *nodes;           /* nodes[0] is the root */
  size_t nnodes, capnodes;
  size_t *node_slots;          /* open addressing over (parent, frame) */
  size_t node_slots_cap;
  unsigned maxdepth;
  size_t nstacks;              /* nodes with self > 0 */
};

/* ------------------------------------------------------------ hashing */

static size_t hash_text(const char *s) {
  size_t h = (size_t)14695981039346656037ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
  return h;
}

static size_t hash_edge(unsigned parent, unsigned frame) {
  unsigned long long k = ((unsigned long long)parent << 32) | frame;
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return (size_t)k;
}

static int grow_frame_slots(as_flame *f) {
  size_t cap = f->frame_slots_cap ? f->frame_slots_cap * 2 : 64, i;
  size_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL) return -1;
  for (i = 0; i < f->nframes; i++) {
    size_t j = hash_text(f->frames[i]) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = i + 1;
  }
  free(f->frame_slots);
  f->frame_slots = slots;
  f->frame_slots_cap = cap;
  return 0;
}

static int grow_node_slots(as_flame *f) {
  size_t cap = f->node_slots_cap ? f->node_slots_cap * 2 : 64, i;
  size_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL) return -1;
  for (i = 1; i < f->nnodes; i++) {
    size_t j = hash_edge(f->nodes[i].parent, f->nodes[i].frame) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = i + 1;
  }
  free(f->node_slots);
  f->node_slots = slots;
  f->node_slots_cap = cap;
  return 0;
}

/* ---------------------------------------------------------- building */

as_flame *as_flame_new(void) {
  as_flame *f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->nodes = malloc(16 * sizeof *f->nodes);
  if (f->nodes == NULL || grow_frame_slots(f) != 0 || grow_node_slots(f) != 0) {
    as_flame_free(f);
    return NULL;
  }
  f->capnodes = 16;
  f->nnodes = 1;
  memset(&f->nodes[0], 0, sizeof f->nodes[0]);
  f->nodes[0].frame = NO_FRAME;
  return f;
}

void as_flame_free(as_flame *f) {
  size_t i;
  if (f == NULL) return;
  for (i = 0; i < f->nframes; i++) free(f->frames[i]);
  free(f->frames);
  free(f->frame_slots);
  free(f->nodes);
  free(f->node_slots);
  free(f);
}

/* The id of `text` (interned on first sight, ';' and newlines replaced);
** NO_FRAME when memory ran out. */
static unsigned intern(as_flame *f, const char *text) {
  size_t len = strlen(text), i, j;
  char *copy = malloc(len + 1);
  if (copy == NULL) return NO_FRAME;
  for (i = 0; i < len; i++) {
    char c = text[i];
    copy[i] = c == ';' ? ',' : (c == '\n' || c == '\r') ? ' ' : c;
  }
  copy[len] = '\0';
  j = hash_text(copy) & (f->frame_slots_cap - 1);
  while (f->frame_slots[j]) {
    size_t id = f->frame_slots[j] - 1;
    if (strcmp(f->frames[id], copy) == 0) {
      free(copy);
      return (unsigned)id;
    }
    j = (j + 1) & (f->frame_slots_cap - 1);
  }
  if (f->nframes == f->capframes) {
    size_t cap = f->capframes ? f->capframes * 2 : 64;
    char **frames = realloc(f->frames, cap * sizeof *frames);
    if (frames == NULL) { free(copy); return NO_FRAME; }
    f->frames = frames;
    f->capframes = cap;
  }
  if (2 * (f->nframes + 1) > f->frame_slots_cap) {
    if (grow_frame_slots(f) != 0) { free(copy); return NO_FRAME; }
    j = hash_text(copy) & (f->frame_slots_cap - 1);
    while (f->frame_slots[j]) j = (j + 1) & (f->frame_slots_cap - 1);
  }
  f->frames[f->nframes] = copy;
  f->frame_slots[j] = f->nframes + 1;
  return (unsigned)f->nframes++;
}

/* The child of `parent` for `frame`, created when missing; 0 when memory
** ran out (0 is the root, never a child). */
static size_t child(as_flame *f, size_t parent, unsigned frame) {
  size_t j = hash_edge((unsigned)parent, frame) & (f->node_slots_cap - 1);
  flame_node *n;
  while (f->node_slots[j]) {
    size_t i = f->node_slots[j] - 1;
    if (f->nodes[i].parent == parent && f->nodes[i].frame == frame) return i;
    j = (j + 1) & (f->node_slots_cap - 1);
  }
  if (f->nnodes == f->capnodes) {
    size_t cap = f->capnodes * 2;
    flame_node *nodes = realloc(f->nodes, cap * sizeof *nodes);
    if (nodes == NULL) return 0;
    f->nodes = nodes;
    f->capnodes = cap;
  }
  if (2 * (f->nnodes + 1) > f->node_slots_cap) {
    if (grow_node_slots(f) != 0) return 0;
    j = hash_edge((unsigned)parent, frame) & (f->node_slots_cap - 1);
    while (f->node_slots[j]) j = (j + 1) & (f->node_slots_cap - 1);
  }
  n = &f->nodes[f->nnodes];
  n->frame = frame;
  n->parent = (unsigned)parent;
  n->depth = f->nodes[parent].depth + 1;
  n->self = n->total = 0;
  if (n->depth > f->maxdepth) f->maxdepth = n->depth;
  f->node_slots[j] = f->nnodes + 1;
  return f->nnodes++;
}

int as_flame_add(as_flame *f, const char *const *frames, int n,
                 unsigned long long count) {
  size_t node = 0;
  int i;
  if (n < 0) return -1;
  /* first find or make the path, then count: a failure adds nothing */
  for (i = 0; i < n; i++) {
    unsigned id = intern(f, frames[i] != NULL ? frames[i] : "?");
    if (id == NO_FRAME) return -1;
    node = child(f, node, id);
    if (node == 0) return -1;
  }
  if (f->nodes[node].self == 0 && count > 0) f->nstacks++;
  f->nodes[node].self += count;
  for (;;) {
    f->nodes[node].total += count;
    if (node == 0) break;
    node = f->nodes[node].parent;
  }
  return 0;
}

unsigned long long as_flame_total(const as_flame *f) {
  return f->nodes[0].total;
}

size_t as_flame_nframes(const as_flame *f) {
  return f->nframes;
}

size_t as_flame_nstacks(const as_flame *f) {
  return f->nstacks;
}

/* ---------------------------------------------------- walking in order */

/* Children of every node, sorted by frame text: kids[first[i] ...
** first[i] + nkids[i]) are node i's. */
typedef struct tree_order {
  size_t *kids, *first, *nkids;
} tree_order;

static const as_flame *sort_flame;   /* qsort has no context argument */

static int by_parent_then_text(const void *a, const void *b) {
  const flame_node *x = &sort_flame->nodes[*(const size_t *)a];
  const flame_node *y = &sort_flame->nodes[*(const size_t *)b];
  if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
  return strcmp(sort_flame->frames[x->frame], sort_flame->frames[y->frame]);
}

static void order_free(tree_order *o) {
  free(o->kids);
  free(o->first);
  free(o->nkids);
}

static int order_make(const as_flame *f, tree_order *o) {
  size_t i, nk = f->nnodes - 1;
  o->kids = malloc((nk ? nk : 1) * sizeof *o->kids);
  o->first = calloc(f->nnodes, sizeof *o->first);
  o->nkids = calloc(f->nnodes, sizeof *o->nkids);
  if (o->kids == NULL || o->first == NULL || o->nkids == NULL) {
    order_free(o);
    return -1;
  }
  for (i = 0; i < nk; i++) o->kids[i] = i + 1;
  sort_flame = f;
  qsort(o->kids, nk, sizeof *o->kids, by_parent_then_text);
  sort_flame = NULL;
  for (i = nk; i-- > 0;) {
    size_t p = f->nodes[o->kids[i]].parent;
    o->first[p] = i;
    o->nkids[p]++;
  }
  return 0;
}

/* Visits every node depth first, children in order; `visit` gets the node
** and its path from the root's first child (path[0, depth)). */
typedef void (*visit_fn)(const as_flame *f, size_t node, const size_t *path,
                         void *ctx);

static int walk(const as_flame *f, visit_fn visit, void *ctx) {
  tree_order o;
  size_t *path, *next, depth = 0;
  if (order_make(f, &o) != 0) return -1;
  path = malloc((f->maxdepth + 1) * sizeof *path);
  next = malloc((f->maxdepth + 1) * sizeof *next);
  if (path == NULL || next == NULL) {
    free(path);
    free(next);
    order_free(&o);
    return -1;
  }
  path[0] = 0;
  next[0] = 0;
  visit(f, 0, path + 1, ctx);
  for (;;) {
    size_t cur = path[depth];
    if (next[depth] < o.nkids[cur]) {
      size_t kid = o.kids[o.first[cur] + next[depth]++];
      path[++depth] = kid;
      next[depth] = 0;
      visit(f, kid, path + 1, ctx);
    } else if (depth == 0) {
      break;
    } else {
      depth--;
    }
  }
  free(path);
  free(next);
  order_free(&o);
  return 0;
}

/* ------------------------------------------------------------ output */

typedef struct out {
  as_flame_write_fn w;
  void *ud;
  size_t n;
  char buf[4096];
} out;

static void out_flush(out *o) {
  if (o->n > 0) o->w(o->ud, o->buf, o->n);
  o->n = 0;
}

static void out_mem(out *o, const char *s, size_t n) {
  if (n > sizeof o->buf - o->n) {
    out_flush(o);
    if (n > sizeof o->buf) {
      o->w(o->ud, s, n);
      return;
    }
  }
  memcpy(o->buf + o->n, s, n);
  o->n += n;
}

static void out_str(out *o, const char *s) {
  out_mem(o, s, strlen(s));
}

static void out_fmt_ull(out *o, unsigned long long v) {
  char b[32];
  snprintf(b, sizeof b, "%llu", v);
  out_str(o, b);
}

static void out_fmt_num(out *o, double v) {
  char b[64];
  snprintf(b, sizeof b, "%.6g", v);
  out_str(o, b);
}

static void out_json_string(out *o, const char *s) {
  out_mem(o, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      out_mem(o, e, 2);
    } else if (c < 0x20) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", c);
      out_str(o, e);
    } else {
      out_mem(o, (const char *)&c, 1);
    }
  }
  out_mem(o, "\"", 1);
}

static void out_xml(out *o, const char *s, size_t max) {
  size_t i;
  for (i = 0; s[i] && i < max; i++) {
    switch (s[i]) {
      case '&': out_str(o, "&amp;"); break;
      case '<': out_str(o, "&lt;"); break;
      case '>': out_str(o, "&gt;"); break;
      case '"': out_str(o, "&quot;"); break;
      case '\'': out_str(o, "&#39;"); break;
      default:
        if ((unsigned char)s[i] < 0x20) out_str(o, " ");
        else out_mem(o, s + i, 1);
    }
  }
}

/* folded */

static void visit_folded(const as_flame *f, size_t node, const size_t *path,
                         void *ctx) {
  out *o = ctx;
  unsigned d, depth = f->nodes[node].depth;
  if (f->nodes[node].self == 0 || depth == 0) return;
  for (d = 0; d < depth; d++) {
    if (d > 0) out_mem(o, ";", 1);
    out_str(o, f->frames[f->nodes[path[d]].frame]);
  }
  out_mem(o, " ", 1);
  out_fmt_ull(o, f->nodes[node].self);
  out_mem(o, "\n", 1);
}

int as_flame_folded(const as_flame *f, as_flame_write_fn w, void *ud) {
  out o;
  int r;
  o.w = w;
  o.ud = ud;
  o.n = 0;
  r = walk(f, visit_folded, &o);
  out_flush(&o);
  return r;
}

/* speedscope */

typedef struct speedscope_ctx {
  out *o;
  int weights;       /* second pass: the weights */
  int any;
  double sample_ms;
} speedscope_ctx;

static void visit_speedscope(const as_flame *f, size_t node, const size_t *path,
                             void *ctx) {
  speedscope_ctx *c = ctx;
  unsigned d, depth = f->nodes[node].depth;
  if (f->nodes[node].self == 0 || depth == 0) return;
  if (c->any) out_mem(c->o, ",", 1);
  c->any = 1;
  if (c->weights) {
    if (c->sample_ms > 0)
      out_fmt_num(c->o, (double)f->nodes[node].self * c->sample_ms);
    else
      out_fmt_ull(c->o, f->nodes[node].self);
    return;
  }
  out_mem(c->o, "[", 1);
  for (d = 0; d < depth; d++) {
    if (d > 0) out_mem(c->o, ",", 1);
    out_fmt_ull(c->o, f->nodes[path[d]].frame);
  }
  out_mem(c->o, "]", 1);
}

int as_flame_speedscope(const as_flame *f, const char *name, double sample_ms,
                        as_flame_write_fn w, void *ud) {
  out o;
  speedscope_ctx c;
  size_t i;
  unsigned long long counted = f->nodes[0].total - f->nodes[0].self;
  int r = 0;
  o.w = w;
  o.ud = ud;
  o.n = 0;
  if (name == NULL) name = "asyncstack";
  out_str(&o, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\n"
              "\"exporter\":\"asyncstack\",\"name\":");
  out_json_string(&o, name);
  out_str(&o, ",\"activeProfileIndex\":0,\n\"shared\":{\"frames\":[");
  for (i = 0; i < f->nframes; i++) {
    out_str(&o, i > 0 ? ",\n{\"name\":" : "\n{\"name\":");
    out_json_string(&o, f->frames[i]);
    out_mem(&o, "}", 1);
  }
  out_str(&o, "]},\n\"profiles\":[{\"type\":\"sampled\",\"name\":");
  out_json_string(&o, name);
  out_str(&o, sample_ms > 0 ? ",\"unit\":\"milliseconds\"" : ",\"unit\":\"none\"");
  out_str(&o, ",\"startValue\":0,\"endValue\":");
  if (sample_ms > 0) out_fmt_num(&o, (double)counted * sample_ms);
  else out_fmt_ull(&o, counted);
  out_str(&o, ",\n\"samples\":[");
  c.o = &o;
  c.any = 0;
  c.weights = 0;
  c.sample_ms = sample_ms;
  r |= walk(f, visit_speedscope, &c);
  out_str(&o, "],\n\"weights\":[");
  c.any = 0;
  c.weights = 1;
  r |= walk(f, visit_speedscope, &c);
  out_str(&o, "]}]}\n");
  out_flush(&o);
  return r;
}

/* svg */

#define SVG_WIDTH 1200
#define SVG_PAD 10
#define SVG_ROW 17
#define SVG_TOP 64         /* title, subtitle, search box */
#define SVG_BOTTOM 36      /* details line */
#define SVG_FONT 12
#define SVG_MIN_PX 0.3     /* narrower frames are left out */

typedef struct svg_ctx {
  out *o;
  double scale;              /* pixels per sample */
  unsigned long long *x;     /* by node: samples left of it at its depth */
  unsigned long long *cursor;/* by node: next child's x */
  double height;
} svg_ctx;

/* A warm colour from the text (flamegraph.pl's palette idea); the frames
** asyncstack adds get their own hues: forks green, waits blue. */
static void frame_colour(const char *text, char *buf, size_t size) {
  size_t h = hash_text(text);
  unsigned r, g, b;
  if (text[0] == '[' && strncmp(text, "[fork", 5) == 0) {
    r = 80 + (unsigned)(h % 40); g = 180 + (unsigned)((h >> 8) % 50); b = 90;
  } else if (text[0] == '[') {
    r = 90; g = 140 + (unsigned)((h >> 8) % 50); b = 210 + (unsigned)(h % 40);
  } else {
    r = 205 + (unsigned)(h % 50);
    g = (unsigned)((h >> 8) % 180);
    b = (unsigned)((h >> 16) % 55);
  }
  snprintf(buf, size, "rgb(%u,%u,%u)", r, g, b);
}

static void visit_svg(const as_flame *f, size_t node, const size_t *path,
                      void *ctx) {
  svg_ctx *c = ctx;
  const flame_node *n = &f->nodes[node];
  const char *text = n->frame == NO_FRAME ? "all" : f->frames[n->frame];
  double x, w, y;
  unsigned long long total = f->nodes[0].total;
  char colour[32], pct[32];
  size_t fit;
  (void)path;
  if (node == 0) {
    c->x[0] = 0;
  } else {
    c->x[node] = c->cursor[n->parent];
    c->cursor[n->parent] += n->total;
  }
  c->cursor[node] = c->x[node];
  w = (double)n->total * c->scale;
  if (w < SVG_MIN_PX) return;
  x = SVG_PAD + (double)c->x[node] * c->scale;
  y = c->height - SVG_BOTTOM - (double)(n->depth + 1) * SVG_ROW;
  if (node == 0) snprintf(colour, sizeof colour, "rgb(200,200,200)");
  else frame_colour(text, colour, sizeof colour);
  snprintf(pct, sizeof pct, "%.2f", total ? 100.0 * (double)n->total / (double)total : 0.0);
  out_str(c->o, "<g class=\"f\" data-x=\"");
  out_fmt_ull(c->o, c->x[node]);
  out_str(c->o, "\" data-w=\"");
  out_fmt_ull(c->o, n->total);
  out_str(c->o, "\" data-d=\"");
  out_fmt_ull(c->o, n->depth);
  out_str(c->o, "\"><title>");
  out_xml(c->o, text, (size_t)-1);
  out_str(c->o, " (");
  out_fmt_ull(c->o, n->total);
  out_str(c->o, n->total == 1 ? " sample, " : " samples, ");
  out_str(c->o, pct);
  out_str(c->o, "%)</title><rect x=\"");
  out_fmt_num(c->o, x);
  out_str(c->o, "\" y=\"");
  out_fmt_num(c->o, y);
  out_str(c->o, "\" width=\"");
  out_fmt_num(c->o, w);
  out_str(c->o, "\" height=\"");
  out_fmt_ull(c->o, SVG_ROW - 1);
  out_str(c->o, "\" fill=\"");
  out_str(c->o, colour);
  out_str(c->o, "\" rx=\"2\"/><text x=\"");
  out_fmt_num(c->o, x + 3);
  out_str(c->o, "\" y=\"");
  out_fmt_num(c->o, y + SVG_ROW - 5);
  out_str(c->o, "\">");
  /* the label the script would fit (it refits after a zoom): as many
  ** characters as the width holds, ".." marking a cut */
  fit = (size_t)((w - 6) / (SVG_FONT * 0.6));
  if (fit >= strlen(text)) {
    out_xml(c->o, text, (size_t)-1);
  } else if (fit > 3) {
    out_xml(c->o, text, fit - 2);
    out_str(c->o, "..");
  }
  out_str(c->o, "</text></g>\n");
}

static const char svg_style[] =
  "<style>\n"
  "text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }\n"
  "#title { font-size: 17px; } #subtitle { font-size: 12px; fill: #555; }\n"
  "#details { font-size: 12px; }\n"
  ".f { cursor: pointer; } .f:hover rect { stroke: #000; stroke-width: 0.5; }\n"
  ".f text { pointer-events: none; }\n"
  ".hit rect { fill: rgb(230,0,230) !important; }\n"
  ".hide { display: none; } #reset { cursor: pointer; fill: #06c; }\n"
  "#search { font: 12px Verdana, sans-serif; width: 230px; }\n"
  "</style>\n";

/* Zoom: a frame's subtree fills the width, its ancestors span it, the
** rest hides. Search: frames whose text contains the string turn magenta;
** the share of the samples under them (not counting a match inside a
** match twice) is shown. */
static const char svg_script[] =
  "<script><![CDATA[\n"
  "\"use strict\";\n"
  "var W = %d, PAD = %d, FONT = %d, frames = [], zoomed = null;\n"
  "function g_name(g) { var t = g.querySelector('title').textContent;\n"
  "  return t.replace(/ \\(\\d+ samples?, [0-9.]+%%\\)$/, ''); }\n"
  "function fit(g, w) { var name = g_name(g), text = g.querySelector('text');\n"
  "  var n = Math.floor((w - 6) / (FONT * 0.6));\n"
  "  text.textContent = n >= name.length ? name : n > 3 ? name.slice(0, n - 2) + '..' : ''; }\n"
  "function layout(x0, w0, d0) {\n"
  "  var scale = (W - 2 * PAD) / w0;\n"
  "  frames.forEach(function (f) {\n"
  "    var inside = f.x >= x0 && f.x + f.w <= x0 + w0 && f.d >= d0;\n"
  "    var below = f.d < d0 && f.x <= x0 && f.x + f.w >= x0 + w0;\n"
  "    if (!inside && !below) { f.g.classList.add('hide'); return; }\n"
  "    f.g.classList.remove('hide');\n"
  "    var x = below ? PAD : PAD + (f.x - x0) * scale, w = below ? W - 2 * PAD : f.w * scale;\n"
  "    var r = f.g.querySelector('rect'), t = f.g.querySelector('text');\n"
  "    r.setAttribute('x', x); r.setAttribute('width', w);\n"
  "    t.setAttribute('x', x + 3); fit(f.g, w);\n"
  "  });\n"
  "  document.getElementById('reset').classList.toggle('hide', d0 === 0 && x0 === 0);\n"
  "}\n"
  "function zoom(f) { zoomed = f; layout(f.x, f.w, f.d); }\n"
  "function unzoom() { zoomed = null; layout(0, frames[0].w, 0); }\n"
  "function search(term) {\n"
  "  var hit = 0, ends = -1, total = frames.length ? frames[0].w : 0;\n"
  "  frames.forEach(function (f) {\n"
  "    var on = term !== '' && g_name(f.g).indexOf(term) >= 0;\n"
  "    f.g.classList.toggle('hit', on);\n"
  "  });\n"
  "  frames.slice().sort(function (a, b) { return a.x - b.x || a.d - b.d; })\n"
  "    .forEach(function (f) { if (f.g.classList.contains('hit') && f.x >= ends) { hit += f.w; ends = f.x + f.w; } });\n"
  "  document.getElementById('matched').textContent = term === '' ? '' :\n"
  "    'Matched: ' + (total ? 100 * hit / total : 0).toFixed(2) + '%%';\n"
  "}\n"
  "function init() {\n"
  "  var gs = document.querySelectorAll('g.f'), details = document.getElementById('details');\n"
  "  for (var i = 0; i < gs.length; i++) {\n"
  "    var g = gs[i];\n"
  "    var f = { g: g, x: +g.getAttribute('data-x'), w: +g.getAttribute('data-w'), d: +g.getAttribute('data-d') };\n"
  "    frames.push(f);\n"
  "    g.addEventListener('mouseover', (function (f) { return function () {\n"
  "      details.textContent = f.g.querySelector('title').textContent; }; })(f));\n"
  "    g.addEventListener('mouseout', function () { details.textContent = ' '; });\n"
  "    g.addEventListener('click', (function (f) { return function () {\n"
  "      if (f.d === 0) unzoom(); else zoom(f); }; })(f));\n"
  "  }\n"
  "  document.getElementById('reset').addEventListener('click', unzoom);\n"
  "  var box = document.getElementById('search');\n"
  "  if (box) box.addEventListener('input', function () { search(box.value); });\n"
  "  if (frames.length) unzoom();\n"
  "  document.documentElement.setAttribute('data-ready', frames.length);\n"
  "}\n"
  "window.addEventListener('load', init);\n"
  "]]></script>\n";

int as_flame_svg(const as_flame *f, const char *title, const char *subtitle,
                 as_flame_write_fn w, void *ud) {
  out o;
  svg_ctx c;
  char buf[sizeof svg_script + 64];
  int r;
  unsigned long long total = f->nodes[0].total;
  o.w = w;
  o.ud = ud;
  o.n = 0;
  c.o = &o;
  c.scale = total > 0 ? (double)(SVG_WIDTH - 2 * SVG_PAD) / (double)total : 0;
  c.height = SVG_TOP + (double)(f->maxdepth + 1) * SVG_ROW + SVG_BOTTOM;
  c.x = calloc(f->nnodes, sizeof *c.x);
  c.cursor = calloc(f->nnodes, sizeof *c.cursor);
  if (c.x == NULL || c.cursor == NULL) {
    free(c.x);
    free(c.cursor);
    return -1;
  }
  if (title == NULL) title = "Flame graph";
  snprintf(buf, sizeof buf,
           "<?xml version=\"1.0\" standalone=\"no\"?>\n"
           "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" "
           "width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\">\n",
           SVG_WIDTH, c.height, SVG_WIDTH, c.height);
  out_str(&o, buf);
  out_str(&o, svg_style);
  snprintf(buf, sizeof buf, svg_script, SVG_WIDTH, SVG_PAD, SVG_FONT);
  out_str(&o, buf);
  snprintf(buf, sizeof buf,
           "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%.0f\" fill=\"#f8f8f4\"/>\n",
           SVG_WIDTH, c.height);
  out_str(&o, buf);
  snprintf(buf, sizeof buf, "<text id=\"title\" x=\"%d\" y=\"22\" text-anchor=\"middle\">",
           SVG_WIDTH / 2);
  out_str(&o, buf);
  out_xml(&o, title, (size_t)-1);
  out_str(&o, "</text>\n");
  if (subtitle != NULL) {
    snprintf(buf, sizeof buf, "<text id=\"subtitle\" x=\"%d\" y=\"40\" text-anchor=\"middle\">",
             SVG_WIDTH / 2);
    out_str(&o, buf);
    out_xml(&o, subtitle, (size_t)-1);
    out_str(&o, "</text>\n");
  }
  snprintf(buf, sizeof buf,
           "<text id=\"reset\" class=\"hide\" x=\"%d\" y=\"56\">Reset zoom</text>\n"
           "<foreignObject x=\"%d\" y=\"40\" width=\"250\" height=\"24\">"
           "<input xmlns=\"http://www.w3.org/1999/xhtml\" id=\"search\" type=\"search\" "
           "placeholder=\"Search (substring)\"/></foreignObject>\n"
           "<text id=\"matched\" x=\"%d\" y=\"56\" text-anchor=\"end\"></text>\n",
           SVG_PAD, SVG_WIDTH - SVG_PAD - 250 - 120, SVG_WIDTH - SVG_PAD);
  out_str(&o, buf);
  r = walk(f, visit_svg, &c);
  snprintf(buf, sizeof buf, "<text id=\"details\" x=\"%d\" y=\"%.0f\"> </text>\n</svg>\n",
           SVG_PAD, c.height - 12);
  out_str(&o, buf);
  out_flush(&o);
  free(c.x);
  free(c.cursor);
  return r;
}

void as_flame_file_writer(void *file, const char *s, size_t n) {
  fwrite(s, 1, n, (FILE *)file);
}
