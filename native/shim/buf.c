#include "buf.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void buf_free(struct buf *b)
{
	free(b->d);
	b->d = NULL;
	b->off = b->len = b->cap = 0;
}

void buf_clear(struct buf *b)
{
	b->off = b->len = 0;
}

void buf_reserve(struct buf *b, size_t extra)
{
	if (b->cap - b->off - b->len >= extra)
		return;
	if (b->off > 0) {
		memmove(b->d, b->d + b->off, b->len);
		b->off = 0;
		if (b->cap - b->len >= extra)
			return;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < extra)
		cap *= 2;
	b->d = xrealloc(b->d, cap);
	b->cap = cap;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->d + b->off + b->len, p, n);
	b->len += n;
}

void buf_drop(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

ssize_t buf_fill(struct buf *b, int fd, size_t max)
{
	buf_reserve(b, max);
	ssize_t r;
	do
		r = read(fd, b->d + b->off + b->len, max);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		b->len += (size_t)r;
	return r;
}

ssize_t buf_flush(struct buf *b, int fd)
{
	if (b->len == 0)
		return 0;
	ssize_t w;
	do
		w = write(fd, buf_head(b), b->len);
	while (w < 0 && errno == EINTR);
	if (w > 0)
		buf_drop(b, (size_t)w);
	return w;
}
