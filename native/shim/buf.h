/* Growable byte buffer with a consumed-prefix offset (a simple FIFO of bytes). */
#ifndef TSRT_BUF_H
#define TSRT_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf {
	uint8_t *d;
	size_t off; /* start of unread data */
	size_t len; /* bytes of unread data */
	size_t cap;
};

static inline uint8_t *buf_head(const struct buf *b) { return b->d + b->off; }

void buf_free(struct buf *b);
void buf_clear(struct buf *b);
/* Make room for at least extra more bytes after the data (compacting or growing). */
void buf_reserve(struct buf *b, size_t extra);
void buf_put(struct buf *b, const void *p, size_t n);
void buf_drop(struct buf *b, size_t n);
/* read(2) at most max bytes appended to the buffer. Returns read's result (errno kept). */
ssize_t buf_fill(struct buf *b, int fd, size_t max);
/* write(2) from the head; drops what was written. Returns write's result (errno kept). */
ssize_t buf_flush(struct buf *b, int fd);

#endif
