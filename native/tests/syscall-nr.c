/* tsrt-test-syscall <nr>...: makes each system call number with no arguments and prints what came back,
 * `<nr> ok` or `<nr> <errno name>`, for the seccomp tests (a syscall newer than a profile's gets ENOSYS). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long nr = strtol(argv[i], NULL, 10);
		errno = 0;
		long r = syscall(nr, 0, 0, 0, 0, 0, 0);
		const char *name = errno == ENOSYS ? "ENOSYS" : errno == EPERM ? "EPERM" : errno == EINVAL ? "EINVAL" : errno ? "other" : "ok";
		printf("%ld %s\n", nr, r < 0 ? name : "ok");
	}
	return 0;
}
