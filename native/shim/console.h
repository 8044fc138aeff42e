/* Consoles (ttys) for `--console-socket`: one listening socket per io key that receives the pty
 * master from runc/crun, then copies master -> stdout and stdin -> master in the poll loop. */
#ifndef TSRT_CONSOLE_H
#define TSRT_CONSOLE_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_DIR "/run/tsrt/console"

/* Create the listening socket for key and open its stdio ("" or "fifo:<path>" for stdin; "",
 * "fifo:<path>" or "file:<path>" for stdout). 0 with the socket path in path, or an errno value
 * with a message in err. */
int console_open(const char *key, const char *in_spec, const char *out_spec, char *path, size_t pathlen,
		 char *err, size_t errlen);
/* Answer `ok <seq>` on control connection conn once key's master has arrived, or an error after
 * timeout_ms (ETIMEDOUT) or when key has no console (ENOENT). */
void console_wait(uint64_t conn, const char *seq, const char *key, int64_t timeout_ms);
/* TIOCSWINSZ on key's master. 0 or an errno value with a message in err. */
int console_resize(const char *key, unsigned width, unsigned height, char *err, size_t errlen);
/* Close key's stdin keeper writer (closeio). */
void console_closeio(const char *key);
/* Tear key's console down (release). */
void console_release(const char *key);
/* Tear every console down (monitor exit). */
void console_release_all(void);
/* One non-blocking pass copying what every master has to its stdout (before a reaped event). */
void console_drain_all(void);

/* Bytes every console has copied so far: stdin -> master (in), master -> stdout (out). */
void console_io_counts(uint64_t *in, uint64_t *out);

/* Poll loop: slots, fill, dispatch (call dispatch before anything can add or remove consoles). */
size_t console_slots(void);
/* Consoles open now (the SIGUSR1 tables). */
size_t console_count(void);
void console_fill(struct pollfd *p);
void console_dispatch(const struct pollfd *p);
/* Earliest consolewait deadline (CLOCK_MONOTONIC ms), or -1; console_timers answers expired ones. */
int64_t console_deadline(void);
void console_timers(int64_t now_ms);

#endif
