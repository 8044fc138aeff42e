/* The monitor's gRPC server: HTTP/2 (libnghttp2, loaded with dlopen) on a containerd connection, each
 * unary call turned into a ttrpc Request frame for the daemon and each ttrpc Response frame back into
 * a gRPC response. The ttrpc side is the stream proxy.c follows, so replay and UNAVAILABLE after a lost
 * daemon apply unchanged. */
#ifndef TSRT_GRPC_H
#define TSRT_GRPC_H

#include "buf.h"

#include <stddef.h>

struct h2conn;

/* dlopen libnghttp2 and resolve what the server uses (once). 0, or -1 with a message in err. */
int grpc_load(char *err, size_t errlen);

/* A server session; NULL if grpc_load did not succeed or nghttp2 failed. */
struct h2conn *grpc_conn_new(void);
void grpc_conn_free(struct h2conn *h);

/* Bytes read from containerd: ttrpc request frames for completed calls are appended to to_daemon.
 * -1 when the connection must be closed (not HTTP/2, a protocol error nghttp2 cannot answer). */
int grpc_conn_recv(struct h2conn *h, const uint8_t *data, size_t len, struct buf *to_daemon);

/* Turns the complete ttrpc frames at the head of from_daemon into responses (and drops them from
 * it), while the output for containerd stays under its limit. */
void grpc_conn_from_daemon(struct h2conn *h, struct buf *from_daemon);

/* How many bytes from_daemon must hold before its first frame is complete (at least its header). */
size_t grpc_frame_need(const struct buf *from_daemon);

/* Writes pending HTTP/2 output to fd (non-blocking). -1 when the connection is lost. */
int grpc_conn_flush(struct h2conn *h, int fd);

/* 1 while there is output for containerd (poll for POLLOUT). */
int grpc_conn_want_write(struct h2conn *h);

/* 1 once the session has ended (GOAWAY exchanged, fatal error) and all its output is written. */
int grpc_conn_done(struct h2conn *h);

/* gRPC calls answered so far by this monitor, for its log. */
unsigned long grpc_calls(void);

#endif
