/* The `copy` request: the monitor copies between an endpoint (a VM agent's unix socket, a FIFO or a
 * character device that carries one process stream) and containerd's side (a stdio FIFO or a log file).
 *
 * A copy moves bytes from src to dst: for "out" the endpoint to the target, for "in" the stdin FIFO to the
 * endpoint. Everything is non-blocking and driven from the poll loop, two slots per copy.
 *
 * When one side is a pipe (a FIFO), splice(2) moves the bytes inside the kernel. An EAGAIN from a splice
 * does not say which side is not ready, so the copy keeps one flag per side, set when poll reports that
 * side and cleared by an EAGAIN, splices only while both are set, and polls only the sides whose flag is
 * clear. A full destination is then waited for with POLLOUT alone (the readable source is not polled, so a
 * stalled copy does not wake the loop) and nothing is read that cannot be written. Where splice refuses the
 * pair (EINVAL: an O_APPEND log file, most character devices) and where neither side is a pipe (a socket
 * to a log file), the copy reads into a 32 KiB buffer and writes from it instead, polling the source only
 * while the buffer has room and the destination only while it holds bytes.
 *
 * A copy depends on nothing but its two fds: it goes on when the daemon's control connection drops.
 * SIGPIPE is ignored in the monitor (monitor.c), so a write to a socket whose peer has gone is EPIPE. */
#include "copy.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPLICE_CHUNK (1 << 16) /* a pipe's default capacity: one splice moves no more */
#define RWBUF (32 * 1024)
#define ROUNDS 16              /* moves per copy and wake-up: a busy copy cannot hold the loop */

struct copy {
	struct copy *next;
	char *key;
	char *endpoint;           /* as requested, for log lines */
	int in;                   /* 1: stdin FIFO -> endpoint; 0: endpoint -> target */
	int src, dst;
	int keep;                 /* in: the stdin FIFO's keeper writer, closed by closeio */
	int ep_sock;              /* the endpoint is a socket: an in copy ends by shutting its write side */
	int use_splice;
	int src_ready, dst_ready; /* splice: poll reported the side, and no EAGAIN came since */
	int eof, eof_err;         /* read/write: the source has ended (errno, 0 for end of stream) */
	int shut;                 /* in, socket: write side shut, waiting for the peer to close */
	int gone;                 /* ended: freed by the sweep */
	uint8_t *buf;             /* read/write: bytes read but not yet written */
	size_t off, len;
	uint64_t bytes;
};

static struct copy *copies;
static size_t ncopies;
static uint64_t copied_in, copied_out;

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static const char *dir_name(const struct copy *c)
{
	return c->in ? "in" : "out";
}

/* Close everything, containerd's side first (so that an agent seeing its connection end knows containerd's
 * EOF is out); the sweep frees it. */
static void end_copy(struct copy *c, int level, const char *why)
{
	close_fd(c->in ? &c->src : &c->dst);
	close_fd(&c->keep);
	close_fd(c->in ? &c->dst : &c->src);
	c->gone = 1;
	logm(level, "copy %s %s %s ended: %s (%llu bytes)", c->key, dir_name(c), c->endpoint, why,
	     (unsigned long long)c->bytes);
}

static void moved(struct copy *c, size_t n)
{
	c->bytes += n;
	if (c->in)
		copied_in += n;
	else
		copied_out += n;
}

/* The source has ended (err 0: end of stream) and nothing read is left to write. out: closing the target
 * is containerd's EOF. in: the process's EOF is a shut write side for a socket (the peer may still be
 * reading what it got; the fd goes once it closes too), a close for a pipe or device. */
static void source_ended(struct copy *c, int err)
{
	char why[128];
	int level = err == 0 || err == ECONNRESET || err == EIO ? LV_DEBUG : LV_WARN;
	snprintf(why, sizeof why, "%s%s", err ? "reading: " : "end of stream", err ? strerror(err) : "");
	if (!c->in || !c->ep_sock) {
		end_copy(c, level, why);
		return;
	}
	close_fd(&c->src);
	close_fd(&c->keep);
	if (shutdown(c->dst, SHUT_WR) < 0) {
		end_copy(c, LV_DEBUG, "the endpoint is gone");
		return;
	}
	c->shut = 1;
	logm(level, "copy %s in %s: input ended (%s), write side shut", c->key, c->endpoint, why);
}

