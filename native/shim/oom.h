/* OOM watches: one per key (a container id) on that container's memory cgroup. Each OOM kill found
 * becomes an `oom <key>` event on the control connection, always ahead of the reaped events that
 * follow it (oom_check_all runs before every reap pass). */
#ifndef TSRT_OOM_H
#define TSRT_OOM_H

#include <poll.h>
#include <stddef.h>

/* Watch dir, a cgroup v1 memory cgroup ("v1": woken by an eventfd on memory.oom_control through
 * cgroup.event_control) or a cgroup v2 cgroup ("v2": woken by inotify on memory.events); an event each
 * time the cgroup's oom_kill count grows (v1 with the OOM killer disabled: each under_oom episode).
 * 0 (also when key is already watched), or an errno value with a message in err. */
int oom_watch(const char *key, const char *version, const char *dir, char *err, size_t errlen);
/* Stop watching key (release); nothing if it has no watch. */
void oom_release(const char *key);
/* Stop every watch (monitor exit). */
void oom_release_all(void);
/* One non-blocking pass over every watch, queueing the oom events that are due (before reaping). */
void oom_check_all(void);

/* Poll loop: slots, fill, dispatch (call dispatch before anything can add or remove watches). */
size_t oom_slots(void);
void oom_fill(struct pollfd *p);
void oom_dispatch(const struct pollfd *p);

#endif
