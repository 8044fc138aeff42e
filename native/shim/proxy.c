/* Relays each containerd connection to its own proxy connection to the daemon.
 *
 * Bytes pass unchanged. The monitor only follows ttrpc frame boundaries (10-byte header:
 * length, stream id, type, flags) so that a daemon restart never leaves either peer in the
 * middle of a frame: an interrupted response is padded out to its announced length. Requests
 * the lost daemon had received (in full or in part) but not answered are either replayed to the
 * next daemon, whole and in their original order, when they are safe to run twice (task Wait,
 * State, Connect, Pids, Stats), or answered with a ttrpc error (UNAVAILABLE) by the monitor.
 * Requests still buffered go to the next daemon after the replayed ones.
 *
 * A monitor started for gRPC puts an HTTP/2 server (grpc.c) on the containerd side of each pair: it
 * appends a ttrpc request frame to c2p for each call and takes the ttrpc frames in p2c as the answers,
 * so everything above works on the same ttrpc stream for both transports. */
#include "proxy.h"
#include "buf.h"
#include "grpc.h"
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
#define KEEP_CAP (1024 * 1024)      /* per connection: copies of requests kept for a replay */

enum { TT_REQUEST = 1, TT_RESPONSE = 2 };
enum { TT_FLAG_REMOTE_OPEN = 2 };   /* a streaming request: more frames follow */
enum { TF_HDR = 1, TF_END = 2 };

/* Position inside a stream of ttrpc frames. */
struct tf {
	uint8_t hdr[10];
	uint8_t hlen;
	uint32_t left;
};

struct req {
	uint32_t id;
	uint8_t *frame;           /* the whole frame, kept for a replay; NULL: answer UNAVAILABLE */
	size_t len;
};

struct pair {
	struct pair *next;
	int cfd;                  /* containerd */
	int pfd;                  /* daemon (-1 while not connected) */
	size_t hello_off;         /* bytes of the proxy hello already written to pfd */
	struct buf c2p, p2c;
	struct tf sent;           /* containerd bytes written to the daemon */
	struct tf recv;           /* daemon bytes read */
	int discard;              /* taking in the rest of a request the lost daemon got part of */
	struct req *pending;      /* requests the daemon got in full but did not answer, in order */
	size_t npending, cappending;
	uint8_t *cur;             /* copy of the request being forwarded (NULL: not kept) */
	size_t cur_len;
	int cur_answered;         /* the daemon answered it before it had all of it */
	size_t kept;              /* bytes of cur and of the pending copies (at most KEEP_CAP) */
	int dead;
	struct h2conn *h2;        /* gRPC: the HTTP/2 server session on cfd (NULL: ttrpc bytes) */
};

static const struct monitor_cfg *cfg;
static struct pair *pairs;
static size_t npairs;
static uint8_t hello[80];
static size_t hello_len;

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

/* Reads a protobuf varint; -1 if it runs past end or is longer than 10 bytes. */
static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

struct pb_str {
	const uint8_t *p;
	size_t n;
};

/* Walks a ttrpc.Request message and finds service (field 1) and method (field 2); the last
 * occurrence wins, as in protobuf. Returns -1 if the message is malformed. */
static int request_names(const uint8_t *m, size_t n, struct pb_str *service, struct pb_str *method)
{
	const uint8_t *p = m, *end = m + n;
	*service = *method = (struct pb_str){ NULL, 0 };
	while (p < end) {
		uint64_t key, v;
		if (pb_varint(&p, end, &key) < 0)
			return -1;
		uint64_t field = key >> 3;
		unsigned wire = (unsigned)(key & 7);
		if (field == 0 || field > 0x1fffffff)
			return -1;
		if ((field == 1 || field == 2) && wire != 2)
			return -1;
		switch (wire) {
		case 0:
			if (pb_varint(&p, end, &v) < 0)
				return -1;
			break;
		case 1:
			if (end - p < 8)
				return -1;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return -1;
			p += 4;
			break;
		case 2:
			if (pb_varint(&p, end, &v) < 0 || v > (uint64_t)(end - p))
				return -1;
			if (field == 1)
				*service = (struct pb_str){ p, (size_t)v };
			else if (field == 2)
				*method = (struct pb_str){ p, (size_t)v };
			p += v;
			break;
		default: /* groups (3, 4) and the unused 6, 7 */
			return -1;
		}
	}
	return 0;
}

