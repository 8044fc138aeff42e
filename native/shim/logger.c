/* binary:// logging processes (what runc-v2 does for `ctr run --log-uri binary://...`).
 *
 * The monitor keeps the write ends of the logger's stdout and stderr pipes for `spawn` to hand to
 * processes, and watches the ready pipe without blocking: the `logger` reply is sent once the
 * logger writes a byte to fd 5 or closes it (an exit closes it too). An entry lives on after
 * `release` until its logger has been reaped, so that the SIGKILL deadline can be kept. */
#include "logger.h"
#include "control.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct logger {
	struct logger *next;
	char *key;
	pid_t pid;
	int out_w, err_w;   /* write ends of the stdout / stderr pipes */
	int ready;          /* read end of the ready pipe; -1 once answered */
	uint64_t conn;      /* the pending reply */
	char *seq;
	int reaped, released;
	int64_t kill_at;    /* SIGKILL due (0: none) */
};

static struct logger *loggers;
static size_t nloggers;

static struct logger *find(const char *key)
{
	for (struct logger *l = loggers; l; l = l->next)
		if (!l->released && strcmp(l->key, key) == 0)
			return l;
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Reply to the pending `logger` request (ok when err is 0). */
static void answer(struct logger *l, int err, const char *msg)
{
	if (l->ready < 0)
		return;
	close_fd(&l->ready);
	if (err) {
		control_reply_err(l->conn, l->seq, err, msg);
	} else {
		char num[24];
		snprintf(num, sizeof num, "%d", (int)l->pid);
		control_reply_ok(l->conn, l->seq, num);
		logm(LV_DEBUG, "logger %s (pid %d) is ready", l->key, (int)l->pid);
	}
	free(l->seq);
	l->seq = NULL;
}

/* A byte or EOF on the ready pipe means ready. */
static void check_ready(struct logger *l)
{
	if (l->ready < 0)
		return;
	char b;
	ssize_t n;
	do
		n = read(l->ready, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	answer(l, 0, NULL);
}

static void unlink_entry(struct logger *l)
{
	for (struct logger **pp = &loggers; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			nloggers--;
			break;
		}
	}
	close_fd(&l->out_w);
	close_fd(&l->err_w);
	close_fd(&l->ready);
	free(l->seq);
	free(l->key);
	free(l);
}

struct child_err {
	int err;
};

static void __attribute__((noreturn)) child_fail(int ep)
{
	struct child_err ce = { errno };
	(void)!write(ep, &ce, sizeof ce);
	_exit(127);
}

/* fds: stdout read end, stderr read end, ready write end (-> 3, 4, 5), error pipe. */
static void __attribute__((noreturn)) child(const int fds[4], char *const argv[], char *const envp[])
{
	int hi[4];
	child_reset_signals();
	/* above 5 first, so that placing one on 3..5 cannot overwrite another */
	for (int i = 0; i < 4; i++) {
		hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10);
		if (hi[i] < 0)
			child_fail(fds[3]);
	}
	if (child_devnull_stdio() < 0)
		child_fail(hi[3]);
	for (int i = 0; i < 3; i++)
		if (dup2(hi[i], 3 + i) < 0)
			child_fail(hi[3]);
	close_fds_from(6, hi[3]);
	execve(argv[0], argv, envp);
	child_fail(hi[3]);
}

static char *env_var(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = xrealloc(NULL, n);
	snprintf(s, n, "%s=%s", name, value);
	return s;
}

