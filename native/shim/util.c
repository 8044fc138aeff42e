#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void vmsg(const char *fmt, va_list ap)
{
	char line[2048];
	int n = snprintf(line, sizeof line, RUNTIME_NAME ": ");
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	(void)write_all(2, line, len);
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	exit(1);
}

void warnmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		static const char msg[] = RUNTIME_NAME ": out of memory\n";
		(void)write_all(2, msg, sizeof msg - 1);
		abort();
	}
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = xrealloc(NULL, n);
	memcpy(d, s, n);
	return d;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int read_file(const char *path, char **out, size_t *len, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t cap = 4096, n = 0;
	char *b = xrealloc(NULL, cap);
	for (;;) {
		if (cap - n < 2) {
			if (cap > max) {
				free(b);
				close(fd);
				errno = EFBIG;
				return -1;
			}
			cap *= 2;
			b = xrealloc(b, cap);
		}
		ssize_t r = read(fd, b + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(b);
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(b);
		errno = EFBIG;
		return -1;
	}
	b[n] = '\0';
	*out = b;
	if (len)
		*len = n;
	return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
	char tmp[4096];
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	if (fmt_path(tmp, sizeof tmp, "%.*s.%s.%ld.tmp", dirlen, path,
		     slash ? slash + 1 : path, (long)getpid()) < 0)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) < 0 || close(fd) < 0) {
		int e = errno;
		close(fd); /* harmless EBADF after a failed close */
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf) {
		errno = n ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	if (mkdir(buf, mode) == 0 || errno == EEXIST)
		goto check;
	if (errno != ENOENT)
		return -1;
	/* Create the parents first, then this one. */
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
check:;
	struct stat st;
	if (stat(buf, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int fifo_open_ends(const char *path, int input, int *use, int *keep)
{
	const int fl = O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
	/* The reader first in both cases: a non-blocking O_WRONLY open fails with ENXIO without one. */
	int rd = open(path, O_RDONLY | fl);
	if (rd < 0)
		return -1;
	int wr = open(path, O_WRONLY | fl);
	if (wr < 0) {
		int e = errno;
		close(rd);
		errno = e;
		return -1;
	}
	*use = input ? rd : wr;
	*keep = input ? wr : rd;
	return 0;
}

int open_log_file(const char *path, int extra_flags)
{
	if (mkdir_parent(path, 0755) < 0)
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | extra_flags, 0644);
}

int mkdir_parent(const char *path, mode_t mode)
{
	char buf[4096];
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	if (fmt_path(buf, sizeof buf, "%.*s", (int)(slash - path), path) < 0)
		return -1;
	return mkdir_p(buf, mode);
}

int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
		return -1;
	return 0;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int fmt_path(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Go's path.Clean: collapse "//", drop ".", resolve ".." lexically. */
static void path_clean(char *s)
{
	int rooted = s[0] == '/';
	size_t r = 0, w = 0, dotdot = 0;
	size_t n = strlen(s);
	if (n == 0) {
		strcpy(s, ".");
		return;
	}
	if (rooted) {
		s[w++] = '/';
		r = 1;
		dotdot = 1;
	}
	while (r < n) {
		if (s[r] == '/') {
			r++;
		} else if (s[r] == '.' && (r + 1 == n || s[r + 1] == '/')) {
			r++;
		} else if (s[r] == '.' && s[r + 1] == '.' && (r + 2 == n || s[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && s[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					s[w++] = '/';
				s[w++] = '.';
				s[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				s[w++] = '/';
			for (; r < n && s[r] != '/'; r++)
				s[w++] = s[r];
		}
	}
	if (w == 0)
		s[w++] = '.';
	s[w] = '\0';
}

int path_join3(char *out, size_t size, const char *a, const char *b, const char *c)
{
	const char *parts[3] = { a, b, c };
	size_t w = 0;
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(parts[i]);
		if (n == 0)
			continue;
		if (w + n + 2 > size) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (w > 0)
			out[w++] = '/';
		memcpy(out + w, parts[i], n);
		w += n;
	}
	if (size == 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	out[w] = '\0';
	if (w == 0)
		return 0; /* Go: Join of only empty strings is "" */
	path_clean(out);
	return 0;
}

int unix_sockaddr(struct sockaddr_un *sa, socklen_t *len, const char *path)
{
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof sa->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n + 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int unix_socket_alive(const char *path)
{
	struct sockaddr_un sa;
	socklen_t len;
	if (unix_sockaddr(&sa, &len, path) < 0)
		return 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct timeval tv = { 0, 100 * 1000 };
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int rc = connect(fd, (struct sockaddr *)&sa, len);
	int e = errno;
	close(fd);
	return rc == 0 || e == EAGAIN || e == EINPROGRESS || e == ETIMEDOUT || e == EINTR;
}

void child_reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		(void)sigaction(sig, &sa, NULL); /* EINVAL for the glibc-reserved ones */
	}
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

int child_devnull_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (fd != i && dup2(fd, i) < 0)
			return -1;
	if (fd > 2)
		close(fd);
	return 0;
}

void close_fds_from(int low, int keep)
{
	if (keep >= low) {
		if (keep > low && close_range((unsigned)low, (unsigned)keep - 1, 0) < 0)
			goto slow;
		if (close_range((unsigned)keep + 1, ~0U, 0) < 0)
			goto slow;
		return;
	}
	if (close_range((unsigned)low, ~0U, 0) == 0)
		return;
slow:;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1048576)
		max = 1048576;
	for (int fd = low; fd < max; fd++)
		if (fd != keep)
			(void)close(fd);
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
