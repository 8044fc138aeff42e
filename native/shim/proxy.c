/* Relays each containerd connection to its own proxy connection to the daemon.
 *
 * Bytes pass unchanged. The monitor only follows ttrpc frame boundaries (10-byte header:
 * length, stream id, type, flags) so that a daemon restart never leaves either peer in the
 * middle of a frame: an interrupted response is padded out to its announced length, the rest
 * of an interrupted request is dropped, and every request the lost daemon had received but not
 * answered gets a ttrpc error response (UNAVAILABLE) from the monitor. Requests still buffered
 * go to the next daemon. */
#include "proxy.h"
#include "buf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define LIMIT (256 * 1024)          /* stop reading a side while its peer's buffer holds this */
#define MAX_PAD (16 * 1024 * 1024)  /* beyond any real ttrpc message (4 MiB) */

enum { TT_REQUEST = 1, TT_RESPONSE = 2 };
enum { TF_HDR = 1, TF_END = 2 };

/* Position inside a stream of ttrpc frames. */
struct tf {
	uint8_t hdr[10];
	uint8_t hlen;
	uint32_t left;
};

struct pair {
	struct pair *next;
	int cfd;                  /* containerd */
	int pfd;                  /* daemon (-1 while not connected) */
	size_t hello_off;         /* bytes of the proxy hello already written to pfd */
	struct buf c2p, p2c;
	struct tf sent;           /* containerd bytes written to the daemon */
	struct tf recv;           /* daemon bytes read */
	int discard;              /* dropping the rest of a request the lost daemon got part of */
	uint32_t *pending;        /* stream ids of requests the daemon got but did not answer */
	size_t npending, cappending;
	int dead;
};

static const struct monitor_cfg *cfg;
static struct pair *pairs;
static size_t npairs;
static uint8_t hello[80];
static size_t hello_len;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Consume bytes up to the end of the header or of the frame; *ev tells which ended. */
static size_t tf_step(struct tf *t, const uint8_t *p, size_t n, int *ev)
{
	*ev = 0;
	if (t->hlen < 10) {
		size_t k = 10u - t->hlen;
		if (k > n)
			k = n;
		memcpy(t->hdr + t->hlen, p, k);
		t->hlen = (uint8_t)(t->hlen + k);
		if (t->hlen == 10) {
			t->left = be32(t->hdr);
			*ev = TF_HDR;
			if (t->left == 0) {
				t->hlen = 0;
				*ev |= TF_END;
			}
		}
		return k;
	}
	size_t k = t->left < n ? t->left : n;
	t->left -= (uint32_t)k;
	if (t->left == 0) {
		t->hlen = 0;
		*ev = TF_END;
	}
	return k;
}

static void pending_add(struct pair *p, uint32_t id)
{
	if (p->npending == p->cappending) {
		p->cappending = p->cappending ? p->cappending * 2 : 8;
		p->pending = xrealloc(p->pending, p->cappending * sizeof *p->pending);
	}
	p->pending[p->npending++] = id;
}

static void pending_remove(struct pair *p, uint32_t id)
{
	for (size_t i = 0; i < p->npending; i++) {
		if (p->pending[i] == id) {
			memmove(p->pending + i, p->pending + i + 1, (p->npending - i - 1) * sizeof *p->pending);
			p->npending--;
			return;
		}
	}
}

/* ttrpc Response{status: Status{code: 14 UNAVAILABLE, message}} for stream id. */
static void put_unavailable(struct pair *p, uint32_t id)
{
	static const char text[] = "tsrt: daemon connection lost, request not completed";
	uint8_t f[10 + 4 + 4 + sizeof text];
	size_t tl = sizeof text - 1;
	size_t sl = 2 + 2 + tl; /* status: code field + message field */
	size_t rl = 2 + sl;     /* response: status field */
	put_be32(f, (uint32_t)rl);
	put_be32(f + 4, id);
	f[8] = TT_RESPONSE;
	f[9] = 0;
	f[10] = 0x0a;
	f[11] = (uint8_t)sl;
	f[12] = 0x08;
	f[13] = 14;
	f[14] = 0x12;
	f[15] = (uint8_t)tl;
	memcpy(f + 16, text, tl);
	buf_put(&p->p2c, f, 10 + rl);
}

/* Drop the remainder of the request that was being written when the daemon went away. */
static void run_discard(struct pair *p)
{
	while (p->discard && p->c2p.len > 0) {
		int ev;
		size_t k = tf_step(&p->sent, buf_head(&p->c2p), p->c2p.len, &ev);
		if ((ev & TF_HDR) && p->sent.hdr[8] == TT_REQUEST)
			put_unavailable(p, be32(p->sent.hdr + 4));
		buf_drop(&p->c2p, k);
		if (ev & TF_END)
			p->discard = 0;
	}
}