/* A write into dst failed. For an in copy whose endpoint's peer has gone, stopping is the normal end. */
static void write_failed(struct copy *c, int err)
{
	char why[128];
	snprintf(why, sizeof why, "writing the %s: %s", c->in ? "endpoint" : "target", strerror(err));
	end_copy(c, c->in && (err == EPIPE || err == ECONNRESET) ? LV_DEBUG : LV_WARN, why);
}

/* Move what can be moved now through the buffer; readable/writable: poll reported that side. The source
 * is read only when poll reported it: a FIFO endpoint no writer has opened yet would read as EOF. */
static void rw_pump(struct copy *c, int readable, int writable)
{
	for (int i = 0; i < ROUNDS; i++) {
		int progress = 0;
		if (c->len > 0 && writable) {
			ssize_t n = write(c->dst, c->buf + c->off, c->len);
			if (n > 0) {
				c->off += (size_t)n;
				c->len -= (size_t)n;
				moved(c, (size_t)n);
				progress = 1;
			} else if (n < 0 && errno == EAGAIN) {
				writable = 0;
			} else if (n < 0 && errno == EINTR) {
				progress = 1;
			} else {
				write_failed(c, n < 0 ? errno : EIO);
				return;
			}
		}
		if (c->len == 0)
			c->off = 0;
		if (c->eof && c->len == 0)
			break;
		if (!c->eof && c->len < RWBUF && readable) {
			if (c->off + c->len == RWBUF) {
				memmove(c->buf, c->buf + c->off, c->len);
				c->off = 0;
			}
			ssize_t n = read(c->src, c->buf + c->off + c->len, RWBUF - c->off - c->len);
			if (n > 0) {
				c->len += (size_t)n;
				writable = 1; /* worth a try: an EAGAIN settles it */
				progress = 1;
			} else if (n < 0 && errno == EAGAIN) {
				readable = 0;
			} else if (n < 0 && errno == EINTR) {
				progress = 1;
			} else {
				c->eof = 1;
				c->eof_err = n < 0 ? errno : 0;
				progress = 1;
			}
		}
		if (!progress)
			break;
	}
	if (c->eof && c->len == 0)
		source_ended(c, c->eof_err);
}

/* splice refused this pair of fds: go on with read/write (nothing is in flight with splice). */
static void to_rw(struct copy *c)
{
	c->use_splice = 0;
	c->buf = xrealloc(NULL, RWBUF);
	c->off = c->len = 0;
}

/* Called with both sides ready. */
static void splice_pump(struct copy *c)
{
	for (int i = 0; i < ROUNDS; i++) {
		ssize_t n = splice(c->src, NULL, c->dst, NULL, SPLICE_CHUNK, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			moved(c, (size_t)n);
			continue;
		}
		if (n == 0) {
			source_ended(c, 0);
			return;
		}
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN) {
			/* either side: poll both again (a readable source answers at once, then only the other one
			 * is waited for) */
			c->src_ready = c->dst_ready = 0;
			return;
		}
		if (e == EINVAL) {
			logm(LV_DEBUG, "copy %s %s %s: splice refused (EINVAL), read/write from now on", c->key,
			     dir_name(c), c->endpoint);
			to_rw(c);
			rw_pump(c, 1, 1);
			return;
		}
		/* splice does not say which side failed: an out copy's target is a FIFO the monitor also reads
		 * (no EPIPE), so it is the endpoint's (reset, or a device's EIO); an in copy's source is a FIFO, so
		 * it is the endpoint's */
		if (c->in)
			write_failed(c, e);
		else
			source_ended(c, e);
		return;
	}
	/* rounds used up: poll both again, which answers at once while they stay ready */
	c->src_ready = c->dst_ready = 0;
}

