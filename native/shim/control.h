/* The monitor's control connection to the daemon: hello, requests, replies, reaped events. */
#ifndef TSRT_CONTROL_H
#define TSRT_CONTROL_H

#include "monitor.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

void control_init(const struct monitor_cfg *cfg);
/* fd to poll (-1 when not connected) and the events wanted. */
int control_fd(void);
short control_events(void);
void control_handle(short revents);
/* 1 while not connected (the loop then ticks every 20 ms). */
int control_wants_tick(void);
/* Try to connect; spawn the daemon when it has been unreachable for more than 2 s. */
void control_tick(int64_t now_ms);
/* Queue a reaped event (sent now, or after the next hello). */
void control_reaped(pid_t pid, int status, const struct timespec *ts);
/* Queue an oom event for key (the container id). */
void control_oom(const char *key);
/* Events (reaped, oom) kept until the daemon acknowledges them, sent or not. */
size_t control_events_unacked(void);
/* Number of the current control connection (0 while not connected). A reply sent later, out of
 * the request's own dispatch, names the connection the request came on and is dropped when that
 * connection is gone. */
uint64_t control_conn(void);
void control_reply_ok(uint64_t conn, const char *seq, const char *value);
/* ok with two values */
void control_reply_ok2(uint64_t conn, const char *seq, const char *value, const char *more);
void control_reply_err(uint64_t conn, const char *seq, int err, const char *message);
/* Write what is queued, waiting at most timeout_ms. */
void control_flush_wait(int timeout_ms);
void control_close(void);

#endif
