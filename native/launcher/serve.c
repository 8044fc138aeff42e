/* tsrt-launch serve: the exec server (docs/native-launcher.md, "The exec server").
 *
 * Started by the monitor with stdin a private SOCK_SEQPACKET channel (native/shim/handoff.c), it opens
 * what the plan names while it is still in the host's view (the container's cgroup directories, /proc),
 * joins the container's namespaces once (a pid namespace applies to its children), and then serves one
 * request at a time: a message with an exec plan's process steps and, as SCM_RIGHTS, the process's stdin,
 * stdout and stderr. For each it clones a child with CLONE_PARENT, so that the monitor is the child's
 * parent and reaps it like any other, and with CLONE_INTO_CGROUP into the container's cgroup2 directory;
 * the child moves itself into each v1 hierarchy ("0" into tasks), applies the plan and execs. The answer
 * is "p <pid>" (then the warnings, a line each) once the execve succeeded, "e <error line>" otherwise.
 * The server itself stays outside the container's cgroups, so it is in no Pids, no kill --all and no
 * memory accounting of the container. It ends at end of file on the channel (the io key's release).
 *
 * What an exec costs here is one clone of this small process and the program's execve: no launcher of its
 * own to exec, no plan file, no pid file. */
#include "serve.h"
#include "err.h"
#include "ns.h"
#include "plan.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

#define CHANNEL 0
#define REQUEST_MAX (256u << 10) /* a larger plan is sent the slow way (the monitor's EMSGSIZE) */
#define V1_MAX 32

static int v1[V1_MAX];
static size_t nv1;
static int v2 = -1;
static int proc_fd = -1;

/* What a serve plan may hold: the errfile, cgroup directories and namespaces to join, nothing else. */
static int validate_serve(const struct plan *p)
{
	if (p->argv.n || p->env.n || p->cwd || p->console || p->pidfile || p->keyring || p->has_oomscore)
		return fail("serve", EINVAL, "a serve plan holds no process (the requests do)");
	for (int t = 0; t < NS_COUNT; t++) {
		if (!p->ns_given[t])
			continue;
		if (!p->ns_path[t])
			return fail("ns", EINVAL, "%s: the exec server only joins namespaces", ns_name(t));
		if (t == NS_USER)
			return fail("ns", EINVAL, "user: not served (an exec into a user namespace takes the launcher)");
	}
	return 0;
}

/* What a request's plan may hold: an exec plan's process steps; what the server did once is not in it. */
static int validate_request(const struct plan *p)
{
	if (p->argv.n == 0)
		return fail("arg", EINVAL, "no arg step (argv is empty)");
	if (p->cgroups.n || p->pidfile || p->console || p->rootfs || p->execfifo)
		return fail("serve", EINVAL, "not a step of a served exec");
	for (int t = 0; t < NS_COUNT; t++)
		if (p->ns_given[t])
			return fail("ns", EINVAL, "%s: the exec server has joined the namespaces already", ns_name(t));
	if (!p->has_seccomp && (p->seccomp_arches.n || p->seccomp_flags.n || p->nseccomp_rules))
		return fail("seccomp-default", EINVAL, "seccomp steps without a seccomp-default step");
	return 0;
}

static int open_cgroups(const struct plan *p)
{
	for (size_t i = 0; i < p->cgroups.n; i++) {
		const char *dir = p->cgroups.v[i];
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct statfs sf;
		if (fd < 0 || fstatfs(fd, &sf) < 0)
			return fail("cgroup", errno, "%s", dir);
		if (sf.f_type == CGROUP_SUPER_MAGIC && nv1 < V1_MAX) {
			v1[nv1++] = fd;
		} else if (sf.f_type == CGROUP2_SUPER_MAGIC && v2 < 0) {
			v2 = fd;
		} else {
			close(fd);
			return fail("cgroup", EINVAL, "%s: not a v1 hierarchy or the one cgroup2 directory", dir);
		}
	}
	return 0;
}

/* A child beside the server (its parent is the monitor), started in the cgroup2 directory if any. */
static pid_t clone_beside(void)
{
	struct clone_args a;
	memset(&a, 0, sizeof a);
	a.flags = CLONE_PARENT | (v2 >= 0 ? CLONE_INTO_CGROUP : 0);
	a.cgroup = v2 >= 0 ? (uint64_t)v2 : 0;
	long r = syscall(SYS_clone3, &a, sizeof a);
	if (r < 0 && (errno == ENOSYS || errno == E2BIG) && v2 < 0)
		r = syscall(SYS_clone, CLONE_PARENT, 0UL, NULL, NULL, 0UL);
	if (r < 0)
		return fail("serve", errno, "clone%s", v2 >= 0 ? " into the cgroup" : "");
	return (pid_t)r;
}