static void daemon_lost(struct pair *p, const char *why)
{
	logm(LV_DEBUG, "proxy connection to the daemon lost: %s", why);
	close(p->pfd);
	p->pfd = -1;
	p->hello_off = 0;
	/* finish an interrupted frame towards containerd */
	if (p->recv.hlen > 0) {
		static const uint8_t zeros[4096];
		if (p->recv.hlen < 10) {
			size_t k = 10u - p->recv.hlen;
			buf_put(&p->p2c, zeros, k);
			memset(p->recv.hdr + p->recv.hlen, 0, k);
			p->recv.left = be32(p->recv.hdr);
		}
		if (p->recv.left > MAX_PAD) {
			p->dead = 1;
			return;
		}
		for (size_t left = p->recv.left; left > 0;) {
			size_t k = left < sizeof zeros ? left : sizeof zeros;
			buf_put(&p->p2c, zeros, k);
			left -= k;
		}
		p->recv.hlen = 0;
		p->recv.left = 0;
	}
	for (size_t i = 0; i < p->npending; i++)
		put_unavailable(p, p->pending[i]);
	p->npending = 0;
	if (p->sent.hlen > 0) {
		/* header incomplete: the request is answered when run_discard reaches its header */
		p->discard = 1;
		run_discard(p);
	}
}

static void try_connect(struct pair *p)
{
	int fd = daemon_connect(&cfg->daemon);
	if (fd < 0)
		return;
	p->pfd = fd;
	p->hello_off = 0;
	memset(&p->recv, 0, sizeof p->recv);
	logm(LV_DEBUG, "proxy connection to the daemon opened");
}

/* Write what can be written in both directions. */
static void pump(struct pair *p)
{
	if (p->dead)
		return;
	run_discard(p);
	while (p->pfd >= 0 && p->hello_off < hello_len) {
		ssize_t w = send(p->pfd, hello + p->hello_off, hello_len - p->hello_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				daemon_lost(p, strerror(errno));
			break;
		}
		p->hello_off += (size_t)w;
	}
	while (p->pfd >= 0 && p->hello_off == hello_len && !p->discard && p->c2p.len > 0) {
		ssize_t w = send(p->pfd, buf_head(&p->c2p), p->c2p.len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				daemon_lost(p, strerror(errno));
			break;
		}
		const uint8_t *d = buf_head(&p->c2p);
		for (size_t off = 0; off < (size_t)w;) {
			int ev;
			off += tf_step(&p->sent, d + off, (size_t)w - off, &ev);
			if ((ev & TF_HDR) && p->sent.hdr[8] == TT_REQUEST)
				pending_add(p, be32(p->sent.hdr + 4));
		}
		buf_drop(&p->c2p, (size_t)w);
	}
	while (p->p2c.len > 0) {
		ssize_t w = send(p->cfd, buf_head(&p->p2c), p->p2c.len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				p->dead = 1;
			break;
		}
		buf_drop(&p->p2c, (size_t)w);
	}
}

static void read_containerd(struct pair *p)
{
	ssize_t r = buf_fill(&p->c2p, p->cfd, CHUNK);
	if (r == 0 || (r < 0 && errno != EAGAIN))
		p->dead = 1;
}

static void read_daemon(struct pair *p)
{
	size_t before = p->p2c.len;
	ssize_t r = buf_fill(&p->p2c, p->pfd, CHUNK);
	if (r == 0) {
		daemon_lost(p, "closed by the daemon");
		return;
	}
	if (r < 0) {
		if (errno != EAGAIN)
			daemon_lost(p, strerror(errno));
		return;
	}
	const uint8_t *d = buf_head(&p->p2c) + before;
	for (size_t off = 0; off < (size_t)r;) {
		int ev;
		off += tf_step(&p->recv, d + off, (size_t)r - off, &ev);
		if ((ev & TF_HDR) && p->recv.hdr[8] == TT_RESPONSE)
			pending_remove(p, be32(p->recv.hdr + 4));
	}
}

static void free_pair(struct pair *p)
{
	close(p->cfd);
	if (p->pfd >= 0)
		close(p->pfd);
	buf_free(&p->c2p);
	buf_free(&p->p2c);
	free(p->pending);
	free(p);
}

