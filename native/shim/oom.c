/* OOM watches on memory cgroups. Both versions report one event per OOM kill: when the cgroup's
 * oom_kill count has grown since the last look (memory.events on v2, memory.oom_control on v1).
 *
 * v1: an eventfd registered for memory.oom_control through cgroup.event_control wakes the watch. The
 * kernel signals it for every failed charge while the cgroup is out of memory (often many times for one
 * kill, and maybe before the kill is counted) and once more when the cgroup is removed, so a wake-up
 * only makes us look. With the OOM killer disabled (oom_kill_disable 1) nobody is killed: the start of
 * each under_oom episode is the event then. A kernel without the oom_kill line (< 4.13) gets one event
 * per wake-up, as runc-v2 sends.
 * v2: inotify IN_MODIFY on memory.events wakes the watch; oom, max and high changes are no events.
 *
 * The look is also taken before every reap pass (oom_check_all), so a kill is reported ahead of the exit
 * it caused even when its wake-up has not been handled yet. */
#include "oom.h"
#include "control.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

struct watch {
	struct watch *next;
	char *key;
	char *dir;
	int v2;
	int fd;            /* v1: the eventfd; v2: the inotify fd */
	uint64_t oom_kill; /* the last oom_kill count seen */
	int under;         /* v1, OOM killer disabled: the current under_oom episode was reported */
	int gone;          /* the cgroup is gone: removed after the current pass */
};

static struct watch *watches;
static size_t nwatches;

static struct watch *find(const char *key)
{
	for (struct watch *w = watches; w; w = w->next)
		if (strcmp(w->key, key) == 0)
			return w;
	return NULL;
}

/* The value of "<key> <n>" in a cgroup file of such lines (memory.events, memory.oom_control): 0 with
 * the value, or -1 with errno (EINVAL: no such line). */
static int read_key(const char *dir, const char *file, const char *key, uint64_t *out)
{
	char path[4096], *text;
	size_t len, klen = strlen(key);
	if (fmt_path(path, sizeof path, "%s/%s", dir, file) < 0 || read_file(path, &text, &len, 4096) < 0)
		return -1;
	int rc = -1;
	errno = EINVAL;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(line + klen + 1, &end, 10);
			if (errno == 0 && end != line + klen + 1 && *end == '\0') {
				*out = v;
				rc = 0;
			} else {
				errno = EINVAL;
			}
			break;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return rc;
}

static int watch_v1(const char *dir, int *fd_out, uint64_t *count, char *err, size_t errlen)
{
	char ctl[4096], ev[4096];
	if (fmt_path(ctl, sizeof ctl, "%s/memory.oom_control", dir) < 0 ||
	    fmt_path(ev, sizeof ev, "%s/cgroup.event_control", dir) < 0) {
		snprintf(err, errlen, "cgroup path too long: %s", dir);
		return ENAMETOOLONG;
	}
	int ofd = open(ctl, O_RDONLY | O_CLOEXEC);
	if (ofd < 0) {
		int e = errno;
		snprintf(err, errlen, "open %s: %s", ctl, strerror(e));
		return e;
	}
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int cfd = efd < 0 ? -1 : open(ev, O_WRONLY | O_CLOEXEC);
	int e = 0;
	if (efd < 0 || cfd < 0) {
		e = errno;
		snprintf(err, errlen, "%s: %s", efd < 0 ? "eventfd" : ev, strerror(e));
	} else {
		char line[64];
		int n = snprintf(line, sizeof line, "%d %d", efd, ofd);
		if (write_all(cfd, line, (size_t)n) < 0) {
			e = errno;
			snprintf(err, errlen, "write %s: %s", ev, strerror(e));
		}
	}
	/* the kernel keeps what it needs of the oom_control file once the event is registered */
	close(ofd);
	if (cfd >= 0)
		close(cfd);
	if (e) {
		if (efd >= 0)
			close(efd);
		return e;
	}
	*fd_out = efd;
	if (read_key(dir, "memory.oom_control", "oom_kill", count) < 0)
		*count = 0; /* an older kernel: every wake-up is an event */
	return 0;
}

static int watch_v2(const char *dir, int *fd_out, uint64_t *count, char *err, size_t errlen)
{
	char path[4096];
	if (fmt_path(path, sizeof path, "%s/memory.events", dir) < 0) {
		snprintf(err, errlen, "cgroup path too long: %s", dir);
		return ENAMETOOLONG;
	}
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0) {
		int e = errno;
		snprintf(err, errlen, "inotify_init1: %s", strerror(e));
		return e;
	}
	/* the watch first, the count second: a kill in between is then both counted and notified */
	if (inotify_add_watch(ifd, path, IN_MODIFY) < 0 || read_key(dir, "memory.events", "oom_kill", count) < 0) {
		int e = errno;
		snprintf(err, errlen, "watching %s: %s", path, strerror(e));
		close(ifd);
		return e;
	}
	*fd_out = ifd;
	return 0;
}

