#include "pb.h"

#include <string.h>

static int read_varint(struct pb_reader *r, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		if (r->p >= r->end)
			return -1;
		uint8_t c = *r->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

int pb_next(struct pb_reader *r, struct pb_field *f)
{
	if (r->p >= r->end)
		return 0;
	uint64_t key;
	if (read_varint(r, &key) < 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
		return -1;
	memset(f, 0, sizeof *f);
	f->num = (uint32_t)(key >> 3);
	f->wire = (int)(key & 7);
	size_t avail = (size_t)(r->end - r->p);
	switch (f->wire) {
	case PB_VARINT:
		return read_varint(r, &f->varint) < 0 ? -1 : 1;
	case PB_I64:
	case PB_I32:
		f->len = f->wire == PB_I64 ? 8 : 4;
		break;
	case PB_LEN: {
		uint64_t n;
		if (read_varint(r, &n) < 0)
			return -1;
		avail = (size_t)(r->end - r->p);
		if (n > avail)
			return -1;
		f->len = (size_t)n;
		break;
	}
	default:
		return -1; /* groups (3, 4) are not used by any message read here; 6 and 7 do not exist */
	}
	if (f->len > avail)
		return -1;
	f->data = r->p;
	r->p += f->len;
	return 1;
}

void pb_put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	buf_put(b, tmp, n);
}

void pb_put_uint(struct buf *b, uint32_t num, uint64_t v)
{
	pb_put_varint(b, (uint64_t)num << 3 | PB_VARINT);
	pb_put_varint(b, v);
}

void pb_put_bytes(struct buf *b, uint32_t num, const void *p, size_t n)
{
	pb_put_varint(b, (uint64_t)num << 3 | PB_LEN);
	pb_put_varint(b, n);
	if (n)
		buf_put(b, p, n);
}

void pb_put_string(struct buf *b, uint32_t num, const char *s)
{
	if (s && *s)
		pb_put_bytes(b, num, s, strlen(s));
}
