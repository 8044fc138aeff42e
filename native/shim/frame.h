/* Monitor <-> daemon framing: 4-byte big-endian length, then NUL-terminated fields. */
#ifndef TSRT_FRAME_H
#define TSRT_FRAME_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX (1u << 20)

/* Building: frame_begin reserves the length, frame_add* append fields, frame_end fills the length.
 * frame_end returns 0, or -1 when the frame exceeds FRAME_MAX (the partial frame is removed). */
size_t frame_begin(struct buf *b);
void frame_add(struct buf *b, const char *s);
void frame_add_u64(struct buf *b, uint64_t v);
void frame_add_i64(struct buf *b, int64_t v);
int frame_end(struct buf *b, size_t start);

/* The two replies to a request with sequence number seq, begun in b (more fields may follow; then
 * frame_end with the start returned): "ok" seq [value], or "error" seq errno message. */
size_t frame_begin_ok(struct buf *b, const char *seq, const char *value);
size_t frame_begin_error(struct buf *b, const char *seq, int err, const char *message);

/* Parsing from the head of b. Returns 1 when a whole frame is there: *fields (malloc'd array of
 * pointers into b, valid until b changes) and *nfields are set and *framelen is the byte count to
 * drop afterwards. 0: need more bytes. -1: protocol error (too long, or last byte not NUL). */
int frame_parse(struct buf *b, char ***fields, size_t *nfields, size_t *framelen);

#endif
