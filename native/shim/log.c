#include "log.h"
#include "util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static int log_debug;
static char log_id[128];

void log_open(const char *bundle, const char *id, int debug)
{
	char path[4096];
	log_debug = debug;
	snprintf(log_id, sizeof log_id, "%s", id);
	if (fmt_path(path, sizeof path, "%s/log", bundle) < 0)
		return;
	log_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
}

void logm(int level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	if (log_fd < 0 || (level == LV_DEBUG && !log_debug))
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

	/* Lines stay below PIPE_BUF so each write is atomic: all of it or EAGAIN. */
	char line[3072];
	int n = snprintf(line, sizeof line, "time=\"%s.%09ldZ\" level=%s msg=\"", stamp,
			 (long)ts.tv_nsec, names[level]);
	size_t w = (size_t)n;
	for (const char *p = msg; *p && w < sizeof line - 512; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			line[w++] = '\\';
			line[w++] = (char)c;
		} else if (c == '\n') {
			line[w++] = '\\';
			line[w++] = 'n';
		} else if (c < 0x20) {
			w += (size_t)snprintf(line + w, 5, "\\x%02x", c);
		} else {
			line[w++] = (char)c;
		}
	}
	n = snprintf(line + w, sizeof line - w, "\" runtime=" RUNTIME_NAME " id=%s\n", log_id);
	if (n < 0 || (size_t)n >= sizeof line - w)
		return;
	w += (size_t)n;
	/* EAGAIN (full pipe) and EPIPE (no reader; SIGPIPE is ignored) drop the line. */
	(void)!write(log_fd, line, w);
}