static int pb_str_in(struct pb_str s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s.n == strlen(list[i]) && memcmp(s.p, list[i], s.n) == 0)
			return 1;
	return 0;
}

/* 1 for a complete request frame that is safe to send to a daemon twice. */
static int replayable(const uint8_t *frame, size_t len)
{
	static const char *const services[] = { "containerd.task.v2.Task", "containerd.task.v3.Task" };
	static const char *const methods[] = { "Wait", "State", "Connect", "Pids", "Stats" };
	struct pb_str service, method;
	if (len < 10 || frame[8] != TT_REQUEST || (frame[9] & TT_FLAG_REMOTE_OPEN) ||
	    request_names(frame + 10, len - 10, &service, &method) < 0)
		return 0;
	return pb_str_in(service, services, sizeof services / sizeof *services) &&
	       pb_str_in(method, methods, sizeof methods / sizeof *methods);
}

static void forget_copy(struct pair *p, uint8_t **frame, size_t len)
{
	if (*frame) {
		free(*frame);
		*frame = NULL;
		p->kept -= len;
	}
}

static void pending_add(struct pair *p, uint32_t id, uint8_t *frame, size_t len)
{
	if (p->npending == p->cappending) {
		p->cappending = p->cappending ? p->cappending * 2 : 8;
		p->pending = xrealloc(p->pending, p->cappending * sizeof *p->pending);
	}
	p->pending[p->npending++] = (struct req){ .id = id, .frame = frame, .len = len };
}

/* A response for id is on its way to containerd: that request is never answered or sent again. */
static void pending_answered(struct pair *p, uint32_t id)
{
	for (size_t i = 0; i < p->npending; i++) {
		if (p->pending[i].id == id) {
			forget_copy(p, &p->pending[i].frame, p->pending[i].len);
			memmove(p->pending + i, p->pending + i + 1, (p->npending - i - 1) * sizeof *p->pending);
			p->npending--;
			return;
		}
	}
	/* a daemon may refuse a request before it has read all of it */
	if (p->sent.hlen == 10 && p->sent.hdr[8] == TT_REQUEST && be32(p->sent.hdr + 4) == id)
		p->cur_answered = 1;
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

/* Follows containerd's bytes as they go to the daemon (or, while p->discard, as they are taken
 * in for a daemon that is gone): copies each request frame while it fits under KEEP_CAP and, once
 * it is complete, records it as pending. Consumes up to the end of a header or of a frame and
 * returns the count; *end is set when a frame ended. */
static size_t sent_step(struct pair *p, const uint8_t *d, size_t n, int *end)
{
	int ev;
	size_t k = tf_step(&p->sent, d, n, &ev);
	int req = p->sent.hdr[8] == TT_REQUEST;
	if (ev & TF_HDR) {
		size_t len = 10 + (size_t)be32(p->sent.hdr);
		p->cur_answered = 0;
		if (req && len <= KEEP_CAP - p->kept) {
			p->cur = xrealloc(NULL, len);
			memcpy(p->cur, p->sent.hdr, 10);
			p->cur_len = 10;
			p->kept += len;
		}
	} else if (p->cur) {
		memcpy(p->cur + p->cur_len, d, k);
		p->cur_len += k;
	}
	*end = ev & TF_END;
	if (*end && req) {
		uint8_t *frame = p->cur;
		size_t len = p->cur_len;
		p->cur = NULL;
		if (frame && (p->cur_answered || !replayable(frame, len)))
			forget_copy(p, &frame, len);
		if (!p->cur_answered)
			pending_add(p, be32(p->sent.hdr + 4), frame, len);
		p->cur_answered = 0;
	}
	return k;
}

/* Answer UNAVAILABLE for the lost requests that must not run twice; keep the others. */
static void answer_lost(struct pair *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->npending; i++) {
		if (p->pending[i].frame)
			p->pending[n++] = p->pending[i];
		else
			put_unavailable(p, p->pending[i].id);
	}
	p->npending = n;
}

/* No daemon and containerd's stream is at a frame boundary: the kept requests go (in their
 * order) ahead of what containerd sent since, to the next daemon. */
