/*
** record.c: `asyncstack record PID` (see record.h): sample another
** process's async stacks into a flame graph.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "record.h"
#include "procmem.h"
#include "flame.h"
#include "memwalk_forks.h"
#include "memwalk_render.h"
#include "render.h"

#define FORK_FRAMES 4096      /* frames of one fork (all its coroutines) */
#define STACK_FRAMES 2048     /* frames of one sample, all forks together */
#define FRAME_TEXT 256        /* bytes of one frame's text */
#define CHAIN_HOPS 64         /* forks followed from the sampled one */
#define MAX_HZ 10000

enum { FMT_NONE, FMT_FOLDED, FMT_SPEEDSCOPE, FMT_SVG };

typedef struct record_opts {
  pid_t pid;
  double hz, duration;
  int wall, format;
  const char *out;
} record_opts;

typedef struct recorder {
  tool_proc *p;
  as_memwalk_reader rd;
  as_memwalk_target t;
  as_flame *flame;
  int wall;
  as_memwalk_frame *frames;            /* one fork's frames (FORK_FRAMES) */
  char (*text)[FRAME_TEXT];            /* one sample's frames, innermost first
                                          (STACK_FRAMES, and one for a cut) */
  const char **order;                  /* ... root first, for as_flame_add */
  int ntext;
  int cut;                             /* the sample has more frames than fit */
  uintptr_t visited[CHAIN_HOPS];
  unsigned long long samples;          /* weight added to the flame */
  unsigned long ticks;                 /* periods elapsed */
  unsigned long reads;                 /* ticks that read the process */
  unsigned long torn;                  /* fork walks that could not finish */
  unsigned long oom;                   /* samples lost to memory */
  double read_seconds;                 /* time spent reading and naming */
  int gone;                            /* the process exited meanwhile */
} recorder;

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

static const char record_usage[] =
  "usage: asyncstack record PID [--hz 199] [--duration 10] [--mode cpu|wall]\n"
  "                             [--format folded|speedscope|svg] -o FILE\n"
  "\n"
  "Samples the async stacks of a running Lua process (asyncstack loaded) from\n"
  "outside, without stopping it, and writes a flame graph: folded stacks\n"
  "(.folded), speedscope JSON (.json) or an interactive SVG (.svg). cpu mode\n"
  "weighs each tick by the CPU time the process used; wall mode samples every\n"
  "suspended fork at its await point too. Ctrl-C ends it early.\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "asyncstack record: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  return 2;
}

static int parse_number(const char *s, double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (*s == '\0' || *end != '\0' || errno != 0 || !(v > 0) || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

static int format_of_path(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot == NULL || strchr(dot, '/') != NULL) return FMT_NONE;
  if (strcmp(dot, ".folded") == 0 || strcmp(dot, ".txt") == 0) return FMT_FOLDED;
  if (strcmp(dot, ".json") == 0) return FMT_SPEEDSCOPE;
  if (strcmp(dot, ".svg") == 0) return FMT_SVG;
  return FMT_NONE;
}

static int parse(int argc, char **argv, record_opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->hz = 199;
  o->duration = 10;
  for (i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--hz") == 0 || strcmp(a, "--duration") == 0 ||
        strcmp(a, "--mode") == 0 || strcmp(a, "--format") == 0 || strcmp(a, "-o") == 0) {
      const char *v = i + 1 < argc ? argv[i + 1] : NULL;
      if (v == NULL) return usage_error("%s needs a value", a);
      i++;
      if (strcmp(a, "--hz") == 0) {
        if (parse_number(v, &o->hz) != 0 || o->hz > MAX_HZ)
          return usage_error("bad --hz '%s' (samples per second, more than 0 and "
                             "at most 10000)", v);
      } else if (strcmp(a, "--duration") == 0) {
        if (parse_number(v, &o->duration) != 0 || o->duration > 1e7)
          return usage_error("bad --duration '%s' (seconds, more than 0)", v);
      } else if (strcmp(a, "--mode") == 0) {
        if (strcmp(v, "cpu") == 0) o->wall = 0;
        else if (strcmp(v, "wall") == 0) o->wall = 1;
        else return usage_error("bad --mode '%s' (cpu or wall)", v);
      } else if (strcmp(a, "--format") == 0) {
        if (strcmp(v, "folded") == 0) o->format = FMT_FOLDED;
        else if (strcmp(v, "speedscope") == 0) o->format = FMT_SPEEDSCOPE;
        else if (strcmp(v, "svg") == 0) o->format = FMT_SVG;
        else return usage_error("bad --format '%s' (folded, speedscope or svg)", v);
      } else {
        if (*v == '\0') return usage_error("%s-o needs a file name", "");
        o->out = v;
      }
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(record_usage, stdout);
      exit(0);
    } else if (a[0] == '-') {
      return usage_error("unknown option '%s'", a);
    } else if (o->pid != 0) {
      return usage_error("one process id only (got another: '%s')", a);
    } else {
      char *end;
      long long v;
      errno = 0;
      v = strtoll(a, &end, 10);
      if (*end != '\0' || errno != 0 || v <= 0 || v > 0x7fffffff)
        return usage_error("bad process id '%s'", a);
      o->pid = (pid_t)v;
    }
  }
  if (o->pid == 0) return usage_error("%sa process id is needed", "");
  if (o->out == NULL) return usage_error("%s-o FILE is needed (.folded, .json or .svg)", "");
  if (o->format == FMT_NONE) o->format = format_of_path(o->out);
  if (o->format == FMT_NONE)
    return usage_error("cannot tell the format of '%s' from its extension (.folded, "
                       ".json or .svg): give --format folded|speedscope|svg", o->out);
  return 0;
}

