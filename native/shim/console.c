/* Consoles for `--console-socket`.
 *
 * `console` creates a listening unix socket under CONSOLE_DIR and opens the stdio. runc (or crun)
 * connects and sends one message whose SCM_RIGHTS control message carries the pty master. The
 * loop accepts it without blocking, closes and unlinks the listener, and from then on copies
 * master -> stdout and stdin -> master through two bounded buffers: a source is polled only while
 * its buffer has room, a destination only while there is something to write. */
#include "console.h"
#include "control.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define CBUF (32 * 1024)
#define DRAIN_ROUNDS 64   /* reads per console in one drain pass (a live writer cannot hold us) */
#define MAX_FDS 8         /* fds accepted in one message; all but the first are closed */

/* Bytes on their way from one fd to another. */
struct ring {
	size_t off, len;
	uint8_t d[CBUF];
};

/* A pending consolewait. */
struct cwait {
	struct cwait *next;
	uint64_t conn;
	char *seq;
	int64_t deadline, timeout;
};

struct console {
	struct console *next;
	char *key;
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
	int lfd;          /* listening socket; -1 once the master has arrived */
	int cfd;          /* accepted connection whose message is awaited */
	int master;       /* -1 before it arrives and after a stdin EOF closed it */
	int got_master;
	int hup;          /* the slave side hung up: no more input goes to the master */
	int eof;          /* no more output comes from the master */
	int in_fd, in_keep;
	int out_fd, out_keep; /* out_fd -1: output is discarded */
	struct cwait *waits;
	struct ring to_out, to_master;
};

static struct console *consoles;
static size_t nconsoles;
/* bytes copied by every console so far: stdin -> master, master -> stdout */
static uint64_t copied_in, copied_out;

static struct console *find(const char *key)
{
	for (struct console *c = consoles; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static size_t room(const struct ring *r)
{
	return CBUF - r->len;
}

static ssize_t ring_read(struct ring *r, int fd)
{
	if (r->len == 0)
		r->off = 0;
	if (r->off + r->len == CBUF) {
		memmove(r->d, r->d + r->off, r->len);
		r->off = 0;
	}
	ssize_t n;
	do
		n = read(fd, r->d + r->off + r->len, CBUF - r->off - r->len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->len += (size_t)n;
	return n;
}

static ssize_t ring_write(struct ring *r, int fd)
{
	ssize_t n;
	do
		n = write(fd, r->d + r->off, r->len);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		r->off += (size_t)n;
		r->len -= (size_t)n;
	}
	return n;
}

/* The master has nothing more to give (every slave fd is closed, or stdin's EOF shut the console down)
 * and all of it is written: close stdout now, so that its reader sees EOF when the process exits, not
 * when it is deleted (containerd's CRI streams and 1.6.36+/1.7.20+ deletes wait for that EOF). */
static void out_end(struct console *c)
{
	if (!c->eof || c->to_out.len > 0 || (c->out_fd < 0 && c->out_keep < 0))
		return;
	close_fd(&c->out_fd);
	close_fd(&c->out_keep);
	logm(LV_DEBUG, "console %s: output ended, stdout closed", c->key);
}

/* Write what is buffered for stdout (dropped when output is discarded). */
static void out_flush(struct console *c)
{
	while (c->to_out.len > 0) {
		if (c->out_fd < 0) {
			c->to_out.len = 0;
			break;
		}
		ssize_t n = ring_write(&c->to_out, c->out_fd);
		if (n > 0)
			copied_out += (uint64_t)n;
		if (n == 0 || (n < 0 && errno == EAGAIN))
			return;
		if (n < 0) {
			logm(LV_WARN, "console %s: writing stdout: %s (output discarded from now on)", c->key,
			     strerror(errno));
			close_fd(&c->out_fd);
		}
	}
	out_end(c);
}

/* The slave side is gone: input has nowhere to go. */
static void set_hup(struct console *c)
{
	c->hup = 1;
	c->to_master.len = 0;
}

/* One read from the master. 1: got bytes; 0: nothing now (EAGAIN, or no room); -1: finished. */
static int master_read(struct console *c)
{
	if (c->master < 0 || c->eof || room(&c->to_out) == 0)
		return 0;
	ssize_t n = ring_read(&c->to_out, c->master);
	if (n > 0)
		return 1;
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n < 0 && errno != EIO)
		logm(LV_WARN, "console %s: reading the master: %s", c->key, strerror(errno));
	c->eof = 1; /* EIO: every slave fd is closed */
	set_hup(c);
	return -1;
}

/* Copy master -> stdout until the master has nothing more, stdout takes nothing more, or rounds. */
static void pump_out(struct console *c, int rounds)
{
	out_flush(c);
	for (int i = 0; i < rounds && master_read(c) > 0; i++)
		out_flush(c);
	out_end(c);
}

static void master_write(struct console *c)
{
	if (c->master < 0 || c->hup || c->to_master.len == 0)
		return;
	ssize_t n = ring_write(&c->to_master, c->master);
	if (n > 0)
		copied_in += (uint64_t)n;
	if (n < 0 && errno != EAGAIN) {
		if (errno != EIO)
			logm(LV_WARN, "console %s: writing the master: %s", c->key, strerror(errno));
		set_hup(c);
	}
}

/* stdin ended (closeio, then the client closed): like runc-v2, shut the console down. */
static void stdin_eof(struct console *c)
{
	close_fd(&c->in_fd);
	if (c->master < 0)
		return;
	master_write(c);
	pump_out(c, DRAIN_ROUNDS);
	close_fd(&c->master);
	c->eof = 1;
	set_hup(c);
	logm(LV_DEBUG, "console %s: stdin closed, console shut down", c->key);
	out_end(c);
}

static void stdin_read(struct console *c)
{
	if (c->in_fd < 0 || c->master < 0 || c->hup || room(&c->to_master) == 0)
		return;
	ssize_t n = ring_read(&c->to_master, c->in_fd);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		if (n < 0)
			logm(LV_WARN, "console %s: reading stdin: %s", c->key, strerror(errno));
		stdin_eof(c);
		return;
	}
	master_write(c);
}