int logger_start(uint64_t conn, const char *seq, const char *key, const char *id, const char *ns,
		 char *const argv[], char *err, size_t errlen)
{
	if (find(key)) {
		snprintf(err, errlen, "io key %s already has a logger", key);
		return EEXIST;
	}
	if (argv[0][0] != '/') {
		snprintf(err, errlen, "logger path %s is not absolute", argv[0]);
		return EINVAL;
	}
	int p[4][2]; /* stdout, stderr, ready, exec error */
	int made = 0, e = 0;
	for (; made < 4; made++) {
		if (pipe2(p[made], O_CLOEXEC) < 0) {
			e = errno;
			snprintf(err, errlen, "pipe: %s", strerror(e));
			goto fail;
		}
	}
	char *envp[3] = { env_var("CONTAINER_ID", id), env_var("CONTAINER_NAMESPACE", ns), NULL };
	pid_t pid = fork();
	if (pid == 0) {
		int fds[4] = { p[0][0], p[1][0], p[2][1], p[3][1] };
		child(fds, argv, envp);
	}
	e = errno;
	free(envp[0]);
	free(envp[1]);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(e));
		goto fail;
	}
	close_fd(&p[0][0]);
	close_fd(&p[1][0]);
	close_fd(&p[2][1]);
	close_fd(&p[3][1]);
	/* like spawn: wait for the exec (or its failure) */
	struct child_err ce;
	ssize_t n;
	do
		n = read(p[3][0], &ce, sizeof ce);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof ce) {
		e = ce.err ? ce.err : EIO;
		snprintf(err, errlen, "exec %s: %s", argv[0], strerror(e));
		goto fail;
	}
	close_fd(&p[3][0]);
	if (set_nonblock(p[2][0], 1) < 0) {
		e = errno;
		snprintf(err, errlen, "ready pipe: %s", strerror(e));
		kill(pid, SIGKILL); /* reaped as usual */
		goto fail;
	}
	struct logger *l = xrealloc(NULL, sizeof *l);
	memset(l, 0, sizeof *l);
	l->key = xstrdup(key);
	l->pid = pid;
	l->out_w = p[0][1];
	l->err_w = p[1][1];
	l->ready = p[2][0];
	l->conn = conn;
	l->seq = xstrdup(seq);
	l->next = loggers;
	loggers = l;
	nloggers++;
	logm(LV_DEBUG, "started logger %s for io key %s as pid %d", argv[0], key, (int)pid);
	return 0;
fail:
	for (int i = 0; i < made; i++) {
		close_fd(&p[i][0]);
		close_fd(&p[i][1]);
	}
	return e;
}

int logger_fd(const char *key, int which)
{
	struct logger *l = find(key);
	int fd = !l ? -1 : which == 1 ? l->out_w : l->err_w;
	if (fd < 0)
		errno = ENOENT;
	return fd;
}

void logger_release(const char *key)
{
	struct logger *l = find(key);
	if (!l)
		return;
	answer(l, ECANCELED, "io key released before the logger was ready");
	close_fd(&l->out_w);
	close_fd(&l->err_w);
	l->released = 1;
	if (l->reaped) {
		unlink_entry(l);
		return;
	}
	if (kill(l->pid, SIGTERM) < 0)
		logm(LV_WARN, "logger pid %d: SIGTERM: %s", (int)l->pid, strerror(errno));
	l->kill_at = mono_ms() + LOGGER_KILL_MS;
}

void logger_release_all(void)
{
	while (loggers)
		unlink_entry(loggers);
}

void logger_reaped(pid_t pid)
{
	for (struct logger *l = loggers; l; l = l->next) {
		if (l->pid != pid || l->reaped)
			continue;
		l->reaped = 1;
		check_ready(l); /* its exit closed fd 5: the reply goes before the reaped event */
		if (l->released)
			unlink_entry(l);
		return;
	}
}

size_t logger_slots(void)
{
	return nloggers;
}

void logger_fill(struct pollfd *p)
{
	for (struct logger *l = loggers; l; l = l->next, p++) {
		p->fd = l->ready;
		p->events = POLLIN;
	}
}

void logger_dispatch(const struct pollfd *p)
{
	for (struct logger *l = loggers; l; l = l->next, p++)
		if (p->revents && p->fd >= 0 && p->fd == l->ready)
			check_ready(l);
}

int64_t logger_deadline(void)
{
	int64_t d = -1;
	for (struct logger *l = loggers; l; l = l->next)
		if (l->kill_at && (d < 0 || l->kill_at < d))
			d = l->kill_at;
	return d;
}

void logger_timers(int64_t now)
{
	for (struct logger *l = loggers; l; l = l->next) {
		if (!l->kill_at || l->kill_at > now)
			continue;
		l->kill_at = 0;
		logm(LV_WARN, "logger pid %d still running %d s after SIGTERM, sending SIGKILL", (int)l->pid,
		     LOGGER_KILL_MS / 1000);
		if (kill(l->pid, SIGKILL) < 0)
			logm(LV_WARN, "logger pid %d: SIGKILL: %s", (int)l->pid, strerror(errno));
	}
}
