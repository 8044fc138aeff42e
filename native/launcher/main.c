/* tsrt-launch: the native backend's launcher (docs/native-launcher.md).
 *
 *   tsrt-launch create <plan>   the container's init: set up, report ready, wait on the exec FIFO
 *   tsrt-launch exec <plan>     a process in a running container
 *   tsrt-launch serve <plan>    the exec server of a running container, stdin its channel (serve.c)
 *
 * The launcher parses the whole plan first, then carries it out in the documented order. The parent
 * half stays in the host's view (it holds fds on /proc, the pidfile's and the FIFO's directories, the
 * errfile and the console socket, all opened before anything else) and is the one that reports:
 * exit 0 once the child is ready (create) or has exec'd (exec), else exit 1 with the error line,
 * the child killed and reaped. */
#include "devfilter.h"
#include "err.h"
#include "fs.h"
#include "ns.h"
#include "plan.h"
#include "proc.h"
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/close_range.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct plan plan;

/* Once the launcher has joined a pid namespace, it ends with _exit: LeakSanitizer's exit-time check
 * (ASan builds) clones a tracer task that would land in that namespace and could never attach to
 * the launcher, which then spins. Everything the launcher writes goes out with write(2), so _exit
 * loses nothing. */
static int joined_pid_ns;

static _Noreturn void finish(int code)
{
	if (joined_pid_ns)
		_exit(code);
	exit(code);
}

static _Noreturn void report_and_exit(void)
{
	err_report(err_line);
	finish(1);
}

static int is_new(const struct plan *p, enum ns_type t)
{
	return p->ns_given[t] && !p->ns_path[t];
}

/* The checks that need the whole plan: what a mode requires and what it cannot do. */
static int validate(const struct plan *p, int exec)
{
	if (p->argv.n == 0)
		return fail("arg", EINVAL, "no arg step (argv is empty)");
	int newuser = is_new(p, NS_USER);
	if (!newuser && (p->nuidmap || p->ngidmap || p->setgroups >= 0))
		return fail(p->nuidmap ? "uidmap" : p->ngidmap ? "gidmap" : "setgroups", EINVAL,
			    "only for a new user namespace");
	if (newuser && (!p->nuidmap || !p->ngidmap))
		return fail(p->nuidmap ? "gidmap" : "uidmap", EINVAL, "a new user namespace needs uid and gid maps");
	if (p->ndevexs && !p->devfilter_dir)
		return fail("devex", EINVAL, "no devfilter step");
	if (!p->has_seccomp && (p->seccomp_arches.n || p->seccomp_flags.n || p->nseccomp_rules))
		return fail(p->nseccomp_rules ? "seccomp-rule" : p->seccomp_arches.n ? "seccomp-arch" : "seccomp-flag",
			    EINVAL, "no seccomp-default step");
	if (!exec) {
		if (!p->rootfs)
			return fail("rootfs", EINVAL, "no rootfs step");
		if (!is_new(p, NS_MOUNT))
			return fail("ns", EINVAL, "create needs a new mount namespace (ns mount -)");
		if (p->hostname && !is_new(p, NS_UTS))
			return fail("hostname", EINVAL, "needs a new uts namespace");
		if (p->domainname && !is_new(p, NS_UTS))
			return fail("domainname", EINVAL, "needs a new uts namespace");
		return 0;
	}
	for (int t = 0; t < NS_COUNT; t++)
		if (is_new(p, t))
			return fail("ns", EINVAL, "%s: an exec plan only joins namespaces", ns_name(t));
	const char *bad = p->rootfs ? "rootfs" : p->has_rootprop ? "rootprop" : p->nmounts ? "mount"
		: p->nmountprops ? "mountprop" : p->ndevices ? "device" : p->nsymlinks ? "symlink"
		: !p->pivot ? "pivot" : p->readonlyroot ? "readonlyroot" : p->masks.n ? "mask"
		: p->readonlys.n ? "readonly" : p->hostname ? "hostname" : p->domainname ? "domainname"
		: p->nsysctls ? "sysctl" : p->execfifo ? "execfifo" : p->devfilter_dir ? "devfilter" : NULL;
	if (bad)
		return fail(bad, EINVAL, "not a step of an exec plan");
	return 0;
}

