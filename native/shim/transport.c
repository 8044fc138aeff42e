#include "transport.h"
#include "pb.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX (1u << 20)

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_bare(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Whether a line opens or closes a multi-line string: an odd number of """ or ''' in it. */
static int toggles_multiline(const char *p, const char *end)
{
	int n = 0;
	for (const char *q = p; q + 3 <= end; q++) {
		if ((q[0] == '"' || q[0] == '\'') && q[1] == q[0] && q[2] == q[0]) {
			n++;
			q += 2;
		}
	}
	return n & 1;
}

/* The key at *pp (bare, or quoted without escapes); *pp moves past it. 0, or -1 if there is none. */
static int read_key(const char **pp, const char *end, const char **key, size_t *klen)
{
	const char *p = *pp;
	if (p < end && (*p == '"' || *p == '\'')) {
		const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
		if (!close || memchr(p + 1, '\\', (size_t)(close - p - 1)))
			return -1;
		*key = p + 1;
		*klen = (size_t)(close - p - 1);
		*pp = close + 1;
		return 0;
	}
	const char *s = p;
	while (p < end && is_bare(*p))
		p++;
	if (p == s)
		return -1;
	*key = s;
	*klen = (size_t)(p - s);
	*pp = p;
	return 0;
}

int transport_from_toml(const char *text, size_t len, enum transport *t, char *err, size_t errlen)
{
	*t = TRANSPORT_TTRPC;
	int in_ml = 0;
	for (const char *line = text, *end = text + len; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *le = nl ? nl : end, *p = line;
		line = nl ? nl + 1 : end;
		if (in_ml) {
			in_ml ^= toggles_multiline(p, le);
			continue;
		}
		while (p < le && is_blank(*p))
			p++;
		if (p == le || *p == '#' || *p == '\r')
			continue;
		if (*p == '[')
			return 0; /* the top level ends at the first table */
		const char *key;
		size_t klen;
		const char *rest = p;
		if (read_key(&rest, le, &key, &klen) < 0 || klen != 9 || memcmp(key, "Transport", 9) != 0) {
			in_ml ^= toggles_multiline(p, le);
			continue;
		}
		while (rest < le && is_blank(*rest))
			rest++;
		if (rest == le || *rest != '=') {
			in_ml ^= toggles_multiline(p, le);
			continue; /* a dotted key: Transport.x is not this option */
		}
		rest++;
		while (rest < le && is_blank(*rest))
			rest++;
		const char *v = NULL, *close = NULL;
		if (rest < le && (*rest == '"' || *rest == '\'')) {
			v = rest + 1;
			close = memchr(v, *rest, (size_t)(le - v));
		}
		const char *after = close ? close + 1 : le;
		while (after < le && (is_blank(*after) || *after == '\r'))
			after++;
		if (!close || memchr(v, '\\', (size_t)(close - v)) || (after < le && *after != '#')) {
			snprintf(err, errlen, "runtime option Transport must be a plain string, \"ttrpc\" or \"grpc\"");
			return -1;
		}
		size_t vlen = (size_t)(close - v);
		if (vlen == 4 && memcmp(v, "grpc", 4) == 0) {
			*t = TRANSPORT_GRPC;
			return 0;
		}
		if (vlen == 5 && memcmp(v, "ttrpc", 5) == 0)
			return 0;
		snprintf(err, errlen, "runtime option Transport = \"%.*s\" is not known (expected \"ttrpc\" or \"grpc\")",
			 (int)(vlen > 64 ? 64 : vlen), v);
		return -1;
	}
	return 0;
}

static int field_str(const struct pb_field *f, const char *s)
{
	return f->len == strlen(s) && memcmp(f->data, s, f->len) == 0;
}

/* A google.protobuf.Any holding runtimeoptions.v1.Options: 1 and its value; 0 for another type. */
static int runtime_options_any(const uint8_t *any, size_t len, struct pb_field *value)
{
	struct pb_reader r = pb_reader(any, len);
	struct pb_field f, url = { 0 };
	memset(value, 0, sizeof *value);
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.wire == PB_LEN && f.num == 1)
			url = f;
		else if (f.wire == PB_LEN && f.num == 2)
			*value = f;
	}
	if (rc < 0 || !url.data)
		return 0;
	/* "runtimeoptions.v1.Options", or with a "type.googleapis.com/" prefix */
	const uint8_t *slash = url.len ? memrchr(url.data, '/', url.len) : NULL;
	struct pb_field name = url;
	if (slash) {
		name.data = slash + 1;
		name.len = url.len - (size_t)(slash + 1 - url.data);
	}
	return field_str(&name, "runtimeoptions.v1.Options");
}

static int from_options(const struct pb_field *opts, enum transport *t, char *err, size_t errlen)
{
	struct pb_reader r = pb_reader(opts->data, opts->len);
	struct pb_field f, path = { 0 }, body = { 0 };
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.wire == PB_LEN && f.num == 2)
			path = f;
		else if (f.wire == PB_LEN && f.num == 3)
			body = f;
	}
	if (rc < 0)
		return 0;
	if (path.len) {
		char file[4096], *text;
		size_t n;
		if (path.len >= sizeof file)
			return 0;
		memcpy(file, path.data, path.len);
		file[path.len] = '\0';
		if (read_file(file, &text, &n, CONFIG_MAX) < 0)
			return 0;
		int res = transport_from_toml(text, n, t, err, errlen);
		free(text);
		return res;
	}
	return body.len ? transport_from_toml((const char *)body.data, body.len, t, err, errlen) : 0;
}

int transport_from_stdin(const uint8_t *in, size_t len, int bootstrap, enum transport *t, char *err, size_t errlen)
{
	*t = TRANSPORT_TTRPC;
	struct pb_field value;
	if (!bootstrap)
		return runtime_options_any(in, len, &value) ? from_options(&value, t, err, errlen) : 0;
	/* BootstrapParams.extensions = 8, each an Extension{value = 1: Any} */
	struct pb_reader r = pb_reader(in, len);
	struct pb_field f;
	while (pb_next(&r, &f) > 0) {
		if (f.wire != PB_LEN || f.num != 8)
			continue;
		struct pb_reader er = pb_reader(f.data, f.len);
		struct pb_field e;
		while (pb_next(&er, &e) > 0)
			if (e.wire == PB_LEN && e.num == 1 && runtime_options_any(e.data, e.len, &value))
				return from_options(&value, t, err, errlen);
	}
	return 0;
}
