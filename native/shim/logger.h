/* binary:// logging processes: one per io key, reading the stdout/stderr pipes spawned processes
 * write (spawn's `logger:1` / `logger:2` stdio specs). */
#ifndef TSRT_LOGGER_H
#define TSRT_LOGGER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOGGER_KILL_MS 12000 /* SIGKILL this long after release's SIGTERM */

/* Start argv (argv[0] absolute) as the logger of key with fd 3/4 = stdout/stderr pipe read ends,
 * fd 5 = ready pipe write end, env CONTAINER_ID and CONTAINER_NAMESPACE only. 0: `ok <seq> <pid>`
 * goes to control connection conn once the logger writes a byte to fd 5 or closes it. Otherwise
 * an errno value with a message in err (a child whose exec failed is still reaped as usual). */
int logger_start(uint64_t conn, const char *seq, const char *key, const char *id, const char *ns,
		 char *const argv[], char *err, size_t errlen);
/* The monitor's write end of key's stdout (which 1) or stderr (which 2) pipe, or -1 (ENOENT). */
int logger_fd(const char *key, int which);
/* Close key's pipe write ends and SIGTERM its logger (SIGKILL LOGGER_KILL_MS later if alive). */
void logger_release(const char *key);
/* Close every pipe (monitor exit); loggers are left running. */
void logger_release_all(void);
/* pid was reaped. */
void logger_reaped(pid_t pid);

/* Poll loop: slots, fill, dispatch (call dispatch before anything can add or remove loggers). */
size_t logger_slots(void);
void logger_fill(struct pollfd *p);
void logger_dispatch(const struct pollfd *p);
/* Earliest pending SIGKILL (CLOCK_MONOTONIC ms), or -1; logger_timers sends the due ones. */
int64_t logger_deadline(void);
void logger_timers(int64_t now_ms);

#endif