static struct copy *find_in(const char *key)
{
	for (struct copy *c = copies; c; c = c->next)
		if (c->in && !c->gone && strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

/* Opens containerd's side into c->src (in) or c->dst (out). 0 or an errno value with a message in err. */
static int open_target(struct copy *c, const char *target, char *err, size_t errlen)
{
	const char *path = target + 5;
	int fd;
	if (c->in) {
		/* As for a spawned process's stdin: a reader and a keeper writer, both O_NONBLOCK (neither open
		 * blocks, as the reader is opened first). The keeper means that containerd's (re)opening and
		 * closing its end is no EOF; closeio drops it, and the EOF that follows once containerd's end is
		 * closed as well comes after every byte written before it. */
		if (fifo_open_ends(path, 1, &c->src, &c->keep) < 0)
			goto fail;
		fd = c->src;
	} else if (strncmp(target, "fifo:", 5) == 0) {
		/* O_RDWR: the open never blocks and never fails for want of a reader, and as the monitor is a reader
		 * itself, a write never gets EPIPE while containerd has no reader open (it opens and reopens its
		 * end on its own schedule, also after a restart of its own): bytes wait in the pipe, and once it is
		 * full the copy waits for POLLOUT. Closing this one fd is containerd's EOF. */
		fd = c->dst = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			goto fail;
	} else {
		fd = c->dst = open_log_file(path, O_NONBLOCK); /* as spawn's and console's file: stdio */
		if (fd < 0)
			goto fail;
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISFIFO(st.st_mode)) {
		snprintf(err, errlen, "target %s is not a FIFO", path);
		return EINVAL;
	}
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "open target %s: %s", path, strerror(e));
	return e;
}

static int connect_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int fd = -1;
	if (unix_sockaddr(&sa, &salen, path) < 0)
		goto fail;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* a unix stream connect does not go in progress: it is done at once, or fails (EAGAIN while the
	 * listener's backlog is full, which the caller may retry) */
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	snprintf(err, errlen, "connect %s: %s", path, strerror(e));
	if (fd >= 0)
		close(fd);
	errno = e;
	return -1;
}

/* Opens the endpoint into c->dst (in) or c->src (out). 0 or an errno value with a message in err. */
static int open_endpoint(struct copy *c, const char *endpoint, char *err, size_t errlen)
{
	int fd;
	if (strncmp(endpoint, "unix:", 5) == 0) {
		fd = connect_unix(endpoint + 5, err, errlen);
		if (fd < 0)
			return errno;
		c->ep_sock = 1;
	} else {
		struct stat st;
		if (stat(endpoint, &st) < 0)
			goto fail;
		int flags;
		if (S_ISFIFO(st.st_mode)) {
			/* out: O_RDONLY|O_NONBLOCK does not wait for a writer, and the kernel reports no hang-up to
			 * a reader opened so before a writer has come (the loop reads only what poll reports), so
			 * the end of stream is the last writer's close. in: O_WRONLY|O_NONBLOCK fails (ENXIO) while
			 * the reader has not opened its end, and a blocking open would hold the loop; O_RDWR never
			 * blocks and the pipe keeps the bytes until the reader comes. Its price: the monitor
			 * counts as a reader, so a reader that leaves is no EPIPE, and such a copy ends at closeio
			 * or release. */
			flags = c->in ? O_RDWR : O_RDONLY;
		} else if (S_ISCHR(st.st_mode)) {
			flags = c->in ? O_WRONLY : O_RDONLY;
		} else {
			snprintf(err, errlen, "endpoint %s is not a FIFO or a character device", endpoint);
			return EINVAL;
		}
		fd = open(endpoint, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			goto fail;
		struct stat now;
		if (fstat(fd, &now) < 0 || (now.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
			close(fd);
			snprintf(err, errlen, "endpoint %s changed while it was opened", endpoint);
			return EINVAL;
		}
	}
	if (c->in)
		c->dst = fd;
	else
		c->src = fd;
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "open endpoint %s: %s", endpoint, strerror(e));
	return e;
}

static int is_pipe(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static void free_copy(struct copy *c)
{
	close_fd(&c->src);
	close_fd(&c->dst);
	close_fd(&c->keep);
	free(c->key);
	free(c->endpoint);
	free(c->buf);
	free(c);
}

int copy_start(const char *key, const char *direction, const char *endpoint, const char *target, char *err,
	       size_t errlen)
{
	int in;
	if (strcmp(direction, "in") == 0) {
		in = 1;
	} else if (strcmp(direction, "out") == 0) {
		in = 0;
	} else {
		snprintf(err, errlen, "unknown copy direction %.16s (in or out)", direction);
		return EINVAL;
	}
	const char *epath = strncmp(endpoint, "unix:", 5) == 0 ? endpoint + 5 : endpoint;
	if (epath[0] != '/') {
		snprintf(err, errlen, "endpoint %.256s is neither unix:<absolute path> nor an absolute path", endpoint);
		return EINVAL;
	}
	int fifo = strncmp(target, "fifo:", 5) == 0, file = strncmp(target, "file:", 5) == 0;
	if (!(fifo || (file && !in)) || target[5] == '\0') {
		snprintf(err, errlen, "bad %s copy target %.256s (fifo:<path>%s)", direction, target,
			 in ? "" : " or file:<path>");
		return EINVAL;
	}
	/* one reader of containerd's stdin per key: two would split its bytes between them */
	if (in && find_in(key)) {
		snprintf(err, errlen, "io key %.256s already has an in copy", key);
		return EEXIST;
	}
	struct copy *c = xrealloc(NULL, sizeof *c);
	*c = (struct copy){ .key = xstrdup(key), .endpoint = xstrdup(endpoint), .in = in, .src = -1, .dst = -1,
			    .keep = -1 };
	/* containerd's side first: a failure there leaves the agent without a connection that comes and goes */
	int e = open_target(c, target, err, errlen);
	if (!e)
		e = open_endpoint(c, endpoint, err, errlen);
	if (e) {
		free_copy(c);
		return e;
	}
	/* TSRT_COPY_SPLICE=0 in the monitor's environment: read/write for every copy (a way around a kernel
	 * whose splice misbehaves for some pair, and how the tests run read/write into a FIFO that fills) */
	const char *knob = getenv("TSRT_COPY_SPLICE");
	c->use_splice = (is_pipe(c->src) || is_pipe(c->dst)) && !(knob && strcmp(knob, "0") == 0);
	if (!c->use_splice)
		to_rw(c);
	/* the source waits for poll (see rw_pump); the destination is tried, an EAGAIN settles it */
	c->dst_ready = 1;
	c->next = copies;
	copies = c;
	ncopies++;
	logm(LV_DEBUG, "copy %s %s started: %s %s %s (%s)", key, direction, endpoint, in ? "<-" : "->", target,
	     c->use_splice ? "splice" : "read/write");
	return 0;
}

static void sweep(void)
{
	for (struct copy **pp = &copies; *pp;) {
		struct copy *c = *pp;
		if (!c->gone) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		free_copy(c);
		ncopies--;
	}
}

void copy_closeio(const char *key)
{
	for (struct copy *c = copies; c; c = c->next)
		if (c->in && strcmp(c->key, key) == 0)
			close_fd(&c->keep);
}

void copy_release(const char *key)
{
	for (struct copy *c = copies; c; c = c->next)
		if (!c->gone && strcmp(c->key, key) == 0)
			end_copy(c, LV_DEBUG, "released");
	sweep();
}

void copy_release_all(void)
{
	while (copies) {
		struct copy *c = copies;
		copies = c->next;
		free_copy(c);
	}
	ncopies = 0;
}

void copy_io_counts(uint64_t *in, uint64_t *out)
{
	*in = copied_in;
	*out = copied_out;
}

size_t copy_slots(void)
{
	return 2 * ncopies;
}

size_t copy_count(void)
{
	return ncopies;
}

static void slot(struct pollfd *p, int fd, short events, int always)
{
	/* fd -1 when nothing is wanted: a hung-up fd would otherwise report POLLHUP at every poll */
	p->fd = (events || always) && fd >= 0 ? fd : -1;
	p->events = events;
}

void copy_fill(struct pollfd *p)
{
	for (struct copy *c = copies; c; c = c->next, p += 2) {
		int want_src = 0, want_dst = 0;
		if (c->shut) {
			/* nothing: only the peer's close is waited for */
		} else if (c->use_splice) {
			want_src = !c->src_ready;
			want_dst = !c->dst_ready;
		} else {
			want_src = !c->eof && c->len < RWBUF;
			want_dst = c->len > 0;
		}
		slot(&p[0], c->src, want_src ? POLLIN : 0, 0);
		/* an in copy's endpoint is always polled: its peer's hang-up ends the copy also while there is
		 * nothing to write */
		slot(&p[1], c->dst, want_dst ? POLLOUT : 0, c->in);
	}
}

void copy_dispatch(const struct pollfd *p)
{
	for (struct copy *c = copies; c; c = c->next, p += 2) {
		if (c->gone)
			continue;
		short rs = p[0].fd >= 0 && p[0].fd == c->src ? p[0].revents : 0;
		short rd = p[1].fd >= 0 && p[1].fd == c->dst ? p[1].revents : 0;
		if (c->shut) {
			if (rd)
				end_copy(c, LV_DEBUG, "input ended and the endpoint closed");
			continue;
		}
		if (c->in && (rd & (POLLHUP | POLLERR | POLLNVAL))) {
			end_copy(c, LV_DEBUG, "the endpoint hung up");
			continue;
		}
		if (c->use_splice) {
			if (rs)
				c->src_ready = 1;
			if (rd)
				c->dst_ready = 1;
			if (c->src_ready && c->dst_ready)
				splice_pump(c);
		} else if (rs || rd) {
			rw_pump(c, rs != 0, rd != 0);
		}
	}
	sweep();
}
