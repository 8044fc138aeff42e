/* Namespaces and the parent/child hand-over: cgroup joins, setns, the clone of the init with its new
 * namespaces, the id maps the parent writes for it, and the messages on the sync socket. */
#ifndef TSRT_LAUNCH_NS_H
#define TSRT_LAUNCH_NS_H

#include "plan.h"

#include <sys/types.h>

/* Joins the cgroup of every `cgroup` step: a v1 hierarchy through "0" in tasks (this thread, without the
 * kernel's global lock: the launcher has one thread), a cgroup2 directory through our pid in cgroup.procs.
 * With v2fd, the first cgroup2 directory is not joined but opened into *v2fd (else -1), for clone_into to
 * start the child there. A write that takes the global lock waits for an RCU grace period (about 5 ms
 * here) on a kernel that does not favour dynamic cgroup changes; the other two ways do not. */
int cgroups_join(const struct plan *p, int *v2fd);

/* A fork with new namespaces (flags: CLONE_NEW*, or 0), its child started in cgroup cgfd (clone3 with
 * CLONE_INTO_CGROUP) when cgfd >= 0; where the kernel lacks that, our own move there through the fd first.
 * Returns 0 in the child, its pid in the parent, -1 (err_line set). */
pid_t clone_into(unsigned long flags, int cgfd);

/* Opens every joined namespace (fds[t] = -1 for the others); done before any setns, while the paths
 * still resolve in the launcher's own mount namespace. */
int ns_open(const struct plan *p, int fds[NS_COUNT]);

/* setns into every opened namespace in enum order (user first, mount last); closes the fds. */
int ns_join(const struct plan *p, int fds[NS_COUNT]);

/* The CLONE_NEW* flags of the namespaces the plan makes new. */
unsigned long ns_new_flags(const struct plan *p);

/* setgroups, uid_map and gid_map of the child (procfd: the host's /proc). */
int ns_write_maps(const struct plan *p, int procfd, pid_t pid);

/* Brings the loopback interface of the process's (new) network namespace up, as runc does for every new
 * network namespace. */
int ns_loopback_up(void);

/* oom_score_adj of pid ("self" when pid is 0); EACCES is a warning line, not an error. */
int ns_oomscore(int procfd, pid_t pid, int score);

/* The sync socket (SOCK_SEQPACKET): one message is a kind byte and an optional text.
 * Kinds: 'g' parent -> child (maps written: go on); 'r' child -> parent (ready); 'e' child -> parent
 * (error: the text is the error line). */
int sync_send(int fd, char kind, const char *text);
/* Returns 1 with the message, 0 on EOF (the peer is gone), -1 on an error. */
int sync_recv(int fd, char *kind, char *text, size_t n);

#endif
