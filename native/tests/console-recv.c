/* Test-only receiving end of the console-socket protocol, as the monitor is for tsrt-launch.
 *
 *   tsrt-console-recv <socket path> <input>
 *
 * Listens on the socket, prints "listening" once it does, accepts one connection and takes the pty
 * master from its SCM_RIGHTS message. Writes <input> to the master, then copies everything the
 * master gives to stdout until the last slave fd is closed (EIO); exits 0. Errors exit 2. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "tsrt-console-recv: %s: %s\n", what, strerror(errno));
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: tsrt-console-recv <socket path> <input>\n");
		return 2;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		fail(argv[1]);
	}
	strcpy(sa.sun_path, argv[1]);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0)
		fail("listen");
	printf("listening\n");
	fflush(stdout);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		fail("accept");
	char data[64];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	ssize_t n = recvmsg(c, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		fail("recvmsg");
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	if (!h || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len != CMSG_LEN(sizeof(int))) {
		errno = EPROTO;
		fail("expected one fd in SCM_RIGHTS");
	}
	int master;
	memcpy(&master, CMSG_DATA(h), sizeof master);
	printf("payload %zd\n", n);
	fflush(stdout);
	close(c);
	close(l);
	size_t len = strlen(argv[2]);
	if (write(master, argv[2], len) != (ssize_t)len)
		fail("write to the master");
	char buf[4096];
	for (;;) {
		n = read(master, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EIO: no slave left */
		if (write(STDOUT_FILENO, buf, (size_t)n) != n)
			fail("write to stdout");
	}
	return 0;
}
