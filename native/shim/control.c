#include "control.h"
#include "buf.h"
#include "console.h"
#include "copy.h"
#include "frame.h"
#include "log.h"
#include "logger.h"
#include "mountopts.h"
#include "oom.h"
#include "spawn.h"
#include "handoff.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_AFTER_MS 2000
#define SPAWN_BACKOFF_MAX_MS 30000
/* Events kept, queued or sent and not yet acknowledged; past this the oldest unacknowledged goes. */
#define EVENTS_KEPT_MAX 16384

/* Outgoing frames. An event (evno > 0) is kept until the daemon acknowledges it: once written it
 * moves to the unacknowledged list, and a disconnect puts that list back at the head of the queue,
 * to be sent again whole after the next hello. Replies are dropped at a disconnect. */
struct msg {
	struct msg *next;
	uint64_t evno;
	size_t len, sent;
	uint8_t data[];
};

static const struct monitor_cfg *cfg;
static int ctl_fd = -1;
static uint64_t conn_no; /* counts connections */
static struct buf ctl_in;
static struct msg *qhead, *qtail;
static struct msg *uhead, *utail; /* sent events not yet acknowledged, oldest first */
static uint64_t last_evno;        /* numbers the events, from 1 */
static size_t events_kept;        /* events in both lists */
static int64_t fail_since, next_spawn;
static int backoff_ms = SPAWN_AFTER_MS;

static void disconnect(const char *why);

static void drop_oldest_event(void)
{
	struct msg *m = uhead;
	if (m) {
		uhead = m->next;
		if (!uhead)
			utail = NULL;
	} else {
		/* none sent yet: the oldest queued event (replies and the hello stay) */
		struct msg **pp = &qhead, *prev = NULL;
		while (*pp && !(*pp)->evno) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		m = *pp;
		if (!m || m->sent > 0)
			return; /* being written: it stays */
		*pp = m->next;
		if (qtail == m)
			qtail = prev;
	}
	logm(LV_ERROR, "dropping event %llu: %d events are waiting for the daemon's acknowledgement",
	     (unsigned long long)m->evno, EVENTS_KEPT_MAX);
	free(m);
	events_kept--;
}

/* Appends m to the list head/tail. */
static void append(struct msg **head, struct msg **tail, struct msg *m)
{
	m->next = NULL;
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

static void queue(struct buf *frame, uint64_t evno, int at_head)
{
	struct msg *m = xrealloc(NULL, sizeof *m + frame->len);
	m->evno = evno;
	m->len = frame->len;
	m->sent = 0;
	memcpy(m->data, buf_head(frame), frame->len);
	if (at_head) {
		m->next = qhead;
		qhead = m;
		if (!qtail)
			qtail = m;
	} else {
		append(&qhead, &qtail, m);
	}
}

static void flush(void)
{
	while (qhead && ctl_fd >= 0) {
		struct msg *m = qhead;
		ssize_t w = send(ctl_fd, m->data + m->sent, m->len - m->sent, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			disconnect(strerror(errno));
			return;
		}
		m->sent += (size_t)w;
		if (m->sent < m->len)
			continue;
		qhead = m->next;
		if (!qhead)
			qtail = NULL;
		if (!m->evno) {
			free(m);
			continue;
		}
		append(&uhead, &utail, m);
	}
}

/* ack <event number>: the daemon has recorded what the event reported; it is not sent again. */
static void acknowledge(const char *num)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(num, &end, 10);
	if (errno || end == num || *end || n == 0) {
		logm(LV_WARN, "ignoring a malformed ack %.32s", num);
		return;
	}
	struct msg **lists[2] = { &uhead, &qhead };
	for (int l = 0; l < 2; l++) {
		struct msg *prev = NULL;
		for (struct msg **pp = lists[l]; *pp; prev = *pp, pp = &(*pp)->next) {
			struct msg *m = *pp;
			if (m->evno != n)
				continue;
			if (m->sent > 0 && m->sent < m->len)
				return; /* being written again: it goes on, and is acknowledged again */
			*pp = m->next;
			if (l == 0 && utail == m)
				utail = prev;
			if (l == 1 && qtail == m)
				qtail = prev;
			free(m);
			events_kept--;
			return;
		}
	}
}

size_t control_events_unacked(void)
{
	return events_kept;
}

