/* The launcher's one error line: `tsrt-launch: <step>: <what>: <strerror>`.
 *
 * A failing function calls fail(), which formats the line into a buffer and returns -1; the caller
 * passes the -1 up. The process that reports (the launcher's parent half) writes the line with
 * err_report() to the errfile (opened at start, so that it stays reachable after pivot_root and
 * setns) and to stderr. */
#ifndef TSRT_LAUNCH_ERR_H
#define TSRT_LAUNCH_ERR_H

#include <stddef.h>

#define ERR_MAX 1024

/* The last failure's line, without the newline ("" when none). */
extern char err_line[ERR_MAX];

/* Formats "tsrt-launch: <step>: <what>: <strerror(errnum)>" into err_line; returns -1. */
int fail(const char *step, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The line runc writes when the process's program cannot be found or run, so that what a user reads (and
 * searches for) is the same: `unable to start container process: exec: "<name>": <reason>`, the reason
 * worded as Go words it ("stat /x: no such file or directory", "executable file not found in $PATH",
 * "permission denied"). Returns -1. */
int fail_program(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* strerror(errnum) as Go's syscall package words it: the same words, lower case first. */
const char *go_strerror(int errnum);

/* Opens (creates, truncates) the errfile; -1 with err_line set on failure. NULL: none. */
int err_open(const char *path);

/* Lines go to fd from now on instead of the errfile (an exec server's child: its report pipe). */
void err_redirect(int fd);
/* Writes line and a newline to the errfile (when open) and to stderr. */
void err_report(const char *line);

/* A non-fatal problem: "tsrt-launch: warning: <step>: <what>: <strerror>" to the errfile and stderr. */
void warn_line(const char *step, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
