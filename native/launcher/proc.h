/* The process: hostname, sysctl, console, rlimits, groups and user, umask, cwd, capabilities,
 * no_new_privs, the lookup of argv[0], the exec FIFO, execve; and the pidfile the parent writes. */
#ifndef TSRT_LAUNCH_PROC_H
#define TSRT_LAUNCH_PROC_H

#include "plan.h"

#include <sys/types.h>

/* hostname, domainname, sysctl (create only; in the container, after the pivot). */
int uts_sysctl_setup(const struct plan *p);

/* Connects to the console socket (a host path, so before any setns or pivot); the fd, or -1. */
int console_connect(const char *path);

/* Opens a pty in the container (/dev/ptmx), sends its master over sock, makes the slave the
 * controlling terminal and stdin, stdout and stderr; closes sock. */
int console_setup(int sock);

/* rlimit, bounding set, groups, user, umask, cwd, capabilities, no_new_privs, then argv[0] looked up
 * (as the container's user, so that a missing or unusable program is an error before "ready"). */
int proc_setup(const struct plan *p);

/* execve of the looked-up program with the plan's argv and env; returns only on failure (err_line). */
int proc_exec(const struct plan *p);

/* The exec FIFO's directory, opened before the pivot; fifo_wait opens the FIFO through it for
 * writing (blocking until Start opens it for reading) and writes one byte. */
int fifo_prepare(const char *path);
int fifo_wait(void);

/* The pidfile's directory, opened before any setns; pidfile_write writes pid atomically (a
 * temporary file renamed over the name). */
int pidfile_prepare(const char *path);
int pidfile_write(pid_t pid);

#endif