static void send_frame(struct buf *b, size_t start, uint64_t evno)
{
	if (frame_end(b, start) < 0) {
		logm(LV_ERROR, "dropping an oversized control frame");
		return;
	}
	if (evno) {
		if (events_kept >= EVENTS_KEPT_MAX)
			drop_oldest_event();
		events_kept++;
	}
	queue(b, evno, 0);
	buf_free(b);
	flush();
}

static void reply_ok(const char *seq, const char *value)
{
	struct buf b = { 0 };
	send_frame(&b, frame_begin_ok(&b, seq, value), 0);
}

static void reply_err(const char *seq, int err, const char *message)
{
	struct buf b = { 0 };
	send_frame(&b, frame_begin_error(&b, seq, err, message), 0);
}

uint64_t control_conn(void)
{
	return ctl_fd >= 0 ? conn_no : 0;
}

void control_reply_ok(uint64_t conn, const char *seq, const char *value)
{
	if (conn && conn == control_conn())
		reply_ok(seq, value);
}

void control_reply_ok2(uint64_t conn, const char *seq, const char *value, const char *more)
{
	if (!conn || conn != control_conn())
		return;
	struct buf b = { 0 };
	size_t s = frame_begin_ok(&b, seq, value);
	frame_add(&b, more);
	send_frame(&b, s, 0);
}

void control_reply_err(uint64_t conn, const char *seq, int err, const char *message)
{
	if (conn && conn == control_conn())
		reply_err(seq, err, message);
}

void control_reaped(pid_t pid, int status, const struct timespec *ts)
{
	struct buf b = { 0 };
	size_t s = frame_begin(&b);
	frame_add(&b, "reaped");
	frame_add_u64(&b, ++last_evno);
	frame_add_i64(&b, pid);
	frame_add_i64(&b, status);
	frame_add_i64(&b, ts->tv_sec);
	frame_add_i64(&b, ts->tv_nsec);
	send_frame(&b, s, last_evno);
	logm(LV_DEBUG, "reaped pid %d status %d (event %llu)", (int)pid, status, (unsigned long long)last_evno);
}

void control_oom(const char *key)
{
	struct buf b = { 0 };
	size_t s = frame_begin(&b);
	frame_add(&b, "oom");
	frame_add_u64(&b, ++last_evno);
	frame_add(&b, key);
	send_frame(&b, s, last_evno);
}