/* ------------------------------------------------------------ a sample */

/* A sink over the sample's next frame text, or NULL when the sample is full. */
static as_sink *next_text(recorder *r, as_text_sink *ts) {
  if (r->ntext == STACK_FRAMES) {
    r->cut = 1;
    return NULL;
  }
  return as_text_sink_init(ts, r->text[r->ntext++], FRAME_TEXT);
}

static void put_text(recorder *r, const char *s) {
  as_text_sink ts;
  as_sink *k = next_text(r, &ts);
  if (k != NULL) as_render_str(k, s);
}

/* Frames [0, n) of r->frames (innermost first), named as the in-process
** profiler names them. */
static void put_frames(recorder *r, int n, uintptr_t thread, long long id, const char *name) {
  int i;
  for (i = 0; i < n; i++) {
    char global[AS_MEMWALK_NAME_SIZE];
    as_rframe rf;
    as_text_sink ts;
    as_sink *k = next_text(r, &ts);
    if (k == NULL) return;
    as_memwalk_render_frame(&r->t, thread, &r->frames[i], global, id, name, &rf);
    as_render_profile_frame(k, &rf);
  }
}

#define OWN(r, name) ((r)->t.d.own[AS_DEBUG_OWN_##name])

/* A suspended fork's await point, as the in-process wall mode names it
** (render.h's as_render_await_point), from the descriptor's numbering of
** the await kinds. */
static void put_await(recorder *r, const as_memwalk_fork *f) {
  unsigned kind = (unsigned)f->await_kind;
  long long target = f->await_target;
  int point;
  as_text_sink ts;
  as_sink *k = next_text(r, &ts);
  if (k == NULL) return;
  if ((unsigned)f->status == OWN(r, status_runnable) || kind == 0)
    point = AS_POINT_RUNNABLE;
  else if (kind == OWN(r, await_sleep))
    point = AS_POINT_SLEEP;
  else if (kind == OWN(r, await_yield))
    point = AS_POINT_YIELD;
  else if (kind == OWN(r, await_wait))
    point = target != 0 ? AS_POINT_WAIT
          : f->wait_mode == AS_MEMWALK_WAIT_ALL ? AS_POINT_WAIT_ALL : AS_POINT_WAIT_ANY;
  else if (kind == OWN(r, await_channel)) {
    point = f->channel_op == 1 ? AS_POINT_CHANNEL_SEND : AS_POINT_CHANNEL_RECV;
    target = f->channel_id;
  } else if (kind == OWN(r, await_fd))
    point = f->fd_write ? AS_POINT_FD_WRITE : AS_POINT_FD_READ;
  else
    point = AS_POINT_OTHER;
  as_render_await_point(k, point, target);
}

/* The frames of run()'s caller in scheduler `sched`. */
static void put_caller(recorder *r, uintptr_t sched) {
  uintptr_t L = as_memwalk_sched_caller(&r->t, sched);
  as_memwalk_status st = AS_MEMWALK_FAILED;
  int n = 0;
  if (L != 0) n = as_memwalk_thread_visible(&r->t, L, r->frames, FORK_FRAMES, &st);
  put_frames(r, n, L, 0, NULL);
  if (st == AS_MEMWALK_FAILED) {
    r->torn++;
    put_text(r, "[unreadable frame]");
  }
}

