/* `delete`: clean up one container after its shim is gone (or as the last teardown step):
 * `<runtime> --root <root> delete --force <id>`, unmount rootfs, print a DeleteResponse. */
#include "buf.h"
#include "mountopts.h"
#include "pb.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNTIME_DELETE_TIMEOUT_MS 4000

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
	if (st < 0)
		warnmsg("wait for %s: %s", ri->binary, strerror(errno));
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		warnmsg("could not run %s", ri->binary);
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		warnmsg("%s delete --force %s failed (status %d)", ri->binary, id,
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
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

	struct runtime_info ri;
	read_runtime(bundle, &ri);
	if (ri.binary && o->id[0])
		runtime_delete(&ri, bundle, o->id);
	free(ri.binary);
	free(ri.root);
	free(ri.wrapper);

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
