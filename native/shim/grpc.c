/* gRPC over HTTP/2 for containerd, as the monitor serves it (grpc.h).
 *
 * nghttp2 does the HTTP/2 framing (preface, SETTINGS, PING, flow control, GOAWAY, RST_STREAM); this file
 * maps calls. A request is complete at END_STREAM: its one length-prefixed message becomes the payload
 * of a ttrpc Request (service and method from :path, timeout_nano from grpc-timeout, the namespace from
 * containerd-namespace under the key the daemon reads over ttrpc) with a stream id of this connection's
 * own. The ttrpc Response coming back becomes either HEADERS + DATA + trailers (grpc-status 0) or, for
 * an error, a Trailers-Only response carrying grpc-status and the percent-encoded grpc-message.
 * libnghttp2.so.14 is opened on first use, so a monitor or start that serves ttrpc never loads it. */
#include "grpc.h"
#include "log.h"
#include "pb.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OUT_LIMIT (256 * 1024)   /* stop taking daemon frames while this much output waits */
#define MSG_MAX (4u << 20)       /* ttrpc's limit for a message */
#define NS_GRPC "containerd-namespace"
#define NS_TTRPC "containerd-namespace-ttrpc"

enum { TT_REQUEST = 1, TT_RESPONSE = 2 };
enum { ST_INTERNAL = 13, ST_UNIMPLEMENTED = 12, ST_RESOURCE_EXHAUSTED = 8 };

#define NG_FUNCS(X)                                                                                   \
	X(session_callbacks_new) X(session_callbacks_del)                                             \
	X(session_callbacks_set_on_begin_headers_callback) X(session_callbacks_set_on_header_callback) \
	X(session_callbacks_set_on_data_chunk_recv_callback)                                          \
	X(session_callbacks_set_on_frame_recv_callback)                                               \
	X(session_callbacks_set_on_stream_close_callback) X(session_server_new) X(session_del)        \
	X(submit_settings) X(session_mem_recv) X(session_mem_send) X(session_want_read)               \
	X(session_want_write) X(session_get_stream_user_data) X(session_set_stream_user_data)         \
	X(submit_response) X(submit_trailer) X(strerror)

static struct {
	void *lib;
	nghttp2_session_callbacks *cbs;
#define X(n) __typeof__(nghttp2_##n) *n;
	NG_FUNCS(X)
#undef X
} ng;

static unsigned long ncalls;

struct h2stream {
	struct h2stream *next;
	int32_t id;
	uint32_t tid;     /* ttrpc stream id once sent to the daemon */
	int answered;     /* a response has been submitted */
	int post, grpc_type, bad_timeout, too_big;
	char *path, *ns;
	int64_t timeout_ns;
	struct buf body;  /* request DATA */
	struct buf resp;  /* length-prefixed response message still to go */
};

struct h2conn {
	nghttp2_session *s;
	struct buf out;
	struct buf *to_daemon; /* during grpc_conn_recv */
	uint32_t next_tid;
	struct h2stream *streams;
	int fatal;
};

static struct h2stream *stream_of(struct h2conn *h, int32_t id)
{
	return ng.session_get_stream_user_data(h->s, id);
}

static nghttp2_nv nv(const char *name, const char *value)
{
	return (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE };
}

/* grpc-message: bytes outside printable ASCII, and '%', as %XX. */
static char *percent_encode(const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = xrealloc(NULL, 3 * n + 1), *q = o;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '%') {
			*q++ = '%';
			*q++ = hex[s[i] >> 4];
			*q++ = hex[s[i] & 15];
		} else {
			*q++ = (char)s[i];
		}
	}
	*q = '\0';
	return o;
}

static void count_call(struct h2stream *st, int code)
{
	st->answered = 1;
	if (ncalls++ == 0)
		logm(LV_INFO, "first gRPC call served over HTTP/2: %s", st->path ? st->path : "(no path)");
	logm(LV_DEBUG, "grpc call %s: status %d", st->path ? st->path : "(no path)", code);
}

/* A Trailers-Only response: the status in the only HEADERS frame, which ends the stream. */
static void answer_error(struct h2conn *h, struct h2stream *st, int code, const uint8_t *msg, size_t n)
{
	char cs[12];
	snprintf(cs, sizeof cs, "%d", code);
	char *m = percent_encode(msg, n);
	nghttp2_nv hdrs[] = { nv(":status", "200"), nv("content-type", "application/grpc"),
			      nv("grpc-status", cs), nv("grpc-message", m) };
	int rv = ng.submit_response(h->s, st->id, hdrs, n ? 4 : 3, NULL);
	if (rv != 0)
		logm(LV_WARN, "grpc: cannot answer stream %d: %s", (int)st->id, ng.strerror(rv));
	count_call(st, code);
	free(m);
}