/* The child: its stdio, its v1 cgroups, the plan, execve. Reports every line (warnings, the error) into
 * report, whose write end closes at the execve. */
static _Noreturn void child(const char *req, size_t n, int fds[3], int report)
{
	int code = 1;
	err_redirect(report);
	for (int i = 0; i < 3; i++) {
		if (fds[i] < 3 && (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			fail("serve", errno, "stdio");
			goto failed;
		}
	}
	for (int i = 0; i < 3; i++) {
		if (dup2(fds[i], i) < 0) {
			fail("serve", errno, "stdio");
			goto failed;
		}
	}
	for (size_t i = 0; i < nv1; i++) {
		int fd = openat(v1[i], "tasks", O_WRONLY | O_CLOEXEC);
		ssize_t w = fd < 0 ? -1 : write(fd, "0", 1);
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (w != 1) {
			fail("cgroup", e, "tasks of v1 hierarchy %zu", i);
			goto failed;
		}
	}
	char *copy = malloc(n);
	if (!copy) {
		fail("serve", ENOMEM, "request");
		goto failed;
	}
	memcpy(copy, req, n);
	struct plan p;
	if (plan_parse(copy, n, &p) < 0 || validate_request(&p) < 0)
		goto failed;
	if (p.has_oomscore && ns_oomscore(proc_fd, 0, p.oomscore) < 0)
		goto failed;
	if (proc_setup(&p) == 0) {
		proc_exec(&p);
		code = 127;
	}
failed:
	err_report(err_line);
	_exit(code);
}

static void answer(const char *text, size_t n)
{
	ssize_t w;
	do
		w = send(CHANNEL, text, n, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
}

/* Splits what the child reported into the error (the first line that is not a warning) and warnings. */
static void answer_report(pid_t pid, char *msg, size_t len)
{
	char out[ERR_MAX * 2 + 32];
	size_t k = (size_t)snprintf(out, sizeof out, "p %d", (int)pid);
	msg[len] = '\0';
	for (char *line = msg, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line)
			continue;
		if (!strstr(line, ": warning: ")) {
			k = (size_t)snprintf(out, sizeof out, "e %s", line);
			answer(out, k < sizeof out ? k : sizeof out - 1);
			return;
		}
		int m = snprintf(out + k, sizeof out - k, "\n%s", line);
		if (m > 0 && (size_t)m < sizeof out - k)
			k += (size_t)m;
	}
	answer(out, k);
}

static void serve_one(const char *req, size_t n, int fds[3])
{
	int pp[2];
	char out[ERR_MAX + 4];
	if (pipe2(pp, O_CLOEXEC) < 0) {
		fail("serve", errno, "pipe");
		goto refuse;
	}
	pid_t pid = clone_beside();
	if (pid < 0) {
		close(pp[0]);
		close(pp[1]);
		goto refuse;
	}
	if (pid == 0) {
		close(pp[0]);
		child(req, n, fds, pp[1]);
	}
	close(pp[1]);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	char msg[ERR_MAX * 2 + 1];
	size_t len = 0;
	for (;;) {
		ssize_t r = read(pp[0], msg + len, sizeof msg - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (len += (size_t)r) == sizeof msg - 1)
			break;
	}
	close(pp[0]);
	/* a child that failed exits on its own, and the monitor, its parent, reaps it */
	answer_report(pid, msg, len);
	return;
refuse:
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	int k = snprintf(out, sizeof out, "e %s", err_line);
	answer(out, k > 0 && (size_t)k < sizeof out ? (size_t)k : sizeof out - 1);
}

int serve(const struct plan *p)
{
	if (validate_serve(p) < 0)
		return -1;
	proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (proc_fd < 0)
		return fail("serve", errno, "/proc");
	if (open_cgroups(p) < 0)
		return -1;
	int nsfd[NS_COUNT];
	if (ns_open(p, nsfd) < 0 || ns_join(p, nsfd) < 0)
		return -1;
	char *req = malloc(REQUEST_MAX);
	if (!req)
		return fail("serve", ENOMEM, "request buffer");
	for (;;) {
		union {
			char buf[CMSG_SPACE(4 * sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { .iov_base = req, .iov_len = REQUEST_MAX };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
		ssize_t n = recvmsg(CHANNEL, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("serve", errno, "channel");
		if (n == 0 && mh.msg_controllen == 0)
			return 0; /* released */
		int fds[4], nfds = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
				if (nfds < 4)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if (nfds != 3 || n == 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			static const char bad[] = "e tsrt-launch: serve: malformed request (a plan and three fds)";
			answer(bad, sizeof bad - 1);
			continue;
		}
		serve_one(req, (size_t)n, fds);
	}
}