static void settle(struct pair *p)
{
	answer_lost(p);
	if (p->npending == 0)
		return;
	logm(LV_DEBUG, "%zu request(s) will be sent again to the next daemon", p->npending);
	struct buf again = { 0 };
	for (size_t i = 0; i < p->npending; i++) {
		buf_put(&again, p->pending[i].frame, p->pending[i].len);
		forget_copy(p, &p->pending[i].frame, p->pending[i].len);
	}
	p->npending = 0;
	buf_put(&again, buf_head(&p->c2p), p->c2p.len);
	buf_free(&p->c2p);
	p->c2p = again;
}

/* Take in the rest of the request that was being written when the daemon went away. */
static void run_discard(struct pair *p)
{
	while (p->discard && p->c2p.len > 0) {
		int end;
		size_t k = sent_step(p, buf_head(&p->c2p), p->c2p.len, &end);
		buf_drop(&p->c2p, k);
		if (end) {
			p->discard = 0;
			settle(p);
		}
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
	answer_lost(p);
	if (p->sent.hlen > 0) {
		/* settled once the rest of that frame has come from containerd */
		p->discard = 1;
		run_discard(p);
	} else {
		settle(p);
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
			int end;
			off += sent_step(p, d + off, (size_t)w - off, &end);
		}
		buf_drop(&p->c2p, (size_t)w);
	}
	if (p->h2) {
		/* answers become HTTP/2 output; taking frames stops while that output backs up */
		for (size_t before = SIZE_MAX; !p->dead && p->p2c.len < before;) {
			before = p->p2c.len;
			grpc_conn_from_daemon(p->h2, &p->p2c);
			if (grpc_conn_flush(p->h2, p->cfd) < 0 || grpc_conn_done(p->h2))
				p->dead = 1;
		}
		return;
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
	if (p->h2) {
		static uint8_t in[CHUNK];
		ssize_t r = read(p->cfd, in, sizeof in);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			p->dead = 1;
		else if (r > 0 && grpc_conn_recv(p->h2, in, (size_t)r, &p->c2p) < 0)
			p->dead = 1;
		return;
	}
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
			pending_answered(p, be32(p->recv.hdr + 4));
	}
}

static void free_pair(struct pair *p)
{
	close(p->cfd);
	if (p->pfd >= 0)
		close(p->pfd);
	buf_free(&p->c2p);
	buf_free(&p->p2c);
	for (size_t i = 0; i < p->npending; i++)
		free(p->pending[i].frame);
	free(p->pending);
	free(p->cur);
	grpc_conn_free(p->h2);
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
		if (cfg->grpc && !(p->h2 = grpc_conn_new())) {
			logm(LV_ERROR, "cannot start an HTTP/2 session; closing the connection");
			close(fd);
			free(p);
			continue;
		}
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

size_t proxy_count(void)
{
	return npairs;
}

/* How much of the daemon's output p2c may hold before reading stops: an answer for gRPC is turned
 * into HTTP/2 only once whole, so a frame larger than LIMIT may be read in full. */
static size_t p2c_limit(const struct pair *p)
{
	size_t need = p->h2 ? grpc_frame_need(&p->p2c) : 0;
	return need > LIMIT ? need : LIMIT;
}

/* Output for containerd is waiting. */
static int to_containerd(struct pair *p)
{
	return p->h2 ? grpc_conn_want_write(p->h2) : p->p2c.len > 0;
}

void proxy_fill(struct pollfd *pfd)
{
	size_t i = 0;
	for (struct pair *p = pairs; p; p = p->next, i += 2) {
		pfd[i].fd = p->cfd;
		pfd[i].events = (short)((p->c2p.len < LIMIT ? POLLIN : 0) | (to_containerd(p) ? POLLOUT : 0));
		pfd[i + 1].fd = p->pfd;
		pfd[i + 1].events = 0;
		if (p->pfd >= 0) {
			int want_out = p->hello_off < hello_len || (!p->discard && p->c2p.len > 0);
			pfd[i + 1].events = (short)((p->p2c.len < p2c_limit(p) ? POLLIN : 0) | (want_out ? POLLOUT : 0));
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
			if (!p->dead && to_containerd(p))
				waiting++;
		}
		int64_t left = end - mono_ms();
		if (waiting == 0 || left <= 0)
			return;
		struct pollfd *pfd = xrealloc(NULL, waiting * sizeof *pfd);
		size_t i = 0;
		for (struct pair *p = pairs; p && i < waiting; p = p->next)
			if (!p->dead && to_containerd(p))
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
