/* containerd connections and their byte-for-byte proxy connections to the daemon. */
#ifndef TSRT_PROXY_H
#define TSRT_PROXY_H

#include "monitor.h"

#include <poll.h>
#include <stddef.h>

void proxy_init(const struct monitor_cfg *cfg);
/* Accept every pending connection. Returns ms to stop accepting for (fd exhaustion), else 0. */
int proxy_accept(int listen_fd);
/* Number of pollfd slots proxy_fill needs (two per connection). */
size_t proxy_slots(void);
/* containerd connections open now (the SIGUSR1 tables). */
size_t proxy_count(void);
void proxy_fill(struct pollfd *p);
/* Handle the revents of the slots filled by the last proxy_fill. */
void proxy_dispatch(const struct pollfd *p);
/* 1 while some connection waits for a proxy connection to the daemon. */
int proxy_wants_tick(void);
void proxy_tick(void);
/* Forward what the daemon already wrote to containerd (waiting at most timeout_ms). */
void proxy_drain(int timeout_ms);
void proxy_close_all(void);

#endif
