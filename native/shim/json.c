/* A small validating JSON scanner: walks the whole document, decodes strings (all escapes,
 * including \u surrogate pairs) and keeps only annotations[key]. */
#include "json.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 512

struct scan {
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Parse a string at s->p (which must be '"'). When out is non-NULL, *out gets a malloc'd
 * decoded copy (NUL-terminated) and *outlen its length. 0 or -1. */
static int parse_string(struct scan *s, char **out, size_t *outlen)
{
	if (s->p >= s->end || *s->p != '"')
		return -1;
	const char *start = ++s->p;
	char *o = NULL;
	size_t w = 0;
	if (out) {
		/* Decoded text is never longer than the raw text; find the raw end first. */
		const char *q = start;
		while (q < s->end && *q != '"')
			q += (*q == '\\' && q + 1 < s->end) ? 2 : 1;
		o = xrealloc(NULL, (size_t)(q - start) + 1);
	}
	for (;;) {
		if (s->p >= s->end)
			goto bad;
		unsigned char c = (unsigned char)*s->p;
		if (c == '"') {
			s->p++;
			break;
		}
		if (c < 0x20)
			goto bad;
		if (c != '\\') {
			if (o)
				o[w++] = (char)c;
			s->p++;
			continue;
		}
		if (s->end - s->p < 2)
			goto bad;
		char e = s->p[1];
		s->p += 2;
		char lit;
		switch (e) {
		case '"': lit = '"'; break;
		case '\\': lit = '\\'; break;
		case '/': lit = '/'; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'u': {
			uint32_t cp, lo;
			if (s->end - s->p < 4 || hex4(s->p, &cp) < 0)
				goto bad;
			s->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
			    s->p[1] == 'u' && hex4(s->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				s->p += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd; /* lone surrogate: replacement character, as Go does */
			}
			if (o)
				w += put_utf8(o + w, cp);
			continue;
		}
		default:
			goto bad;
		}
		if (o)
			o[w++] = lit;
	}
	if (o) {
		o[w] = '\0';
		*out = o;
		*outlen = w;
	}
	return 0;
bad:
	free(o);
	return -1;
}

static int skip_value(struct scan *s, int depth);

static int skip_container(struct scan *s, int depth, char open)
{
	char close = open == '{' ? '}' : ']';
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	for (;;) {
		if (open == '{') {
			skip_ws(s);
			if (parse_string(s, NULL, NULL) < 0)
				return -1;
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return -1;
			s->p++;
		}
		if (skip_value(s, depth + 1) < 0)
			return -1;
		skip_ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p == close) {
			s->p++;
			return 0;
		}
		return -1;
	}
}

static int skip_literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

static int skip_number(struct scan *s)
{
	const char *q = s->p;
	if (q < s->end && *q == '-')
		q++;
	if (q >= s->end || *q < '0' || *q > '9')
		return -1;
	if (*q == '0')
		q++;
	else
		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
	if (q < s->end && *q == '.') {
		q++;
		if (q >= s->end || *q < '0' || *q > '9')
			return -1;
		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < s->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < s->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= s->end || *q < '0' || *q > '9')
			return -1;
		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
	}
	s->p = q;
	return 0;
}

static int skip_value(struct scan *s, int depth)
{
	if (depth > MAX_DEPTH)
		return -1;
	skip_ws(s);
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{':
	case '[':
		return skip_container(s, depth, *s->p);
	case '"':
		return parse_string(s, NULL, NULL);
	case 't':
		return skip_literal(s, "true");
	case 'f':
		return skip_literal(s, "false");
	case 'n':
		return skip_literal(s, "null");
	default:
		return skip_number(s);
	}
}

/* Walk the annotations object; remember the last string value stored under key. */
static int scan_annotations(struct scan *s, const char *key, char **found)
{
	size_t keylen = strlen(key);
	s->p++; /* '{' */
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		char *k;
		size_t klen;
		skip_ws(s);
		if (parse_string(s, &k, &klen) < 0)
			return -1;
		int match = klen == keylen && memcmp(k, key, keylen) == 0;
		free(k);
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return -1;
		s->p++;
		skip_ws(s);
		if (match && s->p < s->end && *s->p == '"') {
			char *v;
			size_t vlen;
			if (parse_string(s, &v, &vlen) < 0)
				return -1;
			free(*found);
			*found = v;
			if (strlen(v) != vlen)
				return -1; /* embedded NUL */
		} else if (skip_value(s, 2) < 0) {
			return -1;
		}
		skip_ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p == '}') {
			s->p++;
			return 0;
		}
		return -1;
	}
}

int json_annotation(const char *js, size_t len, const char *key, char **value)
{
	struct scan s = { js, js + len };
	char *found = NULL;
	skip_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return -1;
	s.p++;
	skip_ws(&s);
	if (s.p < s.end && *s.p == '}') {
		s.p++;
		goto done;
	}
	for (;;) {
		char *k;
		size_t klen;
		skip_ws(&s);
		if (parse_string(&s, &k, &klen) < 0)
			goto bad;
		/* Go matches struct field names case-insensitively. */
		int is_ann = klen == 11 && strcasecmp(k, "annotations") == 0;
		free(k);
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			goto bad;
		s.p++;
		skip_ws(&s);
		if (is_ann && s.p < s.end && *s.p == '{') {
			if (scan_annotations(&s, key, &found) < 0)
				goto bad;
		} else if (skip_value(&s, 1) < 0) {
			goto bad;
		}
		skip_ws(&s);
		if (s.p >= s.end)
			goto bad;
		if (*s.p == ',') {
			s.p++;
			continue;
		}
		if (*s.p == '}') {
			s.p++;
			break;
		}
		goto bad;
	}
done:
	skip_ws(&s);
	if (s.p != s.end)
		goto bad;
	if (!found)
		return 0;
	*value = found;
	return 1;
bad:
	free(found);
	return -1;
}
