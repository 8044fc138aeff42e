/* Copies between a process stream the monitor did not fork (a VM agent's unix socket, a pipe or character
 * device) and containerd's stdio FIFOs or log files, done by the monitor in its poll loop so that the bytes
 * never pass through the daemon and keep flowing while it restarts. Kept per io key until `release`. */
#ifndef TSRT_COPY_H
#define TSRT_COPY_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* Start a copy for key: direction "in" (target -> endpoint) or "out" (endpoint -> target). endpoint is
 * "unix:<absolute path>" (a stream socket to connect) or the absolute path of a FIFO or character device;
 * target is "fifo:<path>", or for "out" also "file:<path>". Both are open when this returns 0; otherwise an
 * errno value with a message in err (EINVAL for a bad direction or spec, EEXIST for a second "in" of key). */
int copy_start(const char *key, const char *direction, const char *endpoint, const char *target, char *err,
	       size_t errlen);
/* Close the stdin keeper of key's "in" copy (closeio): it ends once the FIFO's other writers are gone and
 * every byte is copied, then the endpoint's write side is shut. */
void copy_closeio(const char *key);
/* End every copy of key at once (release). */
void copy_release(const char *key);
/* End every copy (monitor exit). */
void copy_release_all(void);
/* Bytes every copy has moved so far: "in" copies (into endpoints), "out" copies (into targets). */
void copy_io_counts(uint64_t *in, uint64_t *out);

/* Poll loop: slots, fill, dispatch (call dispatch before anything can add or remove copies). */
size_t copy_slots(void);
/* Copies running now (the SIGUSR1 tables). */
size_t copy_count(void);
void copy_fill(struct pollfd *p);
void copy_dispatch(const struct pollfd *p);

#endif