static void answer_waits(struct console *c, int err, const char *msg)
{
	while (c->waits) {
		struct cwait *w = c->waits;
		c->waits = w->next;
		if (err)
			control_reply_err(w->conn, w->seq, err, msg);
		else
			control_reply_ok(w->conn, w->seq, NULL);
		free(w->seq);
		free(w);
	}
}

/* Receive the one message of an accepted connection; keep listening if it carries no pty. */
static void recv_master(struct console *c)
{
	char data[512];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b,
	};
	ssize_t n = recvmsg(c->cfd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	int fd = -1;
	for (struct cmsghdr *h = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int f;
			memcpy(&f, CMSG_DATA(h) + i * sizeof(int), sizeof f);
			if (fd < 0)
				fd = f;
			else
				close(f);
		}
	}
	close_fd(&c->cfd);
	if (fd >= 0 && (!isatty(fd) || set_nonblock(fd, 1) < 0)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		logm(LV_WARN, "console %s: a connection to %s sent no pty master", c->key, c->path);
		return;
	}
	close_fd(&c->lfd);
	(void)unlink(c->path);
	c->path[0] = '\0';
	c->master = fd;
	c->got_master = 1;
	logm(LV_DEBUG, "console %s: got the pty master", c->key);
	answer_waits(c, 0, NULL);
}

static void accept_peer(struct console *c)
{
	int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			logm(LV_WARN, "console %s: accept: %s", c->key, strerror(errno));
		return;
	}
	c->cfd = fd;
	recv_master(c); /* the message is usually there already */
}

static void destroy(struct console *c, int drain)
{
	if (drain && c->master >= 0)
		pump_out(c, DRAIN_ROUNDS);
	answer_waits(c, ENOENT, "console released");
	if (c->lfd >= 0)
		(void)unlink(c->path);
	close_fd(&c->lfd);
	close_fd(&c->cfd);
	close_fd(&c->master);
	close_fd(&c->in_fd);
	close_fd(&c->in_keep);
	close_fd(&c->out_fd);
	close_fd(&c->out_keep);
	free(c->key);
	free(c);
}

