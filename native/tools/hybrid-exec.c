/*
 * tsrt-hybrid-exec: run a command with the cgroup2 mount of a "hybrid" host hidden.
 *
 * crun refuses hosts where cgroup v1 controllers and a cgroup2 mount at /sys/fs/cgroup/unified coexist.
 * In a private mount namespace we detach that one mount and exec the command, which then sees a plain
 * cgroup v1 host. The host's mounts are untouched. The exec keeps our pid, so whoever spawned us reaps
 * the command itself.
 *
 * usage: tsrt-hybrid-exec COMMAND [ARG...]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static const char unified[] = "/sys/fs/cgroup/unified";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: tsrt-hybrid-exec COMMAND [ARG...]\n");
		return 2;
	}
	if (unshare(CLONE_NEWNS) != 0) {
		fprintf(stderr, "tsrt-hybrid-exec: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return 125;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		fprintf(stderr, "tsrt-hybrid-exec: make / private: %s\n", strerror(errno));
		return 125;
	}
	if (umount2(unified, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
		fprintf(stderr, "tsrt-hybrid-exec: umount %s: %s\n", unified, strerror(errno));
		return 125;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "tsrt-hybrid-exec: exec %s: %s\n", argv[1], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
