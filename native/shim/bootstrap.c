#include "bootstrap.h"
#include "gobuild.h"
#include "pb.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static char *dup_field(const struct pb_field *f)
{
	char *s = xrealloc(NULL, f->len + 1);
	memcpy(s, f->data, f->len);
	s[f->len] = '\0';
	return s;
}

static int field_is(const struct pb_field *f, const char *s)
{
	return f->len == strlen(s) && memcmp(f->data, s, f->len) == 0;
}

static void set_string(char **slot, const struct pb_field *f)
{
	free(*slot);
	*slot = dup_field(f);
}

int bootstrap_params_parse(const uint8_t *in, size_t len, const char *id, const char *ns,
			   struct bootstrap_params *p)
{
	memset(p, 0, sizeof *p);
	if (len == 0)
		return 0;
	struct pb_reader r = pb_reader(in, len);
	struct pb_field f;
	int rc, id_ok = 0, ns_ok = 0;
	/* A field seen twice: the last one counts, as in any protobuf decoder. */
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.wire == PB_LEN) {
			switch (f.num) {
			case 1: id_ok = field_is(&f, id); break;
			case 2: ns_ok = field_is(&f, ns); break;
			case 5: set_string(&p->ttrpc_address, &f); break;
			case 6: set_string(&p->grpc_address, &f); break;
			case 9: set_string(&p->socket_dir, &f); break;
			default: break; /* version, binary, extensions (the runtime options) */
			}
		} else if (f.wire == PB_VARINT && f.num == 3) {
			p->log_level = (int32_t)(uint32_t)f.varint; /* int32: negative values are sign-extended */
		}
	}
	/* start refuses an empty -id or -namespace before it gets here, so an absent field never matches */
	if (rc < 0 || !id_ok || !ns_ok) {
		bootstrap_params_free(p);
		return 0;
	}
	char **all[] = { &p->grpc_address, &p->ttrpc_address, &p->socket_dir };
	for (size_t i = 0; i < 3; i++)
		if (!*all[i])
			*all[i] = xstrdup("");
	return 1;
}

void bootstrap_params_free(struct bootstrap_params *p)
{
	free(p->grpc_address);
	free(p->ttrpc_address);
	free(p->socket_dir);
	memset(p, 0, sizeof *p);
}

enum bootstrap_reply bootstrap_legacy_reply(const char *publish_binary)
{
	/* 1.6 sets no MAX_SHIM_VERSION and takes anything on stdout for an address. 1.7 and 2.x set 2
	 * ("the maximum shim version supported by the client, always 2 for shim v2"), although 2.0 - 2.2
	 * accept 3 and runc-v2 of those releases answers 3. */
	const char *max = getenv("MAX_SHIM_VERSION");
	if (!max || !*max)
		return REPLY_ADDRESS;
	char *end;
	long v = strtol(max, &end, 10);
	if (*end != '\0' || v < 2)
		return REPLY_ADDRESS;
	if (v >= 3 || containerd_major_ge2(publish_binary))
		return REPLY_JSON_V3;
	return REPLY_JSON_V2;
}

/* A JSON string as Go's encoding/json writes it: <, > and & as \u003c \u003e \u0026, \b \f \n \r \t,
 * other control bytes as \u00XX, U+2028 and U+2029 escaped, an invalid UTF-8 byte as \ufffd. */
static void put_json_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	buf_put(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		unsigned char c = *p;
		if (c >= 0x80) {
			size_t n = c >= 0xf5 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
			size_t k = 1;
			while (n && k < n && (p[k] & 0xc0) == 0x80)
				k++;
			uint32_t cp = 0;
			if (n && k == n) {
				cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
				for (size_t i = 1; i < n; i++)
					cp = cp << 6 | (p[i] & 0x3f);
			}
			int valid = n && k == n && !(n == 3 && cp < 0x800) && !(n == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
				    !(cp >= 0xd800 && cp <= 0xdfff);
			if (!valid) {
				buf_put(b, "\\ufffd", 6);
				p++;
			} else if (cp == 0x2028 || cp == 0x2029) {
				buf_put(b, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
				p += n;
			} else {
				buf_put(b, p, n);
				p += n;
			}
			continue;
		}
		const char *esc = NULL;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default: break;
		}
		if (esc) {
			buf_put(b, esc, strlen(esc));
		} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			buf_put(b, u, sizeof u);
		} else {
			buf_put(b, p, 1);
		}
		p++;
	}
	buf_put(b, "\"", 1);
}

void bootstrap_reply_encode(enum bootstrap_reply kind, const char *address, const char *protocol, struct buf *out)
{
	switch (kind) {
	case REPLY_ADDRESS:
		buf_put(out, address, strlen(address));
		return;
	case REPLY_JSON_V2:
	case REPLY_JSON_V3:
		/* the field order of pkg/shim's BootstrapParams struct: version, address, protocol */
		buf_put(out, kind == REPLY_JSON_V2 ? "{\"version\":2,\"address\":" : "{\"version\":3,\"address\":", 23);
		put_json_string(out, address);
		buf_put(out, ",\"protocol\":", 12);
		put_json_string(out, protocol);
		buf_put(out, "}", 1);
		return;
	case REPLY_PROTO_V3:
		/* BootstrapResult: version = 1, address = 2, protocol = 3 (no capabilities, no metadata).
		 * containerd 2.3.x trims whitespace off start's output before it decodes it (fixed after
		 * 2.3): these bytes begin with 0x08 and end with "ttrpc", so trimming leaves them whole. */
		pb_put_uint(out, 1, 3);
		pb_put_string(out, 2, address);
		pb_put_string(out, 3, protocol);
		return;
	}
}