/* Opens the stdio of c from the specs. 0 or -1 with errno (message in err). */
static int open_stdio(struct console *c, const char *in_spec, const char *out_spec, char *err, size_t errlen)
{
	const char *name = "stdin", *what = in_spec;
	if (strncmp(in_spec, "fifo:", 5) == 0) {
		if (fifo_open_ends(in_spec + 5, 1, &c->in_fd, &c->in_keep) < 0)
			goto fail;
	} else if (in_spec[0]) {
		errno = EINVAL;
		goto fail;
	}
	name = "stdout";
	what = out_spec;
	if (strncmp(out_spec, "fifo:", 5) == 0) {
		if (fifo_open_ends(out_spec + 5, 0, &c->out_fd, &c->out_keep) < 0)
			goto fail;
	} else if (strncmp(out_spec, "file:", 5) == 0) {
		c->out_fd = open_log_file(out_spec + 5, O_NONBLOCK);
		if (c->out_fd < 0)
			goto fail;
	} else if (out_spec[0]) {
		errno = EINVAL;
		goto fail;
	}
	return 0;
fail:
	int e = errno;
	snprintf(err, errlen, "open %s %s: %s", name, what, strerror(e));
	errno = e;
	return -1;
}

static int listen_at(struct console *c, char *err, size_t errlen)
{
	static unsigned counter;
	struct sockaddr_un sa;
	socklen_t salen;
	if (mkdir_p(CONSOLE_DIR, 0700) < 0) {
		snprintf(err, errlen, "mkdir %s: %s", CONSOLE_DIR, strerror(errno));
		return -1;
	}
	if (fmt_path(c->path, sizeof c->path, CONSOLE_DIR "/%d-%u.sock", (int)getpid(), ++counter) < 0 ||
	    unix_sockaddr(&sa, &salen, c->path) < 0) {
		snprintf(err, errlen, "console socket path: %s", strerror(errno));
		c->path[0] = '\0';
		return -1;
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0)
		goto fail;
	(void)unlink(c->path); /* left behind by a dead monitor that had our pid */
	if (bind(c->lfd, (struct sockaddr *)&sa, salen) < 0)
		goto fail;
	if (listen(c->lfd, 4) < 0) {
		int e = errno;
		(void)unlink(c->path);
		errno = e;
		goto fail;
	}
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "console socket %s: %s", c->path, strerror(e));
	close_fd(&c->lfd);
	errno = e;
	return -1;
}

int console_open(const char *key, const char *in_spec, const char *out_spec, char *path, size_t pathlen,
		 char *err, size_t errlen)
{
	if (find(key)) {
		snprintf(err, errlen, "io key %s already has a console", key);
		return EEXIST;
	}
	struct console *c = xrealloc(NULL, sizeof *c);
	memset(c, 0, sizeof *c);
	c->lfd = c->cfd = c->master = c->in_fd = c->in_keep = c->out_fd = c->out_keep = -1;
	c->key = xstrdup(key);
	if (open_stdio(c, in_spec, out_spec, err, errlen) < 0 || listen_at(c, err, errlen) < 0) {
		int e = errno;
		destroy(c, 0);
		return e ? e : EIO;
	}
	if (fmt_path(path, pathlen, "%s", c->path) < 0) {
		snprintf(err, errlen, "console socket path: %s", strerror(ENAMETOOLONG));
		destroy(c, 0);
		return ENAMETOOLONG;
	}
	c->next = consoles;
	consoles = c;
	nconsoles++;
	return 0;
}

void console_wait(uint64_t conn, const char *seq, const char *key, int64_t timeout_ms)
{
	struct console *c = find(key);
	if (!c) {
		char err[256];
		snprintf(err, sizeof err, "io key %s has no console", key);
		control_reply_err(conn, seq, ENOENT, err);
		return;
	}
	if (c->got_master) {
		control_reply_ok(conn, seq, NULL);
		return;
	}
	struct cwait *w = xrealloc(NULL, sizeof *w);
	w->conn = conn;
	w->seq = xstrdup(seq);
	w->timeout = timeout_ms;
	w->deadline = mono_ms() + timeout_ms;
	w->next = c->waits;
	c->waits = w;
}

