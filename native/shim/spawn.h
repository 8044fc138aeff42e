/* The monitor's `spawn` request: stdio setup, keeper fds per io key, fork + exec. */
#ifndef TSRT_SPAWN_H
#define TSRT_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

struct spawn_req {
	const char *iokey;
	const char *cwd;        /* "" = the monitor's cwd */
	const char *stdio[3];   /* "", "fifo:<path>", "file:<path>"; stdout/stderr also "logger:1" or
	                         * "logger:2" (the io key's logger stdout / stderr pipe); stdin also
	                         * "channel:" (an exec server's channel, handoff.h) */
	char **argv;            /* NULL-terminated, argv[0] looked up on PATH */
	char **envp;            /* NULL-terminated, or NULL to inherit the monitor's environment */
};

/* Starts the process. Returns 0 with *pid set, or an errno value with a message in err. When the
 * exec itself failed *pid is still set (that child exits 127 and is reaped like any other). */
int spawn_run(const struct spawn_req *r, pid_t *pid, char *err, size_t errlen);

/* A process's stdio opened from three specs as spawn opens them, keepers under key. */
struct spawn_stdio {
	int fds[3];
	int added[3], nadded; /* keepers opened for them */
};
/* Returns 0, or an errno value with a message in err (nothing left open). */
int spawn_open_stdio(const char *const spec[3], const char *key, struct spawn_stdio *s, char *err, size_t errlen);
/* Closes the three fds; with undo also the keepers opened for them. */
void spawn_close_stdio(struct spawn_stdio *s, int undo);

/* Close the stdin keeper writers of key. */
void spawn_closeio(const char *key);
/* Close every keeper fd of key. */
void spawn_release(const char *key);
/* Close all keepers (monitor exit). */
void spawn_release_all(void);

#endif
