/* Test-only child subreaper: runs a command and reports every process it reaps, so that a test can
 * wait for the exit of a process that is not its child (a container init, once the launcher that
 * made it has exited, is re-parented here).
 *
 *   tsrt-test-reaper <command> [args...]
 *
 * Reports go to fd 3, one line per reaped process: "<pid> exit <code>" or "<pid> signal <n>";
 * the command first, as "started <pid>". Exits 0 once no child or orphan is left. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *line)
{
	size_t n = strlen(line);
	if (write(3, line, n) != (ssize_t)n)
		_exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: tsrt-test-reaper <command> [args...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0) {
		perror("tsrt-test-reaper");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("tsrt-test-reaper: fork");
		return 2;
	}
	if (pid == 0) {
		execv(argv[1], argv + 1);
		perror("tsrt-test-reaper: exec");
		_exit(127);
	}
	char line[64];
	snprintf(line, sizeof line, "started %d\n", (int)pid);
	report(line);
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == ECHILD ? 0 : 2;
		if (WIFEXITED(st))
			snprintf(line, sizeof line, "%d exit %d\n", (int)r, WEXITSTATUS(st));
		else
			snprintf(line, sizeof line, "%d signal %d\n", (int)r, WTERMSIG(st));
		report(line);
	}
}
