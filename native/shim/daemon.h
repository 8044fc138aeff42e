/* Where the shared Node daemon lives and how to reach or (re)start it. */
#ifndef TSRT_DAEMON_H
#define TSRT_DAEMON_H

#include <limits.h>

struct daemon_cfg {
	char ttrpc_address[PATH_MAX]; /* TTRPC_ADDRESS, else <-address>.ttrpc */
	char dir[PATH_MAX];           /* /run/tsrt/<first 16 hex of sha256(TTRPC_ADDRESS)> */
	char sock[PATH_MAX];          /* <dir>/daemon.sock */
	char node[PATH_MAX];          /* TSRT_NODE, else "node" looked up on PATH at exec time */
	char bundle[PATH_MAX];        /* TSRT_DAEMON, else <dir of our real path>/tsrt-daemon.mjs */
};

/* 0 or -1 with errno. */
int daemon_cfg_init(struct daemon_cfg *d, const char *address);
/* Non-blocking connect to daemon.sock: fd (O_NONBLOCK|O_CLOEXEC) or -errno. EAGAIN means the
 * daemon's backlog is full (alive but busy). */
int daemon_connect(const struct daemon_cfg *d);
/* Start the daemon detached (double fork, setsid, /dev/null stdio, cwd = dir). Does not wait for
 * it. 0 or -errno (only failures before the daemon's exec are seen). */
int daemon_spawn(const struct daemon_cfg *d);

#endif
