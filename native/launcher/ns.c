#include "ns.h"
#include "err.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const int ns_flag[NS_COUNT] = {
	[NS_USER] = CLONE_NEWUSER, [NS_PID] = CLONE_NEWPID, [NS_UTS] = CLONE_NEWUTS,
	[NS_IPC] = CLONE_NEWIPC, [NS_NET] = CLONE_NEWNET, [NS_CGROUP] = CLONE_NEWCGROUP,
	[NS_TIME] = CLONE_NEWTIME, [NS_MOUNT] = CLONE_NEWNS,
};

static int write_file_at(int dirfd, const char *path, const char *data, size_t len)
{
	int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* One write: the kernel takes a map file's lines only in a single write. */
	ssize_t n = write(fd, data, len);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	if ((size_t)n != len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/* Our pid into a cgroup2 directory's cgroup.procs. */
static int join_v2(int dirfd, const char *dir)
{
	char pid[24];
	int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (write_file_at(dirfd, "cgroup.procs", pid, (size_t)n) < 0)
		return fail("cgroup", errno, "%s/cgroup.procs", dir);
	return 0;
}

int cgroups_join(const struct plan *p, int *v2fd)
{
	if (v2fd)
		*v2fd = -1;
	for (size_t i = 0; i < p->cgroups.n; i++) {
		const char *dir = p->cgroups.v[i];
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return fail("cgroup", errno, "%s", dir);
		struct statfs sf;
		int r = 0;
		if (fstatfs(fd, &sf) < 0) {
			r = fail("cgroup", errno, "%s", dir);
		} else if (sf.f_type == CGROUP_SUPER_MAGIC) {
			/* v1: "0" into tasks moves this thread, the launcher's only one, without the global lock */
			if (write_file_at(fd, "tasks", "0", 1) < 0)
				r = fail("cgroup", errno, "%s/tasks", dir);
		} else if (v2fd && *v2fd < 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
			*v2fd = fd; /* the child is cloned into it */
			continue;
		} else {
			r = join_v2(fd, dir);
		}
		close(fd);
		if (r < 0) {
			if (v2fd && *v2fd >= 0) {
				close(*v2fd);
				*v2fd = -1;
			}
			return -1;
		}
	}
	return 0;
}

/* Why a raw clone (or clone3) and not clone(3) with a stack: with no new stack (0) the syscall behaves like
 * fork(2), so the child goes on with a private copy of this stack and simply returns here, which
 * keeps the child's code ordinary (no separate entry function, no stack sizing) and works the same
 * under ASan. The launcher is single-threaded, so forking without glibc's atfork handlers is safe.
 * unshare + fork would also do, but unshare(CLONE_NEWUSER) would move the parent itself into the new
 * user namespace, and the parent must stay outside to write the child's id maps. */
pid_t clone_into(unsigned long flags, int cgfd)
{
	long r;
	if (cgfd >= 0) {
		struct clone_args a;
		memset(&a, 0, sizeof a);
		a.flags = flags | CLONE_INTO_CGROUP;
		a.exit_signal = SIGCHLD;
		a.cgroup = (uint64_t)cgfd;
		r = syscall(SYS_clone3, &a, sizeof a);
		if (r >= 0)
			return (pid_t)r;
		if (errno != ENOSYS && errno != E2BIG)
			return fail(flags ? "ns" : "cgroup", errno, "clone into the cgroup (flags 0x%lx)", flags);
		/* a kernel before 5.7: join through the fd (the mount namespace may be the container's by now) */
		if (join_v2(cgfd, "the cgroup2 directory") < 0)
			return -1;
	}
	r = syscall(SYS_clone, flags | SIGCHLD, 0UL, NULL, NULL, 0UL);
	if (r < 0 && flags)
		return fail("ns", errno, "clone (flags 0x%lx)", flags);
	if (r < 0)
		return fail("launcher", errno, "fork");
	return (pid_t)r;
}

int ns_open(const struct plan *p, int fds[NS_COUNT])
{
	for (int t = 0; t < NS_COUNT; t++)
		fds[t] = -1;
	for (int t = 0; t < NS_COUNT; t++) {
		if (!p->ns_given[t] || !p->ns_path[t])
			continue;
		fds[t] = open(p->ns_path[t], O_RDONLY | O_CLOEXEC);
		if (fds[t] < 0)
			return fail("ns", errno, "%s %s", ns_name(t), p->ns_path[t]);
	}
	return 0;
}

int ns_join(const struct plan *p, int fds[NS_COUNT])
{
	for (int t = 0; t < NS_COUNT; t++) {
		if (fds[t] < 0)
			continue;
		if (setns(fds[t], ns_flag[t]) < 0)
			return fail("ns", errno, "setns %s %s", ns_name(t), p->ns_path[t]);
		close(fds[t]);
		fds[t] = -1;
	}
	return 0;
}

unsigned long ns_new_flags(const struct plan *p)
{
	unsigned long flags = 0;
	for (int t = 0; t < NS_COUNT; t++)
		if (p->ns_given[t] && !p->ns_path[t])
			flags |= (unsigned long)ns_flag[t];
	return flags;
}

static int write_map(int procfd, pid_t pid, const char *file, const struct idmap_line *m, size_t n)
{
	char buf[8192], path[64];
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(buf + len, sizeof buf - len, "%lu %lu %lu\n", m[i].container, m[i].host, m[i].size);
		if (k < 0 || (size_t)k >= sizeof buf - len)
			return fail(file[0] == 'u' ? "uidmap" : "gidmap", E2BIG, "too many lines");
		len += (size_t)k;
	}
	snprintf(path, sizeof path, "%d/%s", (int)pid, file);
	if (write_file_at(procfd, path, buf, len) < 0)
		return fail(file[0] == 'u' ? "uidmap" : "gidmap", errno, "/proc/%s", path);
	return 0;
}

int ns_write_maps(const struct plan *p, int procfd, pid_t pid)
{
	if (!p->ns_given[NS_USER] || p->ns_path[NS_USER])
		return 0;
	int allow = p->setgroups;
	if (allow < 0) {
		allow = 0; /* default deny, unless the gid map maps more than one gid */
		for (size_t i = 0; i < p->ngidmap; i++)
			if (p->gidmap[i].size > 1 || p->ngidmap > 1)
				allow = 1;
	}
	char path[64];
	snprintf(path, sizeof path, "%d/setgroups", (int)pid);
	const char *v = allow ? "allow\n" : "deny\n";
	if (write_file_at(procfd, path, v, strlen(v)) < 0)
		return fail("setgroups", errno, "/proc/%s", path);
	if (write_map(procfd, pid, "uid_map", p->uidmap, p->nuidmap) < 0)
		return -1;
	return write_map(procfd, pid, "gid_map", p->gidmap, p->ngidmap);
}

int ns_oomscore(int procfd, pid_t pid, int score)
{
	char path[64], v[16];
	if (pid)
		snprintf(path, sizeof path, "%d/oom_score_adj", (int)pid);
	else
		snprintf(path, sizeof path, "self/oom_score_adj");
	int n = snprintf(v, sizeof v, "%d", score);
	if (write_file_at(procfd, path, v, (size_t)n) == 0)
		return 0;
	if (errno == EACCES) {
		warn_line("oomscore", errno, "/proc/%s %d", path, score);
		return 0;
	}
	return fail("oomscore", errno, "/proc/%s %d", path, score);
}

int sync_send(int fd, char kind, const char *text)
{
	char buf[ERR_MAX + 1];
	size_t n = text ? strnlen(text, ERR_MAX) : 0;
	buf[0] = kind;
	if (n)
		memcpy(buf + 1, text, n);
	for (;;) {
		ssize_t w = send(fd, buf, n + 1, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		return w == (ssize_t)(n + 1) ? 0 : -1;
	}
}

int sync_recv(int fd, char *kind, char *text, size_t n)
{
	char buf[ERR_MAX + 1];
	ssize_t r;
	do
		r = recv(fd, buf, sizeof buf, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return (int)r;
	*kind = buf[0];
	size_t len = (size_t)r - 1;
	if (len >= n)
		len = n - 1;
	memcpy(text, buf + 1, len);
	text[len] = '\0';
	return 1;
}

int ns_loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("ns", errno, "net: a socket to bring lo up");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	int e = errno;
	close(fd);
	return r < 0 ? fail("ns", e, "net: bring lo up") : 0;
}
