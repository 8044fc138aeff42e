/* The protobuf wire format, as much of it as `start` and `-info` need: append fields to a buf, and walk
 * the fields of an encoded message. */
#ifndef TSRT_PB_H
#define TSRT_PB_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

struct pb_field {
	uint32_t num;
	int wire;
	uint64_t varint;     /* PB_VARINT */
	const uint8_t *data; /* PB_LEN: the bytes; PB_I64 / PB_I32: the 8 or 4 bytes */
	size_t len;
};

struct pb_reader {
	const uint8_t *p, *end;
};

static inline struct pb_reader pb_reader(const void *data, size_t len)
{
	return (struct pb_reader){ data, (const uint8_t *)data + len };
}

/* The next field: 1 (and *f), 0 at the end of the message, -1 when the bytes are not a well-formed
 * message (a varint longer than 10 bytes, a length past the end, field number 0, a group or a wire type
 * that does not exist). */
int pb_next(struct pb_reader *r, struct pb_field *f);

void pb_put_varint(struct buf *b, uint64_t v);
/* A varint field (proto3: the caller leaves out zero values). */
void pb_put_uint(struct buf *b, uint32_t num, uint64_t v);
/* A length-delimited field: bytes, a string or an embedded message. */
void pb_put_bytes(struct buf *b, uint32_t num, const void *p, size_t n);
/* A string field, left out when empty (proto3). */
void pb_put_string(struct buf *b, uint32_t num, const char *s);

#endif
