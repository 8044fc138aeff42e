/* `delete`: clean up one container after its shim is gone (or as the last teardown step): run the
 * cleanup command its backend wrote into the bundle (`tsrt-cleanup`; bundles of older daemons have
 * `tsrt-runtime`, from which `<runtime> --root <root> delete --force <id>` is made), unmount rootfs,
 * print a DeleteResponse. */
#include "buf.h"
#include "mountopts.h"
#include "pb.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNTIME_DELETE_TIMEOUT_MS 4000
#define CLEANUP_MAX_ARGS 64

struct runtime_info {
	char *wrapper; /* a command the runtime runs under (tsrt-hybrid-exec for crun on hybrid cgroups) */
	char *binary;
	char *root;
};

/* <bundle>/tsrt-runtime: lines "binary=<path>", "root=<dir>" and optionally "wrapper=<path>".
 * Missing file: all NULL. */
static void read_runtime(const char *bundle, struct runtime_info *ri)
{
	char path[PATH_MAX], *text;
	ri->wrapper = ri->binary = ri->root = NULL;
	if (fmt_path(path, sizeof path, "%s/tsrt-runtime", bundle) < 0 ||
	    read_file(path, &text, NULL, 1u << 16) < 0) {
		if (errno != ENOENT)
			warnmsg("read %s: %s", path, strerror(errno));
		return;
	}
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t n = strlen(line);
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		if (strncmp(line, "binary=", 7) == 0 && line[7]) {
			free(ri->binary);
			ri->binary = xstrdup(line + 7);
		} else if (strncmp(line, "root=", 5) == 0 && line[5]) {
			free(ri->root);
			ri->root = xstrdup(line + 5);
		} else if (strncmp(line, "wrapper=", 8) == 0 && line[8]) {
			free(ri->wrapper);
			ri->wrapper = xstrdup(line + 8);
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
}

/* <bundle>/tsrt-cleanup: the backend's cleanup command, one argument per line (no empty line, at most
 * CLEANUP_MAX_ARGS). NULL when there is none (or it is malformed: then with a warning); else a
 * NULL-terminated argv whose strings point into *text (free both). */
static char **read_cleanup(const char *bundle, char **text)
{
	char path[PATH_MAX];
	*text = NULL;
	if (fmt_path(path, sizeof path, "%s/tsrt-cleanup", bundle) < 0 || read_file(path, text, NULL, 1u << 16) < 0) {
		if (errno != ENOENT)
			warnmsg("read %s: %s", path, strerror(errno));
		return NULL;
	}
	char **argv = xrealloc(NULL, (CLEANUP_MAX_ARGS + 1) * sizeof *argv);
	int k = 0;
	for (char *line = *text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!*line || k == CLEANUP_MAX_ARGS) {
			warnmsg("%s: %s; ignored", path, *line ? "too many arguments" : "an empty argument");
			free(argv);
			free(*text);
			*text = NULL;
			return NULL;
		}
		argv[k++] = line;
		line = nl ? nl + 1 : NULL;
	}
	argv[k] = NULL;
	if (k == 0) {
		warnmsg("%s is empty; ignored", path);
		free(argv);
		free(*text);
		*text = NULL;
		return NULL;
	}
	return argv;
}

/* Wait for pid, killing it after the timeout. Returns the wait status, or -1. */
static int wait_bounded(pid_t pid)
{
	int pfd = pidfd_open(pid, 0);
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		int rc;
		do
			rc = poll(&p, 1, RUNTIME_DELETE_TIMEOUT_MS);
		while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			warnmsg("runtime delete did not finish in %d ms, killing it", RUNTIME_DELETE_TIMEOUT_MS);
			kill(pid, SIGKILL);
		}
		close(pfd);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