/* Fork `f`'s frames, then the forks after it by the chain rule, down to
** run()'s caller (src/profile_sample.c's put_chain, from memory).
** `first` is f's record when the caller read it already. */
static void put_chain(recorder *r, uintptr_t s, uintptr_t f, double now, const as_memwalk_fork *first,
                      const as_memwalk_frame *first_frames) {
  as_memwalk_fork rec;
  int hops = 0, i;
  while (f != 0 && hops < CHAIN_HOPS) {
    uintptr_t next;
    int link;
    as_text_sink ts;
    as_sink *k;
    for (i = 0; i < hops; i++)
      if (r->visited[i] == f) return;
    r->visited[hops++] = f;
    if (first != NULL && hops == 1) {
      rec = *first;
      if (first_frames != r->frames)
        memcpy(r->frames, first_frames, sizeof *r->frames * (size_t)rec.nframes);
    } else {
      as_memwalk_fork_read(&r->t, s, f, now, &rec, r->frames, FORK_FRAMES);
    }
    put_frames(r, rec.nframes, rec.thread, rec.id, rec.name[0] ? rec.name : NULL);
    if (rec.walk == AS_MEMWALK_FAILED) {
      r->torn++;
      put_text(r, "[unreadable frame]");
      if (rec.status < 0) return;      /* not even its id: go no further */
    }
    k = next_text(r, &ts);
    if (k != NULL) {
      as_render_str(k, "[");
      as_render_fork_label(k, rec.id, rec.name[0] ? rec.name : NULL);
      as_render_str(k, "]");
    }
    link = as_memwalk_chain_next(&r->t, s, f, &next);
    if (link == AS_MEMWALK_LINK_RUN) {
      put_caller(r, rec.sched);
      return;
    }
    if (link == AS_MEMWALK_LINK_UNREADABLE) {
      r->torn++;
      return;
    }
    f = next;
  }
}

static void begin(recorder *r) {
  r->ntext = 0;
  r->cut = 0;
}

/* Adds the sample built (innermost first) to the flame, root first. */
static void end_sample(recorder *r, unsigned long long weight) {
  int i;
  if (weight == 0) return;
  if (r->cut)       /* the frames nearest the root are missing (room was kept) */
    memcpy(r->text[r->ntext++], "[more frames]", sizeof "[more frames]");
  for (i = 0; i < r->ntext; i++) r->order[i] = r->text[r->ntext - 1 - i];
  if (as_flame_add(r->flame, r->order, r->ntext, weight) != 0) {
    r->oom++;
    return;
  }
  r->samples += weight;
}