/* The host-side fds both modes need, opened before any cgroup join or setns. */
static int console_fd = -1;
static int proc_fd = -1;

static int prepare_host(const struct plan *p)
{
	proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (proc_fd < 0)
		return fail("launcher", errno, "/proc");
	if (p->pidfile && pidfile_prepare(p->pidfile) < 0)
		return -1;
	if (p->execfifo && fifo_prepare(p->execfifo) < 0)
		return -1;
	if (p->console && (console_fd = console_connect(p->console)) < 0)
		return -1;
	return 0;
}

static void reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

static _Noreturn void kill_report_exit(pid_t pid)
{
	kill(pid, SIGKILL);
	reap(pid, NULL);
	report_and_exit();
}

/* The reason a child ended without a message. */
static void why_died(pid_t pid, const char *step)
{
	int st = 0;
	reap(pid, &st);
	if (WIFSIGNALED(st))
		fail(step, EPIPE, "child %d killed by signal %d before it reported", (int)pid, WTERMSIG(st));
	else
		fail(step, EPIPE, "child %d exited with status %d before it reported", (int)pid, WEXITSTATUS(st));
}

/* ---- create ---- */

static _Noreturn void init_child(const struct plan *p, int sync)
{
	char kind, text[ERR_MAX];
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (sync_recv(sync, &kind, text, sizeof text) != 1 || kind != 'g')
		_exit(1); /* the parent is gone or gave up: it reports */
	if (is_new(p, NS_USER)) {
		/* Root of the new user namespace when 0 is mapped; the `user` step decides later. */
		if (setresgid(0, 0, 0) < 0 && errno != EINVAL)
			fail("user", errno, "setresgid 0 in the new user namespace");
		else if (setresuid(0, 0, 0) < 0 && errno != EINVAL)
			fail("user", errno, "setresuid 0 in the new user namespace");
		if (err_line[0])
			goto failed;
		/* A change of credentials clears the parent-death signal: set it again for the set-up. (The
		 * `user` step's change near the end needs none: a parent gone by then fails the "ready" send.) */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	}
	if (is_new(p, NS_NET) && ns_loopback_up() < 0)
		goto failed;
	if (fs_setup(p) < 0 || uts_sysctl_setup(p) < 0 || fs_protect(p) < 0)
		goto failed;
	if (console_fd >= 0 && console_setup(console_fd) < 0)
		goto failed;
	if (proc_setup(p) < 0)
		goto failed;
	/* Ready: from here on the init outlives the launcher (re-parented to the monitor). */
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	if (sync_send(sync, 'r', NULL) < 0)
		_exit(1);
	close(sync);
	if (p->execfifo && fifo_wait() < 0) {
		err_report(err_line);
		_exit(127);
	}
	proc_exec(p);
	err_report(err_line);
	_exit(127);
failed:
	sync_send(sync, 'e', err_line);
	_exit(1);
}

static int do_create(const struct plan *p)
{
	/* A new cgroup namespace is rooted where the clone starts, before CLONE_INTO_CGROUP would move the
	 * child: with one, the launcher joins the v2 cgroup itself and the child inherits it. */
	unsigned long flags = ns_new_flags(p);
	int cgfd = -1;
	if (prepare_host(p) < 0 || devfilter_attach(p) < 0 || cgroups_join(p, is_new(p, NS_CGROUP) ? NULL : &cgfd) < 0)
		report_and_exit();
	int nsfd[NS_COUNT];
	joined_pid_ns = p->ns_given[NS_PID] && p->ns_path[NS_PID];
	if (ns_open(p, nsfd) < 0 || ns_join(p, nsfd) < 0)
		report_and_exit();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		fail("launcher", errno, "socketpair");
		report_and_exit();
	}
	pid_t pid = clone_into(flags, cgfd);
	if (pid < 0)
		report_and_exit();
	if (cgfd >= 0)
		close(cgfd);
	if (pid == 0) {
		close(sv[0]);
		init_child(p, sv[1]);
	}
	close(sv[1]);
	if (console_fd >= 0)
		close(console_fd);
	if (ns_write_maps(p, proc_fd, pid) < 0)
		kill_report_exit(pid);
	if (p->has_oomscore && ns_oomscore(proc_fd, pid, p->oomscore) < 0)
		kill_report_exit(pid);
	if (sync_send(sv[0], 'g', NULL) < 0) {
		why_died(pid, "launcher");
		report_and_exit();
	}
	char kind, text[ERR_MAX];
	int r = sync_recv(sv[0], &kind, text, sizeof text);
	if (r < 0) {
		fail("launcher", errno, "read from the init");
		kill_report_exit(pid);
	}
	if (r == 0) {
		why_died(pid, "init");
		report_and_exit();
	}
	if (kind != 'r') {
		snprintf(err_line, sizeof err_line, "%s", text);
		kill_report_exit(pid);
	}
	if (pidfile_write(pid) < 0)
		kill_report_exit(pid);
	return 0;
}

