/*
** record.h: `asyncstack record PID` (issue 16 item 3): a sampling profiler
** from outside the process, the py-spy model. Nothing runs in the target
** and it is never stopped: at each tick the tool reads, through
** process_vm_readv (procmem.h, its block cache forgotten between ticks so
** every tick sees fresh memory), the running fork of each registered
** scheduler and the chain after it (src/memwalk_forks.h's
** as_memwalk_chain_next: awaiter, else spawner, else run()'s caller), names
** the frames as the in-process profiler names them (src/render.h's
** as_render_profile_frame, one `[fork #N 'name']` frame per fork
** boundary), and adds the stack, root first, to a flame aggregator
** (src/flame.h), written at the end as folded, speedscope JSON or SVG.
** A tick reads one chain, not every fork: its cost does not grow with the
** number of forks (wall mode also reads up to RECORD_WALL_FORKS suspended
** forks per tick, as the in-process wall mode does).
**
**   asyncstack record PID [--hz 199] [--duration 10] [--mode cpu|wall]
**                         [--format folded|speedscope|svg] -o FILE
**
** cpu mode: a tick weighs the target's CPU time since the last tick in
** sampling periods (its process CPU clock, clock_getcpuclockid), so a
** process that sleeps adds nothing, and one busy for half the period adds
** every other tick. A scheduler with no running fork while the process
** uses CPU counts as `[scheduler]` above run()'s caller (the in-process
** profiler's frame); no run() active at all counts as `[outside run()]`
** (the main thread is not in the descriptor: no frames below it).
** wall mode: every tick weighs 1 (plus the periods the tool overran), for
** the running fork and for each suspended fork at its await point
** (`[sleeping]`, `[waiting on channel #3 (recv)]`, ...); an idle scheduler
** adds no sample of its own, as in process.
*/
#ifndef ASYNCSTACK_TOOL_RECORD_H
#define ASYNCSTACK_TOOL_RECORD_H

#define RECORD_WALL_FORKS 256

/* argv[1] is "record". Returns the exit status: 0 recorded (also when the
** target exited meanwhile: the file holds what was taken), 1 the target
** cannot be read or the file not written, 2 a usage error. */
int tool_record_main(int argc, char **argv);

#endif