/* One tick: every registered scheduler's running fork (and in wall mode
** its suspended forks), `weight` samples each. Returns 0, or -1 when the
** process can no longer be read. */
static int sample(recorder *r, unsigned long long weight) {
  as_debug_registry reg;
  uint32_t i, nsched;
  uintptr_t scheds[AS_DEBUG_MAX_SCHEDS];
  int n = 0, j;
  tool_proc_forget(r->p);
  if (r->rd.read(r->rd.ctx, (uintptr_t)r->t.d.registry, sizeof reg, &reg) != 0)
    return -1;
  nsched = reg.count < AS_DEBUG_MAX_SCHEDS ? reg.count : AS_DEBUG_MAX_SCHEDS;
  for (i = 0; i < nsched; i++)
    if (reg.scheds[i] != 0) scheds[n++] = (uintptr_t)reg.scheds[i];
  if (n == 0) {
    begin(r);
    put_text(r, "[outside run()]");
    end_sample(r, weight);
    return 0;
  }
  for (j = 0; j < n; j++) {
    uintptr_t s = scheds[j];
    uint64_t running = 0;
    double now = 0;
    /* cpu mode: the process's CPU time is shared by its schedulers */
    unsigned long long w = r->wall ? weight
                         : weight / (unsigned)n + ((unsigned)j < weight % (unsigned)n);
    r->rd.read(r->rd.ctx, s + OWN(r, sched_now), sizeof now, &now);
    if (r->rd.read(r->rd.ctx, s + OWN(r, sched_running), sizeof running, &running) != 0) {
      r->torn++;
      continue;
    }
    if (running != 0) {
      begin(r);
      put_chain(r, s, (uintptr_t)running, now, NULL, NULL);
      end_sample(r, w);
    } else if (!r->wall && w > 0) {
      begin(r);
      put_text(r, "[scheduler]");   /* between forks: the innermost frame */
      put_caller(r, s);
      end_sample(r, w);
    }
    if (r->wall) {
      uint64_t slots;
      int32_t top, slot;
      int taken = 0;
      if (r->rd.read(r->rd.ctx, s + OWN(r, sched_slots), sizeof slots, &slots) != 0 ||
          r->rd.read(r->rd.ctx, s + OWN(r, sched_top_slot), sizeof top, &top) != 0 ||
          top < 0 || top > AS_MEMWALK_MAX_SLOTS) {
        r->torn++;
        continue;
      }
      for (slot = 1; slot <= top && taken < RECORD_WALL_FORKS; slot++) {
        uint64_t f;
        as_memwalk_fork rec;
        if (r->rd.read(r->rd.ctx, (uintptr_t)slots + (uintptr_t)slot * 8, sizeof f, &f) != 0)
          break;
        if (f == 0 || f == running) continue;
        as_memwalk_fork_read(&r->t, s, (uintptr_t)f, now, &rec, r->frames, FORK_FRAMES);
        if (rec.status < 0) {
          r->torn++;
          continue;
        }
        if ((unsigned)rec.status != OWN(r, status_runnable) &&
            (unsigned)rec.status != OWN(r, status_sleeping) &&
            (unsigned)rec.status != OWN(r, status_waiting))
          continue;                    /* ended (or running meanwhile) */
        begin(r);
        put_await(r, &rec);
        put_chain(r, s, (uintptr_t)f, now, &rec, r->frames);
        end_sample(r, weight);
        taken++;
      }
    }
  }
  return 0;
}