static void answer_text(struct h2conn *h, struct h2stream *st, int code, const char *text)
{
	answer_error(h, st, code, (const uint8_t *)text, strlen(text));
}

static ssize_t read_resp(nghttp2_session *s, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *user)
{
	(void)s;
	struct h2conn *h = user;
	struct h2stream *st = src->ptr;
	size_t n = st->resp.len < len ? st->resp.len : len;
	memcpy(out, buf_head(&st->resp), n);
	buf_drop(&st->resp, n);
	if (st->resp.len == 0) {
		nghttp2_nv tr[] = { nv("grpc-status", "0") };
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (ng.submit_trailer(h->s, id, tr, 1) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
	return (ssize_t)n;
}

static void answer_ok(struct h2conn *h, struct h2stream *st, const uint8_t *payload, size_t n)
{
	uint8_t prefix[5] = { 0 };
	put_be32(prefix + 1, (uint32_t)n);
	buf_put(&st->resp, prefix, 5);
	buf_put(&st->resp, payload, n);
	nghttp2_nv hdrs[] = { nv(":status", "200"), nv("content-type", "application/grpc") };
	nghttp2_data_provider dp = { .source.ptr = st, .read_callback = read_resp };
	int rv = ng.submit_response(h->s, st->id, hdrs, 2, &dp);
	if (rv != 0)
		logm(LV_WARN, "grpc: cannot answer stream %d: %s", (int)st->id, ng.strerror(rv));
	count_call(st, 0);
}

/* grpc-timeout: at most 8 digits and a unit (H M S m u n). -1 if malformed. */
static int64_t parse_timeout(const char *v)
{
	size_t n = strlen(v);
	if (n < 2 || n > 9)
		return -1;
	int64_t x = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	static const char units[] = "HMSmun";
	static const int64_t ns[] = { 3600000000000, 60000000000, 1000000000, 1000000, 1000, 1 };
	const char *u = strchr(units, v[n - 1]);
	if (!u || !*u)
		return -1;
	int64_t mul = ns[u - units];
	return x > INT64_MAX / mul ? INT64_MAX : x * mul;
}

/* The request is complete: hand it to the daemon as a ttrpc Request, or answer it here. */
static void call_complete(struct h2conn *h, struct h2stream *st)
{
	if (!st->post || !st->grpc_type || !st->path) {
		answer_text(h, st, ST_INTERNAL, "tsrt: not a gRPC request (POST of application/grpc with a :path)");
		return;
	}
	if (st->bad_timeout) {
		answer_text(h, st, ST_INTERNAL, "tsrt: malformed grpc-timeout");
		return;
	}
	const char *svc = st->path + 1, *slash = st->path[0] == '/' ? strchr(svc, '/') : NULL;
	const char *method = slash ? slash + 1 : NULL;
	if (!slash || slash == svc || !*method || strchr(method, '/')) {
		answer_text(h, st, ST_UNIMPLEMENTED, "tsrt: malformed method path");
		return;
	}
	size_t svclen = (size_t)(slash - svc);
	static const char *const services[] = { "containerd.task.v2.Task", "containerd.task.v3.Task" };
	int known = 0;
	for (size_t i = 0; i < 2; i++)
		known |= strlen(services[i]) == svclen && memcmp(services[i], svc, svclen) == 0;
	if (!known) {
		char msg[160];
		snprintf(msg, sizeof msg, "unknown service %.*s", (int)(svclen > 100 ? 100 : svclen), svc);
		answer_text(h, st, ST_UNIMPLEMENTED, msg);
		return;
	}
	if (st->too_big) {
		answer_text(h, st, ST_RESOURCE_EXHAUSTED, "tsrt: request larger than 4 MiB");
		return;
	}
	const uint8_t *b = buf_head(&st->body);
	if (st->body.len < 5 || be32(b + 1) != st->body.len - 5 || b[0] > 1) {
		answer_text(h, st, ST_INTERNAL, "tsrt: malformed gRPC message framing (expected exactly one message)");
		return;
	}
	if (b[0] == 1) {
		answer_text(h, st, ST_UNIMPLEMENTED, "tsrt: compressed messages are not supported");
		return;
	}
	struct buf req = { 0 };
	uint8_t hdr[10] = { 0 };
	buf_put(&req, hdr, sizeof hdr);
	pb_put_bytes(&req, 1, svc, svclen);
	pb_put_string(&req, 2, method);
	if (st->body.len > 5)
		pb_put_bytes(&req, 3, b + 5, st->body.len - 5);
	if (st->timeout_ns > 0)
		pb_put_uint(&req, 4, (uint64_t)st->timeout_ns);
	if (st->ns) {
		struct buf kv = { 0 };
		pb_put_string(&kv, 1, NS_TTRPC);
		pb_put_string(&kv, 2, st->ns);
		pb_put_bytes(&req, 5, buf_head(&kv), kv.len);
		buf_free(&kv);
	}
	size_t len = req.len - 10;
	if (len > MSG_MAX) {
		buf_free(&req);
		answer_text(h, st, ST_RESOURCE_EXHAUSTED, "tsrt: request larger than 4 MiB");
		return;
	}
	st->tid = h->next_tid;
	h->next_tid += 2;
	uint8_t *f = buf_head(&req);
	put_be32(f, (uint32_t)len);
	put_be32(f + 4, st->tid);
	f[8] = TT_REQUEST;
	buf_put(h->to_daemon, f, req.len);
	buf_free(&req);
	buf_free(&st->body);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
	(void)user;
	if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2conn *h = user;
	struct h2stream *st = xrealloc(NULL, sizeof *st);
	memset(st, 0, sizeof *st);
	st->id = fr->hd.stream_id;
	st->next = h->streams;
	h->streams = st;
	ng.session_set_stream_user_data(s, st->id, st);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	(void)s;
	(void)namelen;
	(void)valuelen;
	(void)flags;
	struct h2stream *st = fr->hd.type == NGHTTP2_HEADERS ? stream_of(user, fr->hd.stream_id) : NULL;
	if (!st || st->tid || st->answered)
		return 0; /* trailers of a request: nothing in them is used */
	const char *n = (const char *)name, *v = (const char *)value; /* nghttp2 NUL-terminates both */
	if (strcmp(n, ":method") == 0) {
		st->post = strcmp(v, "POST") == 0;
	} else if (strcmp(n, ":path") == 0) {
		free(st->path);
		st->path = xstrdup(v);
	} else if (strcmp(n, "content-type") == 0) {
		st->grpc_type = strncmp(v, "application/grpc", 16) == 0 && (v[16] == '\0' || v[16] == '+' || v[16] == ';');
	} else if (strcmp(n, "grpc-timeout") == 0) {
		st->timeout_ns = parse_timeout(v);
		st->bad_timeout = st->timeout_ns < 0;
	} else if (strcmp(n, NS_GRPC) == 0) {
		free(st->ns);
		st->ns = xstrdup(v);
	}
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	(void)s;
	(void)flags;
	struct h2stream *st = stream_of(user, id);
	if (!st || st->tid || st->answered || st->too_big)
		return 0;
	if (st->body.len + len > MSG_MAX + 5) {
		st->too_big = 1;
		buf_free(&st->body);
		return 0;
	}
	buf_put(&st->body, data, len);
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
	(void)s;
	if ((fr->hd.type != NGHTTP2_DATA && fr->hd.type != NGHTTP2_HEADERS) || !(fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct h2stream *st = stream_of(user, fr->hd.stream_id);
	if (st && !st->tid && !st->answered)
		call_complete(user, st);
	return 0;
}

static void stream_free(struct h2stream *st)
{
	free(st->path);
	free(st->ns);
	buf_free(&st->body);
	buf_free(&st->resp);
	free(st);
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
	(void)s;
	(void)code;
	struct h2conn *h = user;
	for (struct h2stream **pp = &h->streams; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct h2stream *st = *pp;
			*pp = st->next;
			stream_free(st); /* a daemon answer that comes later is dropped */
			return 0;
		}
	}
	return 0;
}

int grpc_load(char *err, size_t errlen)
{
	if (ng.cbs)
		return 0;
	void *lib = dlopen("libnghttp2.so.14", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "cannot load libnghttp2 (Debian package libnghttp2-14): %s", dlerror());
		return -1;
	}
	const char *missing = NULL;
#define X(n)                                                          \
	if (!(ng.n = (__typeof__(ng.n))dlsym(lib, "nghttp2_" #n)))    \
		missing = "nghttp2_" #n;
	NG_FUNCS(X)
#undef X
	if (missing || ng.session_callbacks_new(&ng.cbs) != 0) {
		snprintf(err, errlen, "libnghttp2.so.14 lacks %s", missing ? missing : "memory");
		dlclose(lib);
		memset(&ng, 0, sizeof ng);
		return -1;
	}
	ng.lib = lib;
	ng.session_callbacks_set_on_begin_headers_callback(ng.cbs, on_begin_headers);
	ng.session_callbacks_set_on_header_callback(ng.cbs, on_header);
	ng.session_callbacks_set_on_data_chunk_recv_callback(ng.cbs, on_data);
	ng.session_callbacks_set_on_frame_recv_callback(ng.cbs, on_frame);
	ng.session_callbacks_set_on_stream_close_callback(ng.cbs, on_close);
	return 0;
}

/* Moves what nghttp2 has to send into h->out, up to OUT_LIMIT. */
static void session_send(struct h2conn *h)
{
	while (!h->fatal && h->out.len < OUT_LIMIT) {
		const uint8_t *d;
		ssize_t n = ng.session_mem_send(h->s, &d);
		if (n < 0) {
			logm(LV_WARN, "grpc: %s", ng.strerror((int)n));
			h->fatal = 1;
		}
		if (n <= 0)
			return;
		buf_put(&h->out, d, (size_t)n);
	}
}

struct h2conn *grpc_conn_new(void)
{
	if (!ng.cbs)
		return NULL;
	struct h2conn *h = xrealloc(NULL, sizeof *h);
	memset(h, 0, sizeof *h);
	h->next_tid = 1;
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 128 } };
	if (ng.session_server_new(&h->s, ng.cbs, h) != 0 ||
	    ng.submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv) != 0) {
		if (h->s)
			ng.session_del(h->s);
		free(h);
		return NULL;
	}
	session_send(h);
	return h;
}

void grpc_conn_free(struct h2conn *h)
{
	if (!h)
		return;
	ng.session_del(h->s); /* calls on_close for every open stream */
	while (h->streams) {
		struct h2stream *st = h->streams;
		h->streams = st->next;
		stream_free(st);
	}
	buf_free(&h->out);
	free(h);
}

int grpc_conn_recv(struct h2conn *h, const uint8_t *data, size_t len, struct buf *to_daemon)
{
	h->to_daemon = to_daemon;
	ssize_t rv = ng.session_mem_recv(h->s, data, len);
	h->to_daemon = NULL;
	if (rv < 0) {
		logm(LV_WARN, "grpc: closing the connection: %s", ng.strerror((int)rv));
		return -1;
	}
	session_send(h);
	return h->fatal ? -1 : 0;
}

size_t grpc_frame_need(const struct buf *in)
{
	return in->len < 10 ? 10 : 10 + (size_t)be32(buf_head(in));
}

/* A ttrpc Response: status (google.rpc.Status: code, message) and payload. -1 if malformed. */
static int parse_response(const uint8_t *m, size_t n, uint64_t *code, struct pb_field *msg, struct pb_field *payload)
{
	struct pb_reader r = pb_reader(m, n);
	struct pb_field f;
	int rc;
	*code = 0;
	memset(msg, 0, sizeof *msg);
	memset(payload, 0, sizeof *payload);
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.num == 2 && f.wire == PB_LEN) {
			*payload = f;
		} else if (f.num == 1 && f.wire == PB_LEN) {
			struct pb_reader sr = pb_reader(f.data, f.len);
			struct pb_field g;
			int src;
			while ((src = pb_next(&sr, &g)) > 0) {
				if (g.num == 1 && g.wire == PB_VARINT)
					*code = g.varint;
				else if (g.num == 2 && g.wire == PB_LEN)
					*msg = g;
			}
			if (src < 0)
				return -1;
		}
	}
	return rc;
}