/* ---- exec ---- */

static int do_exec(const struct plan *p)
{
	int cgfd; /* >= 0: the child is cloned into it */
	if (prepare_host(p) < 0 || cgroups_join(p, &cgfd) < 0)
		report_and_exit();
	if (p->has_oomscore && ns_oomscore(proc_fd, 0, p->oomscore) < 0)
		report_and_exit();
	int nsfd[NS_COUNT];
	joined_pid_ns = p->ns_given[NS_PID] && p->ns_path[NS_PID];
	if (ns_open(p, nsfd) < 0 || ns_join(p, nsfd) < 0)
		report_and_exit();
	/* EOF on this pipe (its write end is CLOEXEC) means the execve succeeded; a message is an error. */
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0) {
		fail("launcher", errno, "pipe");
		report_and_exit();
	}
	/* the joined pid namespace applies to children only */
	pid_t pid = clone_into(0, cgfd);
	if (pid < 0)
		report_and_exit();
	if (cgfd >= 0)
		close(cgfd);
	if (pid == 0) {
		close(pp[0]);
		int code = 1;
		if ((console_fd < 0 || console_setup(console_fd) == 0) && proc_setup(p) == 0) {
			proc_exec(p);
			code = 127;
		}
		ssize_t w = write(pp[1], err_line, strnlen(err_line, sizeof err_line));
		(void)w;
		_exit(code);
	}
	close(pp[1]);
	if (console_fd >= 0)
		close(console_fd);
	char msg[ERR_MAX];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(pp[0], msg + len, sizeof msg - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail("launcher", errno, "reading the exec child's report");
			kill_report_exit(pid);
		}
		if (n == 0 || (len += (size_t)n) == sizeof msg - 1)
			break;
	}
	msg[len] = '\0';
	if (len > 0) {
		snprintf(err_line, sizeof err_line, "%s", msg);
		kill_report_exit(pid);
	}
	if (pidfile_write(pid) < 0)
		kill_report_exit(pid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "create") && strcmp(argv[1], "exec") && strcmp(argv[1], "serve"))) {
		fprintf(stderr, "usage: tsrt-launch create|exec|serve <plan>\n");
		return 1;
	}
	int exec = strcmp(argv[1], "exec") == 0;
	int served = strcmp(argv[1], "serve") == 0;
	/* Not dumpable until execve: until then the init and the exec child hold host fds (/proc, the pid
	 * file's and the exec FIFO's directories), which the container's own root processes could otherwise
	 * reach through /proc/<pid>/fd (CVE-2016-9962's class). execve makes the program dumpable again. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		fprintf(stderr, "tsrt-launch: launcher: PR_SET_DUMPABLE: %s\n", strerror(errno));
		return 1;
	}
	/* Nothing inherited reaches the container: every fd above stdio closes at execve. */
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	if (plan_load(argv[2], &plan) < 0) {
		char line[ERR_MAX];
		memcpy(line, err_line, sizeof line);
		if (err_open(plan.errfile) < 0)
			err_report(err_line); /* the errfile's own error first, then the plan's */
		memcpy(err_line, line, sizeof line);
		report_and_exit();
	}
	if (served) {
		/* _exit: the server has joined a pid namespace (see finish) */
		if (err_open(plan.errfile) < 0 || serve(&plan) < 0) {
			err_report(err_line);
			_exit(1);
		}
		_exit(0);
	}
	if (err_open(plan.errfile) < 0 || validate(&plan, exec) < 0)
		report_and_exit();
	finish(exec ? do_exec(&plan) : do_create(&plan));
}