void proxy_init(const struct monitor_cfg *c)
{
	cfg = c;
	size_t idlen = strlen(c->monitor_id);
	size_t body = 6 + idlen + 1;
	put_be32(hello, (uint32_t)body);
	memcpy(hello + 4, "proxy", 6);
	memcpy(hello + 10, c->monitor_id, idlen + 1);
	hello_len = 4 + body;
}

int proxy_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return 0;
			logm(LV_ERROR, "accept: %s", strerror(errno));
			return 100;
		}
		struct ucred cr = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
		socklen_t len = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != geteuid()) {
			logm(LV_WARN, "refusing a connection from uid %d", (int)cr.uid);
			close(fd);
			continue;
		}
		struct pair *p = xrealloc(NULL, sizeof *p);
		memset(p, 0, sizeof *p);
		p->cfd = fd;
		p->pfd = -1;
		p->next = pairs;
		pairs = p;
		npairs++;
		try_connect(p);
		pump(p);
		logm(LV_DEBUG, "accepted a connection from pid %d", (int)cr.pid);
	}
}

size_t proxy_slots(void)
{
	return 2 * npairs;
}

void proxy_fill(struct pollfd *pfd)
{
	size_t i = 0;
	for (struct pair *p = pairs; p; p = p->next, i += 2) {
		pfd[i].fd = p->cfd;
		pfd[i].events = (short)((p->c2p.len < LIMIT ? POLLIN : 0) | (p->p2c.len ? POLLOUT : 0));
		pfd[i + 1].fd = p->pfd;
		pfd[i + 1].events = 0;
		if (p->pfd >= 0) {
			int want_out = p->hello_off < hello_len || (!p->discard && p->c2p.len > 0);
			pfd[i + 1].events = (short)((p->p2c.len < LIMIT ? POLLIN : 0) | (want_out ? POLLOUT : 0));
		}
	}
}

void proxy_dispatch(const struct pollfd *pfd)
{
	size_t i = 0;
	for (struct pair *p = pairs; p; p = p->next, i += 2) {
		short cr = pfd[i].revents, pr = pfd[i + 1].revents;
		if (cr & (POLLHUP | POLLERR | POLLNVAL)) {
			p->dead = 1; /* containerd went away: nothing left to answer */
			continue;
		}
		if (cr & POLLIN)
			read_containerd(p);
		if (!p->dead && p->pfd >= 0 && pfd[i + 1].fd == p->pfd && pr) {
			/* after a hang-up keep reading (past LIMIT) until the end of the data */
			if (pr & (POLLIN | POLLHUP | POLLERR))
				read_daemon(p);
			else if (pr & POLLNVAL)
				daemon_lost(p, "invalid fd");
		}
		pump(p);
	}
	for (struct pair **pp = &pairs; *pp;) {
		struct pair *p = *pp;
		if (!p->dead) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		npairs--;
		logm(LV_DEBUG, "containerd connection closed");
		free_pair(p);
	}
}

int proxy_wants_tick(void)
{
	for (struct pair *p = pairs; p; p = p->next)
		if (p->pfd < 0 && !p->discard)
			return 1;
	return 0;
}

void proxy_tick(void)
{
	for (struct pair *p = pairs; p; p = p->next) {
		if (p->pfd >= 0 || p->discard)
			continue;
		try_connect(p);
		if (p->pfd < 0)
			return; /* daemon not reachable: retry all on the next tick */
		pump(p);
	}
}

void proxy_drain(int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	for (;;) {
		size_t waiting = 0;
		for (struct pair *p = pairs; p; p = p->next) {
			if (p->dead)
				continue;
			/* everything the daemon has written so far, whatever the buffer size */
			while (p->pfd >= 0) {
				size_t before = p->p2c.len;
				read_daemon(p);
				if (p->p2c.len == before)
					break;
			}
			pump(p);
			if (!p->dead && p->p2c.len > 0)
				waiting++;
		}
		int64_t left = end - mono_ms();
		if (waiting == 0 || left <= 0)
			return;
		struct pollfd *pfd = xrealloc(NULL, waiting * sizeof *pfd);
		size_t i = 0;
		for (struct pair *p = pairs; p && i < waiting; p = p->next)
			if (!p->dead && p->p2c.len > 0)
				pfd[i++] = (struct pollfd){ .fd = p->cfd, .events = POLLOUT };
		int rc = poll(pfd, i, (int)left);
		free(pfd);
		if (rc < 0 && errno != EINTR)
			return;
	}
}

void proxy_close_all(void)
{
	while (pairs) {
		struct pair *p = pairs;
		pairs = p->next;
		free_pair(p);
	}
	npairs = 0;
}