/* Strict non-negative decimal. */
static int parse_count(const char *s, size_t *out)
{
	if (!*s || strlen(s) > 9)
		return -1;
	size_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (size_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* spawn <seq> <io key> <cwd> <stdin> <stdout> <stderr> <argc> argv... <envc> env... */
static void do_spawn(char **f, size_t n)
{
	const char *seq = f[1];
	size_t argc, envc;
	if (n < 8 || parse_count(f[7], &argc) < 0 || argc < 1 || n < 9 + argc ||
	    parse_count(f[8 + argc], &envc) < 0 || n != 9 + argc + envc) {
		reply_err(seq, EINVAL, "malformed spawn request");
		return;
	}
	char **argv = xrealloc(NULL, (argc + 1) * sizeof *argv);
	memcpy(argv, f + 8, argc * sizeof *argv);
	argv[argc] = NULL;
	char **envp = NULL;
	if (envc > 0) {
		envp = xrealloc(NULL, (envc + 1) * sizeof *envp);
		memcpy(envp, f + 9 + argc, envc * sizeof *envp);
		envp[envc] = NULL;
	}
	struct spawn_req r = {
		.iokey = f[2], .cwd = f[3], .stdio = { f[4], f[5], f[6] }, .argv = argv, .envp = envp,
	};
	pid_t pid;
	char err[512];
	int e = spawn_run(&r, &pid, err, sizeof err);
	free(argv);
	free(envp);
	if (e) {
		logm(LV_WARN, "spawn %s failed: %s", f[8], err);
		reply_err(seq, e, err);
		return;
	}
	char num[24];
	snprintf(num, sizeof num, "%d", (int)pid);
	logm(LV_DEBUG, "spawned %s as pid %d", f[8], (int)pid);
	reply_ok(seq, num);
}

/* handoff <seq> <io key> <channel key> <stdin> <stdout> <stderr> <message>: the reply follows the server's answer */
static void do_handoff(char **f, size_t n)
{
	if (n != 8) {
		reply_err(f[1], EINVAL, "malformed handoff request");
		return;
	}
	const char *stdio[3] = { f[4], f[5], f[6] };
	char err[512];
	int e = handoff_send(control_conn(), f[1], f[2], f[3], stdio, f[7], strlen(f[7]), err, sizeof err);
	if (e) {
		logm(LV_DEBUG, "handoff to %s failed: %s", f[3], err);
		reply_err(f[1], e, err);
	}
}

static void do_mount(char **f, size_t n)
{
	if (n != 6) {
		reply_err(f[1], EINVAL, "malformed mount request");
		return;
	}
	const char *step;
	int rc = mount_apply(f[2], f[3], f[4], f[5], &step);
	if (rc < 0) {
		char err[512];
		snprintf(err, sizeof err, "%s %s on %s (%s): %s", step, f[3], f[4], f[2], strerror(-rc));
		reply_err(f[1], -rc, err);
		return;
	}
	reply_ok(f[1], NULL);
}

static void do_umount(char **f, size_t n)
{
	if (n != 3) {
		reply_err(f[1], EINVAL, "malformed umount request");
		return;
	}
	int rc = umount_all(f[2]);
	if (rc < 0) {
		char err[512];
		snprintf(err, sizeof err, "umount %s: %s", f[2], strerror(-rc));
		reply_err(f[1], -rc, err);
		return;
	}
	reply_ok(f[1], NULL);
}

/* console <seq> <io key> <stdin> <stdout> */
static void do_console(char **f, size_t n)
{
	if (n != 5) {
		reply_err(f[1], EINVAL, "malformed console request");
		return;
	}
	char path[108], err[512];
	int e = console_open(f[2], f[3], f[4], path, sizeof path, err, sizeof err);
	if (e) {
		logm(LV_WARN, "console %s failed: %s", f[2], err);
		reply_err(f[1], e, err);
		return;
	}
	logm(LV_DEBUG, "console %s listening on %s", f[2], path);
	reply_ok(f[1], path);
}

/* consolewait <seq> <io key> <timeout ms> */
static void do_consolewait(char **f, size_t n)
{
	size_t ms;
	if (n != 4 || parse_count(f[3], &ms) < 0) {
		reply_err(f[1], EINVAL, "malformed consolewait request");
		return;
	}
	console_wait(control_conn(), f[1], f[2], (int64_t)ms);
}

/* resize <seq> <io key> <width> <height> */
static void do_resize(char **f, size_t n)
{
	size_t w, h;
	if (n != 5 || parse_count(f[3], &w) < 0 || parse_count(f[4], &h) < 0 || w > 65535 || h > 65535) {
		reply_err(f[1], EINVAL, "malformed resize request");
		return;
	}
	char err[512];
	int e = console_resize(f[2], (unsigned)w, (unsigned)h, err, sizeof err);
	if (e)
		reply_err(f[1], e, err);
	else
		reply_ok(f[1], NULL);
}

/* logger <seq> <io key> <container id> <namespace> <argc> argv... */
static void do_logger(char **f, size_t n)
{
	size_t argc;
	if (n < 7 || parse_count(f[5], &argc) < 0 || argc < 1 || n != 6 + argc) {
		reply_err(f[1], EINVAL, "malformed logger request");
		return;
	}
	char **argv = xrealloc(NULL, (argc + 1) * sizeof *argv);
	memcpy(argv, f + 6, argc * sizeof *argv);
	argv[argc] = NULL;
	char err[512];
	int e = logger_start(control_conn(), f[1], f[2], f[3], f[4], argv, err, sizeof err);
	free(argv);
	if (e) {
		logm(LV_WARN, "logger %s failed: %s", f[2], err);
		reply_err(f[1], e, err);
	}
}

/* oomwatch <seq> <key> <v1|v2> <cgroup dir> */
static void do_oomwatch(char **f, size_t n)
{
	if (n != 5) {
		reply_err(f[1], EINVAL, "malformed oomwatch request");
		return;
	}
	char err[512];
	int e = oom_watch(f[2], f[3], f[4], err, sizeof err);
	if (e) {
		logm(LV_WARN, "oomwatch %s failed: %s", f[2], err);
		reply_err(f[1], e, err);
		return;
	}
	reply_ok(f[1], NULL);
}

/* signal <seq> <pid> <signo>: signals pid only while it is a child of the monitor that has not been
 * reaped. The monitor is the only process that reaps its children and it is single-threaded, so between
 * that check and the signal the pid cannot be freed and given to another process: a process that has
 * exited (reaped, or a zombie) is ESRCH, never a stranger that got its pid. The signal itself goes
 * through a pidfd where the kernel has them. */
static void do_signal(char **f, size_t n)
{
	size_t pid, sig;
	if (n != 4 || parse_count(f[2], &pid) < 0 || parse_count(f[3], &sig) < 0 || pid < 1 || pid > INT32_MAX ||
	    sig > 64) {
		reply_err(f[1], EINVAL, "malformed signal request");
		return;
	}
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid != 0) {
		char err[96];
		snprintf(err, sizeof err, "process %zu has exited (or is not a child of this shim)", pid);
		reply_err(f[1], ESRCH, err);
		return;
	}
	int rc = -1, fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd >= 0) {
		rc = (int)syscall(SYS_pidfd_send_signal, fd, (int)sig, NULL, 0);
		int e = errno;
		close(fd);
		errno = e;
	} else if (errno == ENOSYS) {
		rc = kill((pid_t)pid, (int)sig);
	}
	if (rc < 0) {
		char err[96];
		snprintf(err, sizeof err, "signal %zu to process %zu: %s", sig, pid, strerror(errno));
		reply_err(f[1], errno, err);
		return;
	}
	reply_ok(f[1], NULL);
}

