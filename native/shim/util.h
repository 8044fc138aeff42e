/* Small helpers shared by every part of the shim binary. */
#ifndef TSRT_UTIL_H
#define TSRT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#define RUNTIME_NAME "io.containerd.tsrt.v2"

/* Print "io.containerd.tsrt.v2: <message>" on stderr and exit 1. */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Print "io.containerd.tsrt.v2: <message>" on stderr and go on. */
void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that aborts the process (after a message) when memory is exhausted. */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Write all of buf (retrying EINTR / short writes on a blocking fd). 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read a whole file (at most max bytes) into a NUL-terminated malloc'd buffer. 0 or -1 with errno. */
int read_file(const char *path, char **out, size_t *len, size_t max);
/* Write data to path via a temporary file in the same directory and rename(2). 0 or -1 with errno. */
int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode);
/* mkdir -p. 0 or -1 with errno. */
int mkdir_p(const char *path, mode_t mode);
/* mkdir -p of the directory that contains path. 0 or -1 with errno. */
int mkdir_parent(const char *path, mode_t mode);
/* Set or clear O_NONBLOCK. 0 or -1 with errno. */
int set_nonblock(int fd, int on);

/* The two ends of a client FIFO that runc-v2 holds, both O_NONBLOCK|O_CLOEXEC. input (the process
 * reads it): *use is the reader, *keep a writer so that EOF comes only once it is closed (closeio).
 * Output: *keep is a reader, opened first so the writer neither blocks nor gets EPIPE when the client
 * goes away; *use is the writer. 0, or -1 with errno and nothing left open. */
int fifo_open_ends(const char *path, int input, int *use, int *keep);
/* A `file:` stdio target: parent dirs 0755, the file 0644, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC|O_NOCTTY
 * plus extra_flags. The fd, or -1 with errno. */
int open_log_file(const char *path, int extra_flags);

/* Lower-case hex of n bytes into out (2n chars plus NUL). */
void hex_encode(const uint8_t *in, size_t n, char *out);

/* snprintf that reports truncation: 0 when the result fit, -1 (errno ENAMETOOLONG) otherwise. */
int fmt_path(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Go path.Join of up to three parts (empty parts skipped), then path.Clean. 0 or -1. */
int path_join3(char *out, size_t size, const char *a, const char *b, const char *c);

/* Fill a sockaddr_un for a filesystem path. 0 or -1 (errno ENAMETOOLONG). */
int unix_sockaddr(struct sockaddr_un *sa, socklen_t *len, const char *path);
/* Something listens on the unix socket at path (a connect succeeds, or is only slow). */
int unix_socket_alive(const char *path);

/* In a freshly forked child: empty signal mask, default dispositions. */
void child_reset_signals(void);
/* In a freshly forked child: /dev/null on 0, 1 and 2. 0 or -1. */
int child_devnull_stdio(void);
/* Close every fd >= low except keep (keep may be -1). */
void close_fds_from(int low, int keep);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t mono_ms(void);

/* Big-endian 32-bit integers of the wire formats (ttrpc frame headers, gRPC message prefixes). */
static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
