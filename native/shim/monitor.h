/* The monitor: the long-lived per-container (or per-pod) process containerd knows as the shim. */
#ifndef TSRT_MONITOR_H
#define TSRT_MONITOR_H

#include "daemon.h"

#include <sys/types.h>

struct monitor_cfg {
	int listen_fd;             /* bound and listening; inherited from start */
	char sock_path[108];       /* filesystem path of the shim socket */
	dev_t sock_dev;            /* identity of the socket file we bound (unlink only that one) */
	ino_t sock_ino;
	char monitor_id[65];       /* 64-hex socket hash */
	char shim_address[120];    /* unix://<sock_path> */
	char bundle[PATH_MAX];
	const char *namespace;
	const char *id;
	int debug;
	int grpc;                  /* serve gRPC (HTTP/2, grpc.c) instead of ttrpc on the socket */
	const char *transport_note; /* why gRPC was configured but not answered, logged as a warning */
	struct daemon_cfg daemon;
};

/* Runs the monitor in the current (freshly forked) process. Never returns. */
void monitor_run(const struct monitor_cfg *cfg) __attribute__((noreturn));

/* Unlink our socket, close every connection and exit with code. */
void monitor_exit(int code) __attribute__((noreturn));

#endif
