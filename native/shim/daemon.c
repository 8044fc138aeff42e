#include "daemon.h"
#include "sha256.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int daemon_cfg_init(struct daemon_cfg *d, const char *address)
{
	const char *t = getenv("TTRPC_ADDRESS");
	if (t && *t) {
		if (fmt_path(d->ttrpc_address, sizeof d->ttrpc_address, "%s", t) < 0)
			return -1;
	} else if (fmt_path(d->ttrpc_address, sizeof d->ttrpc_address, "%s.ttrpc", address) < 0) {
		return -1;
	}
	char hex[65];
	sha256_hex(d->ttrpc_address, strlen(d->ttrpc_address), hex);
	hex[16] = '\0';
	if (fmt_path(d->dir, sizeof d->dir, "/run/tsrt/%s", hex) < 0 ||
	    fmt_path(d->sock, sizeof d->sock, "%s/daemon.sock", d->dir) < 0)
		return -1;

	const char *node = getenv("TSRT_NODE");
	if (fmt_path(d->node, sizeof d->node, "%s", (node && *node) ? node : "node") < 0)
		return -1;

	const char *bundle = getenv("TSRT_DAEMON");
	if (bundle && *bundle)
		return fmt_path(d->bundle, sizeof d->bundle, "%s", bundle);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0)
		return -1;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	return fmt_path(d->bundle, sizeof d->bundle, "%s/tsrt-daemon.mjs", slash ? self : ".");
}

int daemon_connect(const struct daemon_cfg *d)
{
	struct sockaddr_un sa;
	socklen_t len;
	if (unix_sockaddr(&sa, &len, d->sock) < 0)
		return -errno;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Our environment minus TSRT_DAEMON_DIR / TTRPC_ADDRESS, plus both set to ours. */
static char **daemon_env(const struct daemon_cfg *d)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = xrealloc(NULL, (n + 3) * sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "TSRT_DAEMON_DIR=", 16) != 0 &&
		    strncmp(environ[i], "TTRPC_ADDRESS=", 14) != 0)
			env[k++] = environ[i];
	size_t a = strlen(d->dir) + 17, b = strlen(d->ttrpc_address) + 15;
	env[k] = xrealloc(NULL, a + 1);
	memcpy(env[k], "TSRT_DAEMON_DIR=", 16);
	memcpy(env[k] + 16, d->dir, a - 16);
	k++;
	env[k] = xrealloc(NULL, b + 1);
	memcpy(env[k], "TTRPC_ADDRESS=", 14);
	memcpy(env[k] + 14, d->ttrpc_address, b - 14);
	k++;
	env[k] = NULL;
	return env;
}

static void free_env(char **env)
{
	size_t k = 0;
	while (env[k])
		k++;
	/* the last two entries are ours */
	free(env[k - 1]);
	free(env[k - 2]);
	free(env);
}

int daemon_spawn(const struct daemon_cfg *d)
{
	if (mkdir_p("/run/tsrt", 0700) < 0 || mkdir_p(d->dir, 0700) < 0)
		return -errno;
	char **env = daemon_env(d);
	char *argv[] = { (char *)d->node, (char *)d->bundle, NULL };
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		free_env(env);
		return -e;
	}
	if (pid == 0) {
		/* intermediate: new session, fork the daemon, exit so it is re-parented */
		if (setsid() < 0)
			_exit(1);
		pid_t p2 = fork();
		if (p2 != 0)
			_exit(p2 < 0 ? 1 : 0);
		child_reset_signals();
		if (child_devnull_stdio() < 0 || chdir(d->dir) < 0)
			_exit(126);
		close_fds_from(3, -1);
		execvpe(argv[0], argv, env);
		_exit(127);
	}
	free_env(env);
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -ECHILD;
	return 0;
}