/* copy <seq> <io key> <in|out> <endpoint> <target> */
static void do_copy(char **f, size_t n)
{
	if (n != 6) {
		reply_err(f[1], EINVAL, "malformed copy request");
		return;
	}
	char err[512];
	int e = copy_start(f[2], f[3], f[4], f[5], err, sizeof err);
	if (e) {
		logm(LV_WARN, "copy %s %s failed: %s", f[2], f[3], err);
		reply_err(f[1], e, err);
		return;
	}
	reply_ok(f[1], NULL);
}

/* iostats <seq> -> ok <seq> <stdin bytes> <stdout bytes> (consoles and copies) */
static void do_iostats(const char *seq)
{
	uint64_t in, out, cin, cout;
	console_io_counts(&in, &out);
	copy_io_counts(&cin, &cout);
	in += cin;
	out += cout;
	struct buf b = { 0 };
	size_t s = frame_begin_ok(&b, seq, NULL);
	frame_add_u64(&b, in);
	frame_add_u64(&b, out);
	send_frame(&b, s, 0);
}

static void dispatch(char **f, size_t n)
{
	if (n < 2) {
		logm(LV_WARN, "ignoring a control frame without a sequence number");
		return;
	}
	const char *req = f[0];
	if (strcmp(req, "ack") == 0 && n == 2) {
		acknowledge(f[1]);
	} else if (strcmp(req, "spawn") == 0) {
		do_spawn(f, n);
	} else if (strcmp(req, "handoff") == 0) {
		do_handoff(f, n);
	} else if (strcmp(req, "closeio") == 0 && n == 3) {
		spawn_closeio(f[2]);
		console_closeio(f[2]);
		copy_closeio(f[2]);
		reply_ok(f[1], NULL);
	} else if (strcmp(req, "release") == 0 && n == 3) {
		spawn_release(f[2]);
		handoff_release(f[2]);
		console_release(f[2]);
		logger_release(f[2]);
		oom_release(f[2]);
		copy_release(f[2]);
		reply_ok(f[1], NULL);
	} else if (strcmp(req, "console") == 0) {
		do_console(f, n);
	} else if (strcmp(req, "consolewait") == 0) {
		do_consolewait(f, n);
	} else if (strcmp(req, "resize") == 0) {
		do_resize(f, n);
	} else if (strcmp(req, "logger") == 0) {
		do_logger(f, n);
	} else if (strcmp(req, "oomwatch") == 0) {
		do_oomwatch(f, n);
	} else if (strcmp(req, "copy") == 0) {
		do_copy(f, n);
	} else if (strcmp(req, "signal") == 0) {
		do_signal(f, n);
	} else if (strcmp(req, "iostats") == 0 && n == 2) {
		do_iostats(f[1]);
	} else if (strcmp(req, "mount") == 0) {
		do_mount(f, n);
	} else if (strcmp(req, "umount") == 0) {
		do_umount(f, n);
	} else if (strcmp(req, "shutdown") == 0 && n == 2) {
		reply_ok(f[1], NULL);
		logm(LV_INFO, "shutdown requested by the daemon");
		free(f);
		control_flush_wait(1000);
		monitor_exit(0);
	} else {
		char err[128];
		snprintf(err, sizeof err, "unknown or malformed request %.64s", req);
		reply_err(f[1], EINVAL, err);
	}
}

