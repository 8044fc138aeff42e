/* Exec servers' channels and the `handoff` request (handoff.h).
 *
 * A channel carries one request per message, monitor -> server: the message text with SCM_RIGHTS for the
 * process's stdin, stdout and stderr; and one answer per message, server -> monitor, in the order of the
 * requests: "p <pid>" or "e <error line>". The monitor keeps the (connection, sequence) of each request
 * sent and not answered yet, and polls every channel: an answer goes to the oldest request, and the end of
 * a channel (its server exited) fails what is pending and frees the key. Nothing blocks: a send that would
 * (the server has stopped reading) fails with EAGAIN and the daemon starts the process the slow way. */
#include "handoff.h"
#include "control.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ANSWER_MAX 2048

struct pending {
	struct pending *next;
	uint64_t conn;
	char *seq;
};

struct channel {
	struct channel *next;
	char *key;
	int fd;
	struct pending *head, **tail;
	int gone;
};

static struct channel *channels;

static struct channel *find(const char *key)
{
	for (struct channel *c = channels; c; c = c->next)
		if (!c->gone && strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

int handoff_channel(const char *key)
{
	if (find(key)) {
		errno = EEXIST;
		return -1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (set_nonblock(sv[0], 1) < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		errno = e;
		return -1;
	}
	struct channel *c = xrealloc(NULL, sizeof *c);
	*c = (struct channel){ .next = channels, .key = xstrdup(key), .fd = sv[0] };
	c->tail = &c->head;
	channels = c;
	return sv[1];
}

static struct pending *pop(struct channel *c)
{
	struct pending *p = c->head;
	if (p) {
		c->head = p->next;
		if (!c->head)
			c->tail = &c->head;
	}
	return p;
}

/* "p <pid>[\n<warning lines>]": ok with the pid and the warnings; "e <line>": ENOEXEC with the line. */
static void answer(struct pending *p, const char *text, size_t n)
{
	char a[ANSWER_MAX + 3];
	memcpy(a, text, n);
	a[n] = '\0';
	if (n >= 2 && a[0] == 'p' && a[1] == ' ') {
		char *nl = strchr(a + 2, '\n');
		if (nl)
			*nl++ = '\0';
		control_reply_ok2(p->conn, p->seq, a + 2, nl ? nl : "");
	} else if (n >= 2 && a[0] == 'e' && a[1] == ' ') {
		control_reply_err(p->conn, p->seq, ENOEXEC, a + 2);
	} else {
		control_reply_err(p->conn, p->seq, EPROTO, "malformed answer from the exec server");
	}
	free(p->seq);
	free(p);
}

/* Fails what is pending and closes the channel; freed by the sweep. */
static void end_channel(struct channel *c, const char *why)
{
	struct pending *p;
	while ((p = pop(c))) {
		control_reply_err(p->conn, p->seq, EPIPE, why);
		free(p->seq);
		free(p);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gone = 1;
}

static void sweep(void)
{
	for (struct channel **pp = &channels; *pp;) {
		struct channel *c = *pp;
		if (!c->gone) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		free(c->key);
		free(c);
	}
}

int handoff_send(uint64_t conn, const char *seq, const char *iokey, const char *chankey, const char *const stdio[3],
		 const char *msg, size_t len, char *err, size_t errlen)
{
	if (strcmp(stdio[0], "channel:") == 0) {
		snprintf(err, errlen, "a handed-off process has no channel of its own");
		return EINVAL;
	}
	struct channel *c = find(chankey);
	if (!c) {
		snprintf(err, errlen, "no exec server %s", chankey);
		return ENOENT;
	}
	struct spawn_stdio s;
	int e = spawn_open_stdio(stdio, iokey, &s, err, errlen);
	if (e)
		return e;
	char ctl[CMSG_SPACE(sizeof s.fds)];
	memset(ctl, 0, sizeof ctl);
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof s.fds);
	memcpy(CMSG_DATA(cm), s.fds, sizeof s.fds);
	ssize_t n;
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	e = n < 0 ? errno : 0;
	/* the server has its own copies now; ours close either way (with the keepers if nothing was sent) */
	spawn_close_stdio(&s, e != 0);
	if (e) {
		snprintf(err, errlen, "exec server %s: %s", chankey, strerror(e));
		if (e == EPIPE || e == ECONNRESET)
			end_channel(c, "exec server gone");
		return e;
	}
	struct pending *p = xrealloc(NULL, sizeof *p);
	*p = (struct pending){ .conn = conn, .seq = xstrdup(seq) };
	*c->tail = p;
	c->tail = &p->next;
	return 0;
}

void handoff_release(const char *key)
{
	for (struct channel *c = channels; c; c = c->next)
		if (!c->gone && strcmp(c->key, key) == 0)
			end_channel(c, "exec server released");
	sweep();
}

void handoff_release_all(void)
{
	for (struct channel *c = channels; c; c = c->next)
		if (!c->gone)
			end_channel(c, "monitor exiting");
	sweep();
}

size_t handoff_count(void)
{
	size_t n = 0;
	for (struct channel *c = channels; c; c = c->next)
		n += !c->gone;
	return n;
}

size_t handoff_slots(void)
{
	return handoff_count();
}

void handoff_fill(struct pollfd *p)
{
	for (struct channel *c = channels; c; c = c->next) {
		if (c->gone)
			continue;
		/* always polled: a server that exits ends its channel at once, so that a new one can take the key */
		*p++ = (struct pollfd){ .fd = c->fd, .events = POLLIN };
	}
}

void handoff_dispatch(const struct pollfd *p)
{
	for (struct channel *c = channels; c; c = c->next) {
		if (c->gone)
			continue;
		const struct pollfd *s = p++;
		if (s->fd < 0 || s->fd != c->fd || !s->revents)
			continue;
		for (;;) {
			char buf[ANSWER_MAX + 2];
			ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				logm(LV_WARN, "exec server %s: %s", c->key, n == 0 ? "channel closed" : strerror(errno));
				end_channel(c, "exec server gone");
				break;
			}
			if (!c->head) {
				logm(LV_WARN, "exec server %s: an answer to no request, ignored", c->key);
				continue;
			}
			answer(pop(c), buf, (size_t)n > ANSWER_MAX + 2 ? ANSWER_MAX + 2 : (size_t)n);
		}
	}
	sweep();
}