/* Run argv in the bundle, /dev/null as stdio, bounded by RUNTIME_DELETE_TIMEOUT_MS; warn on failure. */
static void run_cleanup(char *const argv[], const char *bundle)
{
	pid_t pid = fork();
	if (pid < 0) {
		warnmsg("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		child_reset_signals();
		if (child_devnull_stdio() < 0 || chdir(bundle) < 0)
			_exit(126);
		close_fds_from(3, -1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st = wait_bounded(pid);
	char cmd[512] = "";
	for (size_t k = 0, n = 0; argv[k] && n < sizeof cmd; k++) {
		int w = snprintf(cmd + n, sizeof cmd - n, "%s%s", k ? " " : "", argv[k]);
		n += w > 0 ? (size_t)w : 0;
	}
	if (st < 0)
		warnmsg("wait for %s: %s", argv[0], strerror(errno));
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		warnmsg("could not run %s", argv[0]);
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		warnmsg("%s failed (status %d)", cmd, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* What a bundle of an older daemon says: `[wrapper] <binary> [--root <root>] delete --force <id>`. */
static void runtime_delete(const struct runtime_info *ri, const char *bundle, const char *id)
{
	char *argv[9];
	int k = 0;
	if (ri->wrapper)
		argv[k++] = ri->wrapper;
	argv[k++] = ri->binary;
	if (ri->root) {
		argv[k++] = "--root";
		argv[k++] = ri->root;
	}
	argv[k++] = "delete";
	argv[k++] = "--force";
	argv[k++] = (char *)id;
	argv[k] = NULL;
	run_cleanup(argv, bundle);
}

/* The shim socket named in <bundle>/address (`unix://<path>`, or the gRPC reply's JSON with an
 * "address"), removed when nothing listens on it any more: its monitor was killed, and neither
 * containerd nor a later start would remove it. A live monitor's socket (other containers of its pod)
 * is left alone. */
static void remove_dead_socket(const char *bundle)
{
	char path[PATH_MAX], *text;
	if (fmt_path(path, sizeof path, "%s/address", bundle) < 0 || read_file(path, &text, NULL, 4096) < 0)
		return;
	char *p = strstr(text, "unix://");
	if (p) {
		p += 7;
	} else if ((p = strstr(text, "\"address\":\""))) {
		p += 11;
	}
	if (p) {
		p[strcspn(p, "\"\n\r")] = '\0';
		/* only what start names a shim socket: an absolute path ending in /<64 hex digits> */
		const char *base = strrchr(p, '/');
		int ours = p[0] == '/' && base && strlen(base + 1) == 64 && strspn(base + 1, "0123456789abcdef") == 64;
		if (ours && !unix_socket_alive(p)) {
			if (unlink(p) < 0 && errno != ENOENT)
				warnmsg("remove the dead shim socket %s: %s", p, strerror(errno));
		}
	}
	free(text);
}

static uint32_t read_init_pid(const char *bundle)
{
	char path[PATH_MAX], *text;
	if (fmt_path(path, sizeof path, "%s/init.pid", bundle) < 0 || read_file(path, &text, NULL, 64) < 0)
		return 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	int ok = errno == 0 && end != text && v <= UINT32_MAX && text[0] >= '0' && text[0] <= '9';
	free(text);
	return ok ? (uint32_t)v : 0;
}

/* DeleteResponse{1: pid, 2: exit_status, 3: exited_at Timestamp{1: seconds, 2: nanos}}. */
static void encode_delete_response(struct buf *out, uint32_t pid, uint32_t status, const struct timespec *ts)
{
	struct buf t = { 0 };
	if (ts->tv_sec)
		pb_put_uint(&t, 1, (uint64_t)ts->tv_sec);
	if (ts->tv_nsec)
		pb_put_uint(&t, 2, (uint64_t)ts->tv_nsec);
	if (pid)
		pb_put_uint(out, 1, pid);
	if (status)
		pb_put_uint(out, 2, status);
	pb_put_bytes(out, 3, buf_head(&t), t.len);
	buf_free(&t);
}

int cmd_delete(const struct shim_opts *o)
{
	char bundle[PATH_MAX];
	if (o->bundle[0]) {
		if (fmt_path(bundle, sizeof bundle, "%s", o->bundle) < 0)
			die("bundle path too long");
	} else if (!getcwd(bundle, sizeof bundle)) {
		die("getcwd: %s", strerror(errno));
	}

	char *text;
	char **cleanup = read_cleanup(bundle, &text);
	if (cleanup) {
		run_cleanup(cleanup, bundle);
		free(cleanup);
		free(text);
	} else {
		struct runtime_info ri;
		read_runtime(bundle, &ri);
		if (ri.binary && o->id[0])
			runtime_delete(&ri, bundle, o->id);
		free(ri.binary);
		free(ri.root);
		free(ri.wrapper);
	}

	remove_dead_socket(bundle);

	char rootfs[PATH_MAX];
	if (fmt_path(rootfs, sizeof rootfs, "%s/rootfs", bundle) == 0) {
		int rc = umount_all(rootfs);
		if (rc < 0)
			warnmsg("unmount %s: %s", rootfs, strerror(-rc));
	}

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct buf out = { 0 };
	encode_delete_response(&out, read_init_pid(bundle), 128 + SIGKILL, &now);
	if (write_all(1, buf_head(&out), out.len) < 0)
		die("write DeleteResponse: %s", strerror(errno));
	buf_free(&out);
	return 0;
}