void grpc_conn_from_daemon(struct h2conn *h, struct buf *in)
{
	while (!h->fatal && h->out.len < OUT_LIMIT && in->len >= 10 && in->len >= grpc_frame_need(in)) {
		const uint8_t *f = buf_head(in);
		size_t flen = grpc_frame_need(in);
		uint32_t tid = be32(f + 4);
		struct h2stream *st = NULL;
		for (struct h2stream *s = h->streams; s && f[8] == TT_RESPONSE; s = s->next)
			if (s->tid == tid && !s->answered)
				st = s;
		if (st) {
			uint64_t code;
			struct pb_field msg, payload;
			if (parse_response(f + 10, flen - 10, &code, &msg, &payload) < 0)
				answer_text(h, st, ST_INTERNAL, "tsrt: malformed response from the daemon");
			else if (code != 0)
				answer_error(h, st, code > 16 ? 2 : (int)code, msg.data, msg.len);
			else
				answer_ok(h, st, payload.data, payload.len);
		}
		buf_drop(in, flen);
		session_send(h);
	}
}

int grpc_conn_flush(struct h2conn *h, int fd)
{
	for (;;) {
		session_send(h);
		if (h->out.len == 0)
			return h->fatal ? -1 : 0;
		ssize_t w = send(fd, buf_head(&h->out), h->out.len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		buf_drop(&h->out, (size_t)w);
	}
}

int grpc_conn_want_write(struct h2conn *h)
{
	return h->out.len > 0 || ng.session_want_write(h->s);
}

int grpc_conn_done(struct h2conn *h)
{
	return h->out.len == 0 && (h->fatal || (!ng.session_want_read(h->s) && !ng.session_want_write(h->s)));
}

unsigned long grpc_calls(void)
{
	return ncalls;
}