static void read_frames(void)
{
	for (;;) {
		char **f;
		size_t n, len;
		int rc = frame_parse(&ctl_in, &f, &n, &len);
		if (rc == 0)
			return;
		if (rc < 0) {
			disconnect("malformed frame");
			return;
		}
		dispatch(f, n);
		free(f);
		if (ctl_fd < 0)
			return;
		buf_drop(&ctl_in, len);
	}
}

static void disconnect(const char *why)
{
	if (ctl_fd < 0)
		return;
	logm(LV_WARN, "lost the daemon control connection: %s", why);
	close(ctl_fd);
	ctl_fd = -1;
	buf_free(&ctl_in);
	/* drop replies, keep events: the unacknowledged ones (sent earlier) first, then those still queued,
	 * all to be re-sent whole after the next hello */
	struct msg **pp = &qhead;
	qtail = NULL;
	while (*pp) {
		struct msg *m = *pp;
		if (!m->evno) {
			*pp = m->next;
			free(m);
			continue;
		}
		m->sent = 0;
		qtail = m;
		pp = &m->next;
	}
	if (uhead) {
		for (struct msg *m = uhead; m; m = m->next)
			m->sent = 0;
		utail->next = qhead;
		if (!qtail)
			qtail = utail;
		qhead = uhead;
		uhead = utail = NULL;
	}
	fail_since = 0;
}

void control_init(const struct monitor_cfg *c)
{
	cfg = c;
}

int control_fd(void)
{
	return ctl_fd;
}

short control_events(void)
{
	return (short)(POLLIN | (qhead ? POLLOUT : 0));
}

void control_handle(short revents)
{
	if (ctl_fd < 0)
		return;
	if (revents & POLLOUT)
		flush();
	if (ctl_fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t r = buf_fill(&ctl_in, ctl_fd, 65536);
		if (r == 0) {
			disconnect("closed by the daemon");
		} else if (r < 0) {
			if (errno != EAGAIN)
				disconnect(strerror(errno));
		} else {
			read_frames();
		}
	}
}

int control_wants_tick(void)
{
	return ctl_fd < 0;
}

void control_tick(int64_t now)
{
	if (ctl_fd >= 0)
		return;
	int fd = daemon_connect(&cfg->daemon);
	if (fd >= 0) {
		ctl_fd = fd;
		conn_no++;
		fail_since = 0;
		backoff_ms = SPAWN_AFTER_MS;
		struct buf b = { 0 };
		size_t s = frame_begin(&b);
		frame_add(&b, "control");
		frame_add(&b, cfg->monitor_id);
		frame_add_i64(&b, getpid());
		frame_add(&b, cfg->bundle);
		frame_add(&b, cfg->namespace);
		frame_add(&b, cfg->id);
		frame_add(&b, cfg->shim_address);
		if (frame_end(&b, s) == 0)
			queue(&b, 0, 1);
		buf_free(&b);
		logm(LV_INFO, "connected to the daemon at %s", cfg->daemon.sock);
		flush();
		return;
	}
	if (fd == -EAGAIN)
		return; /* listening but busy */
	if (!fail_since)
		fail_since = now;
	if (now - fail_since < SPAWN_AFTER_MS || now < next_spawn)
		return;
	int rc = daemon_spawn(&cfg->daemon);
	if (rc < 0)
		logm(LV_ERROR, "starting the daemon failed: %s", strerror(-rc));
	else
		logm(LV_INFO, "daemon unreachable (%s), started %s %s", strerror(-fd), cfg->daemon.node,
		     cfg->daemon.bundle);
	next_spawn = now + backoff_ms;
	backoff_ms = backoff_ms * 2 > SPAWN_BACKOFF_MAX_MS ? SPAWN_BACKOFF_MAX_MS : backoff_ms * 2;
}

void control_flush_wait(int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	while (qhead && ctl_fd >= 0) {
		flush();
		if (!qhead || ctl_fd < 0)
			return;
		int64_t left = end - mono_ms();
		if (left <= 0)
			return;
		struct pollfd p = { .fd = ctl_fd, .events = POLLOUT };
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return;
	}
}

void control_close(void)
{
	if (ctl_fd >= 0)
		close(ctl_fd);
	ctl_fd = -1;
	buf_free(&ctl_in);
	struct msg **lists[2] = { &qhead, &uhead };
	for (int l = 0; l < 2; l++) {
		while (*lists[l]) {
			struct msg *m = *lists[l];
			*lists[l] = m->next;
			free(m);
		}
	}
	qtail = utail = NULL;
	events_kept = 0;
}
