/* Test-only stand-in for runc's side of `--console-socket`.
 *
 *   tsrt-console-peer <socket path>
 *
 * Opens a pty, connects to the socket and sends one message: the pty name as payload and an
 * SCM_RIGHTS control message with the master and, as an extra fd the receiver must close, the
 * slave. Then it serves line commands read from the slave (echo off), answering on the slave:
 *   echo <text>  -> "got:<text>"
 *   size         -> "size <rows> <cols>" (TIOCGWINSZ)
 *   flood <n>    -> n bytes of "0123456789" repeated, then "done"
 *   exit         -> "bye", exit 0
 * It prints "ready" first and exits 3 when the slave reads EOF or fails (console closed). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "tsrt-console-peer: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void say(int fd, const char *s)
{
	size_t n = strlen(s);
	if (write(fd, s, n) != (ssize_t)n)
		fail("write");
}

static void send_fds(const char *path, const char *name, int master, int extra)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		fail(path);
	}
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
		fail("connect");
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(2 * sizeof(int));
	int fds[2] = { master, extra };
	memcpy(CMSG_DATA(h), fds, sizeof fds);
	if (sendmsg(s, &mh, 0) < 0)
		fail("sendmsg");
	close(s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tsrt-console-peer <socket path>\n");
		return 2;
	}
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
		fail("posix_openpt");
	const char *name = ptsname(master);
	if (!name)
		fail("ptsname");
	int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		fail(name);
	struct termios t;
	if (tcgetattr(slave, &t) < 0)
		fail("tcgetattr");
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	if (tcsetattr(slave, TCSANOW, &t) < 0)
		fail("tcsetattr");
	send_fds(argv[1], name, master, slave);
	close(master);

	say(slave, "ready\n");
	char line[512];
	for (;;) {
		ssize_t n = read(slave, line, sizeof line - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 3;
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
		char out[600];
		if (strncmp(line, "echo ", 5) == 0) {
			snprintf(out, sizeof out, "got:%s\n", line + 5);
		} else if (strcmp(line, "size") == 0) {
			struct winsize ws;
			if (ioctl(slave, TIOCGWINSZ, &ws) < 0)
				fail("TIOCGWINSZ");
			snprintf(out, sizeof out, "size %u %u\n", ws.ws_row, ws.ws_col);
		} else if (strncmp(line, "flood ", 6) == 0) {
			char chunk[4000];
			for (size_t i = 0; i < sizeof chunk; i++)
				chunk[i] = (char)('0' + i % 10);
			for (long left = atol(line + 6); left > 0; left -= (long)sizeof chunk) {
				size_t k = left < (long)sizeof chunk ? (size_t)left : sizeof chunk;
				if (write(slave, chunk, k) != (ssize_t)k)
					fail("write");
			}
			snprintf(out, sizeof out, "done\n");
		} else if (strcmp(line, "exit") == 0) {
			say(slave, "bye\n");
			return 0;
		} else {
			snprintf(out, sizeof out, "unknown:%s\n", line);
		}
		say(slave, out);
	}
}