int console_resize(const char *key, unsigned width, unsigned height, char *err, size_t errlen)
{
	struct console *c = find(key);
	if (!c || c->master < 0) {
		snprintf(err, errlen, "io key %s has %s", key,
			 !c ? "no console" : c->got_master ? "a closed console" : "no console master yet");
		return ENOENT;
	}
	struct winsize ws = { .ws_row = (unsigned short)height, .ws_col = (unsigned short)width };
	if (ioctl(c->master, TIOCSWINSZ, &ws) < 0) {
		int e = errno;
		snprintf(err, errlen, "console %s: TIOCSWINSZ: %s", key, strerror(e));
		return e;
	}
	return 0;
}

void console_closeio(const char *key)
{
	struct console *c = find(key);
	if (c)
		close_fd(&c->in_keep);
}

void console_release(const char *key)
{
	for (struct console **pp = &consoles; *pp; pp = &(*pp)->next) {
		struct console *c = *pp;
		if (strcmp(c->key, key) != 0)
			continue;
		*pp = c->next;
		nconsoles--;
		destroy(c, 1);
		return;
	}
}

void console_release_all(void)
{
	while (consoles) {
		struct console *c = consoles;
		consoles = c->next;
		destroy(c, 0);
	}
	nconsoles = 0;
}

void console_drain_all(void)
{
	for (struct console *c = consoles; c; c = c->next)
		pump_out(c, DRAIN_ROUNDS);
}

void console_io_counts(uint64_t *in, uint64_t *out)
{
	*in = copied_in;
	*out = copied_out;
}

size_t console_slots(void)
{
	return 4 * nconsoles;
}

size_t console_count(void)
{
	return nconsoles;
}

static void slot(struct pollfd *p, int fd, short events)
{
	/* fd -1 when nothing is wanted: a hung-up fd would otherwise report POLLHUP forever */
	p->fd = events && fd >= 0 ? fd : -1;
	p->events = events;
}

void console_fill(struct pollfd *p)
{
	for (struct console *c = consoles; c; c = c->next, p += 4) {
		if (c->cfd >= 0)
			slot(&p[0], c->cfd, POLLIN);
		else
			slot(&p[0], c->lfd, POLLIN);
		short m = 0;
		if (!c->eof && room(&c->to_out) > 0)
			m |= POLLIN;
		if (!c->hup && c->to_master.len > 0)
			m |= POLLOUT;
		slot(&p[1], c->master, m);
		int want_in = c->master >= 0 && !c->hup && room(&c->to_master) > 0;
		slot(&p[2], c->in_fd, want_in ? POLLIN : 0);
		slot(&p[3], c->out_fd, c->to_out.len > 0 ? POLLOUT : 0);
	}
}

void console_dispatch(const struct pollfd *p)
{
	for (struct console *c = consoles; c; c = c->next, p += 4) {
		if (p[0].revents) {
			if (p[0].fd == c->cfd)
				recv_master(c);
			else if (p[0].fd == c->lfd)
				accept_peer(c);
		}
		short m = p[1].fd >= 0 && p[1].fd == c->master ? p[1].revents : 0;
		if (m & (POLLHUP | POLLERR | POLLNVAL))
			set_hup(c);
		if (m & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
			/* a hang-up with nothing to read would otherwise be reported again at once */
			if (master_read(c) == 0 && c->hup && room(&c->to_out) > 0)
				c->eof = 1;
			out_flush(c);
		}
		if (m & POLLOUT)
			master_write(c);
		if (p[2].revents && p[2].fd == c->in_fd)
			stdin_read(c);
		if (p[3].revents && p[3].fd == c->out_fd)
			out_flush(c);
	}
}

int64_t console_deadline(void)
{
	int64_t d = -1;
	for (struct console *c = consoles; c; c = c->next)
		for (struct cwait *w = c->waits; w; w = w->next)
			if (d < 0 || w->deadline < d)
				d = w->deadline;
	return d;
}

void console_timers(int64_t now)
{
	for (struct console *c = consoles; c; c = c->next) {
		for (struct cwait **pp = &c->waits; *pp;) {
			struct cwait *w = *pp;
			if (w->deadline > now) {
				pp = &w->next;
				continue;
			}
			*pp = w->next;
			char err[256];
			snprintf(err, sizeof err, "no console master for io key %s within %lld ms", c->key,
				 (long long)w->timeout);
			control_reply_err(w->conn, w->seq, ETIMEDOUT, err);
			free(w->seq);
			free(w);
		}
	}
}