/* ---------------------------------------------------------- the loop */

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_seconds(clockid_t c) {
  struct timespec ts;
  if (clock_gettime(c, &ts) != 0) return -1;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
  /* EINTR: Ctrl-C; the loop looks at the flag */
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void record_loop(recorder *r, const record_opts *o, clockid_t cpu, int have_cpu) {
  double period = 1.0 / o->hz, start = mono(), end = start + o->duration;
  double next = start, carry = 0, last_cpu = have_cpu ? cpu_seconds(cpu) : 0;
  while (!interrupted) {
    double now, t0, c;
    unsigned long long weight;
    unsigned long periods;
    sleep_until(next);
    if (interrupted) break;
    now = mono();
    if (now >= end + period * 0.5) break;
    /* the periods since the last tick (more than one when the tool overran) */
    periods = 1;
    next += period;
    while (next <= now) {
      next += period;
      periods++;
    }
    r->ticks += periods;
    if (r->wall) {
      weight = periods;
    } else {
      c = have_cpu ? cpu_seconds(cpu) : -1;
      if (c < 0) {
        if (tool_proc_gone(r->p)) {
          r->gone = 1;
          break;
        }
        weight = periods;     /* no CPU clock: every tick counts */
      } else {
        carry += (c - last_cpu) / period;
        last_cpu = c;
        weight = carry >= 1 ? (unsigned long long)carry : 0;
        carry -= (double)weight;
      }
    }
    if (weight == 0) continue;
    t0 = mono();
    r->reads++;
    if (sample(r, weight) != 0 && tool_proc_gone(r->p)) {
      r->gone = 1;
      break;
    }
    if (r->p->read_failures > 0) {     /* a refused read: has it exited? */
      if (tool_proc_gone(r->p)) {
        r->gone = 1;
        break;
      }
      r->p->read_failures = 0;
    }
    r->read_seconds += mono() - t0;
  }
}

/* ---------------------------------------------------------- the command */

static int fail(const char *fmt, const char *a) {
  fprintf(stderr, "asyncstack: ");
  fprintf(stderr, fmt, a);
  fputc('\n', stderr);
  return 1;
}

static int write_output(recorder *r, const record_opts *o, FILE *out, double seconds) {
  char sub[200];
  int e;
  snprintf(sub, sizeof sub, "%s profile of process %d from outside, %g Hz, %llu samples "
           "over %.2f s", r->wall ? "wall" : "cpu", (int)o->pid, o->hz, r->samples, seconds);
  if (o->format == FMT_FOLDED)
    e = as_flame_folded(r->flame, as_flame_file_writer, out);
  else if (o->format == FMT_SPEEDSCOPE)
    e = as_flame_speedscope(r->flame, sub, 1000.0 / o->hz, as_flame_file_writer, out);
  else
    e = as_flame_svg(r->flame, "asyncstack record", sub, as_flame_file_writer, out);
  if (fflush(out) != 0 || ferror(out)) e = -1;
  return e;
}

int tool_record_main(int argc, char **argv) {
  static tool_proc p;
  static recorder r;
  record_opts o;
  char err[8192];
  const char *werr;
  uint64_t desc;
  clockid_t cpu = 0;
  int have_cpu, status = 0;
  double started, seconds;
  FILE *out;
  struct sigaction sa, old_int, old_term;
  int u = parse(argc, argv, &o);
  if (u != 0) return u;
  if (tool_proc_open(&p, o.pid, err, sizeof err) != 0) return fail("%s", err);
  desc = tool_proc_find_descriptor(&p, err, sizeof err);
  if (desc == 0) {
    tool_proc_close(&p);
    return fail("%s", err);
  }
  memset(&r, 0, sizeof r);
  r.p = &p;
  r.wall = o.wall;
  r.rd.read = tool_proc_read;
  r.rd.ctx = &p;
  werr = as_memwalk_target_open(&r.t, &r.rd, (uintptr_t)desc);
  if (werr != NULL) {
    fprintf(stderr, "asyncstack: process %d: %s (descriptor in %s)\n", (int)o.pid, werr,
            p.library);
    tool_proc_close(&p);
    return 1;
  }
  /* global names are looked up once per function for the whole recording
  ** (a function freed and another made at its address keeps the old name:
  ** the in-process profiler caches the same way) */
  r.t.names = calloc(1, sizeof *r.t.names);
  r.frames = malloc(sizeof *r.frames * FORK_FRAMES);
  r.text = malloc(sizeof *r.text * (STACK_FRAMES + 1));
  r.order = malloc(sizeof *r.order * (STACK_FRAMES + 1));
  r.flame = as_flame_new();
  if (r.t.names == NULL || r.frames == NULL || r.text == NULL || r.order == NULL ||
      r.flame == NULL) {
    status = fail("%sout of memory", "");
    goto done;
  }
  have_cpu = clock_getcpuclockid(o.pid, &cpu) == 0 && cpu_seconds(cpu) >= 0;
  if (!o.wall && !have_cpu)
    fprintf(stderr, "asyncstack: process %d's CPU clock cannot be read: every tick "
                    "counts, on CPU or not\n", (int)o.pid);
  out = fopen(o.out, "w");
  if (out == NULL) {
    snprintf(err, sizeof err, "cannot write %s: %s", o.out, strerror(errno));
    status = fail("%s", err);
    goto done;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  started = mono();
  record_loop(&r, &o, cpu, have_cpu);
  seconds = mono() - started;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (r.oom > 0)
    fprintf(stderr, "asyncstack: %lu samples were lost: out of memory\n", r.oom);
  if (r.gone)
    fprintf(stderr, "asyncstack: process %d exited during the recording: the file "
                    "holds the samples taken before\n", (int)o.pid);
  if (write_output(&r, &o, out, seconds) != 0) {
    snprintf(err, sizeof err, "cannot write %s: %s", o.out,
             errno ? strerror(errno) : "out of memory");
    status = fail("%s", err);
  }
  if (fclose(out) != 0 && status == 0) {
    snprintf(err, sizeof err, "cannot write %s: %s", o.out, strerror(errno));
    status = fail("%s", err);
  }
  fprintf(stderr, "asyncstack: recorded process %d for %.2f s (%s, %g Hz%s): %llu samples "
                  "in %lu ticks, %zu stacks, %lu torn walks, %.0f us per read tick; "
                  "wrote %s\n",
          (int)o.pid, seconds, o.wall ? "wall" : "cpu", o.hz,
          interrupted ? ", interrupted" : "", r.samples, r.ticks, as_flame_nstacks(r.flame), r.torn,
          r.reads ? r.read_seconds / (double)r.reads * 1e6 : 0.0, o.out);
done:
  as_flame_free(r.flame);
  free(r.order);
  free(r.text);
  free(r.frames);
  free(r.t.names);
  tool_proc_close(&p);
  return status;
}
