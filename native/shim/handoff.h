/* Exec servers: a process the monitor spawned with stdin "channel:" holds one end of a private
 * SOCK_SEQPACKET socket pair, the monitor the other (kept under the spawn's io key until `release`). The
 * `handoff` request opens a process's stdio as `spawn` would and sends it to that process over the channel,
 * with a message (the native backend's exec plan); the server starts the process as a child of the monitor
 * (CLONE_PARENT) and answers with its pid or an error line, which become the request's reply. */
#ifndef TSRT_HANDOFF_H
#define TSRT_HANDOFF_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* A new channel for key: returns the server's end (CLOEXEC, for the spawned child's stdin), or -1 with
 * errno (EEXIST: key has one already). */
int handoff_channel(const char *key);
/* Sends msg and the three stdio fds (opened from the specs, keepers under iokey) to the server of
 * chankey; the reply to (conn, seq) follows once it answers: ok with the pid, or ENOEXEC with its error
 * line. Returns 0, or an errno value with a message in err when nothing was sent: ENOENT (no such
 * channel), EMSGSIZE (msg too large for one message), EAGAIN (the server is not reading), EPIPE (it is
 * gone), or what opening the stdio failed with. */
int handoff_send(uint64_t conn, const char *seq, const char *iokey, const char *chankey, const char *const stdio[3],
		 const char *msg, size_t len, char *err, size_t errlen);
/* Close key's channel: the server reads end of file and exits; what is pending fails with EPIPE. */
void handoff_release(const char *key);
void handoff_release_all(void);
size_t handoff_count(void);

/* Poll loop: one slot per channel. */
size_t handoff_slots(void);
void handoff_fill(struct pollfd *p);
void handoff_dispatch(const struct pollfd *p);

#endif
