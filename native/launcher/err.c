#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

char err_line[ERR_MAX];
static int err_fd = -1;

static void vformat(char *buf, size_t n, const char *prefix, const char *step, int errnum,
		    const char *fmt, va_list ap)
{
	int k = snprintf(buf, n, "%s%s: ", prefix, step);
	if (k < 0 || (size_t)k >= n)
		return;
	int m = vsnprintf(buf + k, n - (size_t)k, fmt, ap);
	if (m < 0 || (size_t)(k + m) >= n)
		return;
	snprintf(buf + k + m, n - (size_t)(k + m), ": %s", strerror(errnum));
}

int fail(const char *step, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(err_line, sizeof err_line, "tsrt-launch: ", step, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

int fail_program(const char *name, const char *fmt, ...)
{
	char reason[ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	snprintf(err_line, sizeof err_line, "unable to start container process: exec: \"%.256s\": %.512s", name, reason);
	return -1;
}

const char *go_strerror(int errnum)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s", strerror(errnum));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

int err_open(const char *path)
{
	if (!path)
		return 0;
	/* O_APPEND: a warning and the error that may follow it both stay, whichever process writes. */
	err_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (err_fd < 0)
		return fail("errfile", errno, "%s", path);
	return 0;
}

void err_redirect(int fd)
{
	err_fd = fd;
}

static void put(int fd, const char *line)
{
	char buf[ERR_MAX + 1];
	size_t n = strnlen(line, ERR_MAX);
	memcpy(buf, line, n);
	buf[n++] = '\n';
	/* One write, so that the line is never interleaved with another writer's. */
	ssize_t w = write(fd, buf, n);
	(void)w;
}

void err_report(const char *line)
{
	if (err_fd >= 0)
		put(err_fd, line);
	put(STDERR_FILENO, line);
}

void warn_line(const char *step, int errnum, const char *fmt, ...)
{
	char buf[ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vformat(buf, sizeof buf, "tsrt-launch: warning: ", step, errnum, fmt, ap);
	va_end(ap);
	err_report(buf);
}