int oom_watch(const char *key, const char *version, const char *dir, char *err, size_t errlen)
{
	if (find(key))
		return 0;
	int v2;
	if (strcmp(version, "v1") == 0)
		v2 = 0;
	else if (strcmp(version, "v2") == 0)
		v2 = 1;
	else {
		snprintf(err, errlen, "unknown cgroup version %.16s (v1 or v2)", version);
		return EINVAL;
	}
	if (dir[0] != '/') {
		snprintf(err, errlen, "cgroup path %.256s is not absolute", dir);
		return EINVAL;
	}
	int fd;
	uint64_t count = 0;
	int e = v2 ? watch_v2(dir, &fd, &count, err, errlen) : watch_v1(dir, &fd, &count, err, errlen);
	if (e)
		return e;
	struct watch *w = xrealloc(NULL, sizeof *w);
	*w = (struct watch){ .next = watches, .key = xstrdup(key), .dir = xstrdup(dir), .v2 = v2, .fd = fd,
			     .oom_kill = count };
	watches = w;
	nwatches++;
	logm(LV_DEBUG, "oom watch %s on %s (%s)", key, dir, version);
	return 0;
}

static void oom_event(struct watch *w)
{
	logm(LV_INFO, "oom in %s (%s)", w->key, w->dir);
	control_oom(w->key);
}

/* Take what woke the watch: the eventfd's count (v1), the queued notifications (v2). */
static void drain(struct watch *w)
{
	if (!w->v2) {
		uint64_t n;
		while (read(w->fd, &n, sizeof n) < 0 && errno == EINTR)
			;
		return;
	}
	char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t r;
	while ((r = read(w->fd, evbuf, sizeof evbuf)) > 0) {
		for (char *p = evbuf; p < evbuf + r;) {
			struct inotify_event *ie = (struct inotify_event *)p;
			if (ie->mask & IN_IGNORED)
				w->gone = 1; /* the file went away with its cgroup */
			p += sizeof *ie + ie->len;
		}
	}
}

/* v1 with the OOM killer disabled: the start of an under_oom episode is the event. */
static void check_under_oom(struct watch *w)
{
	uint64_t disabled, under;
	if (read_key(w->dir, "memory.oom_control", "oom_kill_disable", &disabled) < 0 ||
	    read_key(w->dir, "memory.oom_control", "under_oom", &under) < 0)
		return;
	if (disabled && under && !w->under)
		oom_event(w);
	w->under = under != 0;
}

/* Look at the cgroup's oom_kill count (woke: after a wake-up, which is drained first). */
static void check(struct watch *w, int woke)
{
	if (woke)
		drain(w);
	if (w->gone)
		return;
	uint64_t count;
	if (read_key(w->dir, w->v2 ? "memory.events" : "memory.oom_control", "oom_kill", &count) < 0) {
		if (errno == ENOENT || errno == ENODEV)
			w->gone = 1; /* removed with its cgroup (the v1 eventfd is signalled then too) */
		else if (errno == EINVAL && !w->v2 && woke)
			oom_event(w);
		return;
	}
	if (count > w->oom_kill) {
		/* one event per kill: a look can find several (the kernel killed the shell and then its child
		 * before we were woken, or a wake-up was handled late) */
		uint64_t kills = count - w->oom_kill;
		w->oom_kill = count;
		while (kills-- > 0)
			oom_event(w);
	} else if (!w->v2 && woke) {
		check_under_oom(w);
	}
}

static void free_watch(struct watch *w)
{
	close(w->fd);
	free(w->key);
	free(w->dir);
	free(w);
	nwatches--;
}

/* Drop the watches whose cgroup is gone. */
static void sweep(void)
{
	for (struct watch **pp = &watches; *pp;) {
		struct watch *w = *pp;
		if (!w->gone) {
			pp = &w->next;
			continue;
		}
		logm(LV_DEBUG, "oom watch %s: cgroup %s is gone", w->key, w->dir);
		*pp = w->next;
		free_watch(w);
	}
}

void oom_release(const char *key)
{
	struct watch *w = find(key);
	if (w) {
		w->gone = 1;
		sweep();
	}
}

void oom_release_all(void)
{
	while (watches) {
		struct watch *w = watches;
		watches = w->next;
		free_watch(w);
	}
}

void oom_check_all(void)
{
	for (struct watch *w = watches; w; w = w->next)
		check(w, 0);
	sweep();
}

size_t oom_slots(void)
{
	return nwatches;
}

void oom_fill(struct pollfd *p)
{
	for (struct watch *w = watches; w; w = w->next, p++)
		*p = (struct pollfd){ .fd = w->fd, .events = POLLIN };
}

void oom_dispatch(const struct pollfd *p)
{
	for (struct watch *w = watches; w; w = w->next, p++) {
		if (p->revents && p->fd == w->fd)
			check(w, 1);
	}
	sweep();
}
