#include "frame.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t frame_begin(struct buf *b)
{
	static const uint8_t zero[4];
	size_t start = b->len;
	buf_put(b, zero, 4);
	return start;
}

void frame_add(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s) + 1);
}

void frame_add_u64(struct buf *b, uint64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRIu64, v);
	frame_add(b, num);
}

void frame_add_i64(struct buf *b, int64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRId64, v);
	frame_add(b, num);
}

int frame_end(struct buf *b, size_t start)
{
	size_t n = b->len - start - 4;
	if (n > FRAME_MAX) {
		b->len = start;
		return -1;
	}
	uint8_t *p = buf_head(b) + start;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	return 0;
}

int frame_parse(struct buf *b, char ***fields, size_t *nfields, size_t *framelen)
{
	if (b->len < 4)
		return 0;
	const uint8_t *p = buf_head(b);
	size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (n > FRAME_MAX)
		return -1;
	if (b->len < 4 + n)
		return 0;
	if (n == 0 || p[4 + n - 1] != '\0')
		return -1;
	char *body = (char *)buf_head(b) + 4;
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		if (body[i] == '\0')
			count++;
	char **v = xrealloc(NULL, (count + 1) * sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		v[k++] = body + i;
		i += strlen(body + i);
	}
	v[k] = NULL;
	*fields = v;
	*nfields = k;
	*framelen = 4 + n;
	return 1;
}

size_t frame_begin_ok(struct buf *b, const char *seq, const char *value)
{
	size_t start = frame_begin(b);
	frame_add(b, "ok");
	frame_add(b, seq);
	if (value)
		frame_add(b, value);
	return start;
}

size_t frame_begin_error(struct buf *b, const char *seq, int err, const char *message)
{
	size_t start = frame_begin(b);
	frame_add(b, "error");
	frame_add(b, seq);
	frame_add_u64(b, (uint64_t)err);
	frame_add(b, message);
	return start;
}
