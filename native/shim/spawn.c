#include "spawn.h"
#include "handoff.h"
#include "logger.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct keeper {
	struct keeper *next;
	char *key;
	int fd;
	int stdin_writer;
};

static struct keeper *keepers;

static void keeper_add(const char *key, int fd, int stdin_writer)
{
	struct keeper *k = xrealloc(NULL, sizeof *k);
	k->key = xstrdup(key);
	k->fd = fd;
	k->stdin_writer = stdin_writer;
	k->next = keepers;
	keepers = k;
}

/* Close and forget keepers matching key (all when key is NULL); only stdin writers if only_stdin. */
static void keeper_drop(const char *key, int only_stdin, int fd)
{
	struct keeper **pp = &keepers;
	while (*pp) {
		struct keeper *k = *pp;
		int match = (fd >= 0) ? k->fd == fd
				      : (!key || strcmp(k->key, key) == 0) && (!only_stdin || k->stdin_writer);
		if (!match) {
			pp = &k->next;
			continue;
		}
		*pp = k->next;
		close(k->fd);
		free(k->key);
		free(k);
	}
}

void spawn_closeio(const char *key) { keeper_drop(key, 1, -1); }
void spawn_release(const char *key) { keeper_drop(key, 0, -1); }
void spawn_release_all(void) { keeper_drop(NULL, 0, -1); }

/* Opens the child's end of stdio slot i (0, 1, 2) and any keeper. Returns the fd, or -1 with
 * errno. Keeper fds opened here are appended to added[] (*nadded). */
static int open_stdio(int i, const char *spec, const char *key, int added[], int *nadded)
{
	if (spec[0] == '\0')
		return open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
	if (i == 0 && strcmp(spec, "channel:") == 0)
		return handoff_channel(key);
	if (strncmp(spec, "file:", 5) == 0)
		return open_log_file(spec + 5, 0);
	if (i > 0 && (strcmp(spec, "logger:1") == 0 || strcmp(spec, "logger:2") == 0)) {
		int fd = logger_fd(key, spec[7] - '0');
		return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
	}
	if (strncmp(spec, "fifo:", 5) != 0) {
		errno = EINVAL;
		return -1;
	}
	int fd, keep;
	if (fifo_open_ends(spec + 5, i == 0, &fd, &keep) < 0)
		return -1;
	/* The process gets a blocking end, as it would from a plain open. */
	if (set_nonblock(fd, 0) < 0) {
		int e = errno;
		close(fd);
		close(keep);
		errno = e;
		return -1;
	}
	keeper_add(key, keep, i == 0);
	added[(*nadded)++] = keep;
	return fd;
}

struct child_err {
	int step; /* 0 stdio, 1 chdir, 2 exec */
	int err;
};

static void __attribute__((noreturn)) child_fail(int ep, int step)
{
	struct child_err ce = { step, errno };
	(void)!write(ep, &ce, sizeof ce);
	_exit(127);
}

/* Runs in the vfork child, on the monitor's memory until execve: it writes only its own locals (its
 * frame lies below the parent's), file descriptors, signal dispositions and the error pipe; no malloc,
 * no stdio. The monitor installs no signal handler (only SIG_IGN), so none can run here either. */
static void __attribute__((noreturn)) child(const int parent_fds[3], int ep, const struct spawn_req *r)
{
	int fds[3] = { parent_fds[0], parent_fds[1], parent_fds[2] };
	child_reset_signals();
	for (int i = 0; i < 3; i++) {
		if (fds[i] < 3) {
			int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
			if (d < 0)
				child_fail(ep, 0);
			fds[i] = d;
		}
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			child_fail(ep, 0);
	if (r->cwd[0] && chdir(r->cwd) < 0)
		child_fail(ep, 1);
	close_fds_from(3, ep);
	if (r->envp)
		execvpe(r->argv[0], r->argv, r->envp);
	else
		execvp(r->argv[0], r->argv);
	child_fail(ep, 2);
}

/* vfork: the monitor waits for the child's execve anyway (the error pipe), so it may as well be
 * suspended meanwhile, and neither are its page tables copied nor its pages faulted copy-on-write while
 * the child lives (about 2 ms per spawn with fork on the reference machine). A function of its own,
 * never inlined, so that no local of the caller lives across the vfork. */
static __attribute__((noinline)) pid_t start_child(const int fds[3], int ep, const struct spawn_req *r)
{
	pid_t p = vfork();
	if (p == 0)
		child(fds, ep, r);
	return p;
}

int spawn_open_stdio(const char *const spec[3], const char *key, struct spawn_stdio *s, char *err, size_t errlen)
{
	static const char *const names[3] = { "stdin", "stdout", "stderr" };
	s->nadded = 0;
	for (int i = 0; i < 3; i++)
		s->fds[i] = -1;
	for (int i = 0; i < 3; i++) {
		s->fds[i] = open_stdio(i, spec[i], key, s->added, &s->nadded);
		if (s->fds[i] < 0) {
			int e = errno;
			snprintf(err, errlen, "open %s %s: %s", names[i], spec[i], strerror(e));
			spawn_close_stdio(s, 1);
			return e;
		}
	}
	return 0;
}

void spawn_close_stdio(struct spawn_stdio *s, int undo)
{
	for (int i = 0; i < 3; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	if (undo)
		for (int i = 0; i < s->nadded; i++)
			keeper_drop(NULL, 0, s->added[i]);
	s->nadded = 0;
}

int spawn_run(const struct spawn_req *r, pid_t *pid, char *err, size_t errlen)
{
	struct spawn_stdio s;
	int e = 0;
	int channel = strcmp(r->stdio[0], "channel:") == 0;
	*pid = 0;
	if ((e = spawn_open_stdio(r->stdio, r->iokey, &s, err, errlen)) != 0)
		goto fail;
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0) {
		e = errno;
		snprintf(err, errlen, "pipe: %s", strerror(e));
		spawn_close_stdio(&s, 1);
		goto fail;
	}
	pid_t p = start_child(s.fds, ep[1], r);
	if (p < 0) {
		e = errno;
		snprintf(err, errlen, "vfork: %s", strerror(e));
		close(ep[0]);
		close(ep[1]);
		spawn_close_stdio(&s, 1);
		goto fail;
	}
	close(ep[1]);
	spawn_close_stdio(&s, 0);
	*pid = p;
	struct child_err ce;
	ssize_t n;
	do
		n = read(ep[0], &ce, sizeof ce);
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof ce) {
		static const char *const steps[3] = { "stdio", "chdir", "exec" };
		const char *what = ce.step == 1 ? r->cwd : ce.step == 2 ? r->argv[0] : "";
		snprintf(err, errlen, "%s %s: %s", steps[ce.step < 0 || ce.step > 2 ? 0 : ce.step], what,
			 strerror(ce.err));
		e = ce.err ? ce.err : EIO;
		goto fail;
	}
	return 0;
fail:
	/* a server that never ran has no use for its channel, and a second spawn of the key may follow */
	if (channel && e != EEXIST)
		handoff_release(r->iokey);
	return e;
}
