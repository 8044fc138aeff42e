/* tsrt-agent: the init of the vm backend's guest (docs/vm-guest.md).
 *
 * It runs as pid 1 of a micro-VM booted from Debian's kernel and an initramfs that holds it and the
 * kernel modules the guest needs. It mounts /proc, /sys and /dev, loads the modules in the order
 * /lib/tsrt/modules lists them, finds the virtio-serial port named "tsrt.agent", and answers the host's
 * requests on it: control frames (native/shim/frame.h), `<op> <seq> args...`, answered with
 * `ok <seq> values...` or `error <seq> <errno> <message>`.
 *
 *   hello <seq>                              -> ok <seq> <protocol version> <kernel release> <agent pid>
 *   poweroff <seq>                           -> ok <seq>, then the guest powers off
 *   mount <seq> <src> <target> <type> <flags> <data>  -> ok (target made as a directory first)
 *   write <seq> <path> <mode> <content>      -> ok (a file, its directory made first; mode octal)
 *   read <seq> <path>                        -> ok <seq> <content> (at most 64 KiB)
 *   spawn <seq> <cwd> <argc> argv... <envc> env...  -> ok <seq> <pid>; stdio /dev/null, the console for stderr
 *   release <seq> <fifo>                     -> ok once a byte was read from the FIFO (the native launcher's
 *                                               exec FIFO: its init goes on), at most 5 s
 *
 * and sends, unasked, `reaped <pid> <status>` for every process it reaps (as pid 1 it reaps them all, its
 * own children and orphans), kept while no host is connected.
 *
 * The host may not have connected yet, or may go away and come back: a read that ends (EOF, EIO) is
 * retried after a short wait, on the same port. */
#include "../shim/buf.h"
#include "../shim/frame.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION "1"
#define PORT_NAME "tsrt.agent"
#define MODULE_LIST "/lib/tsrt/modules"

/* Messages go to the kernel console (the VM's serial port), which the host keeps as the guest's log. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof line, "tsrt-agent: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

static _Noreturn void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	_exit(1); /* not reached: pid 1 exiting panics the guest, which the host sees as an end too */
}

static void mount_or_say(const char *src, const char *dst, const char *type)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, MS_NOSUID | MS_NOEXEC, NULL) < 0 && errno != EBUSY)
		say("mount %s: %s", dst, strerror(errno));
}

/* finit_module of every module the list names, in its order (the build wrote it dependencies first). */
static int load_modules(void)
{
	FILE *f = fopen(MODULE_LIST, "r");
	if (!f) {
		say("%s: %s", MODULE_LIST, strerror(errno));
		return -1;
	}
	char name[256];
	int bad = 0;
	while (fgets(name, sizeof name, f)) {
		name[strcspn(name, "\n")] = 0;
		if (!name[0])
			continue;
		char path[300];
		snprintf(path, sizeof path, "/lib/tsrt/%s.ko", name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0) {
			if (errno != EEXIST) {
				say("module %s: %s", name, strerror(errno));
				bad = 1;
			}
		}
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
	return bad ? -1 : 0;
}

/* /dev/<vportNpM> whose /sys/class/virtio-ports/<it>/name is PORT_NAME; the port appears once the
 * virtio_console driver has probed it, so this waits for it (bounded). */
static int open_port(void)
{
	for (int tries = 0; tries < 500; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[300], name[64] = "";
			snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, name, sizeof name - 1);
			close(fd);
			if (n <= 0)
				continue;
			name[strcspn(name, "\n")] = 0;
			if (strcmp(name, PORT_NAME) != 0)
				continue;
			snprintf(p, sizeof p, "/dev/%s", e->d_name);
			closedir(d);
			int port = open(p, O_RDWR | O_CLOEXEC);
			if (port < 0)
				say("%s: %s", p, strerror(errno));
			return port;
		}
		if (d)
			closedir(d);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	say("no virtio-serial port named %s", PORT_NAME);
	return -1;
}

/* Frames for the host wait here until the port takes them (no host connected: writes fail with EAGAIN). */
static struct buf out;

static void flush_out(int port)
{
	while (out.len > 0) {
		ssize_t w = buf_flush(&out, port);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
	}
}

static int send_frame(int port, struct buf *b, size_t start)
{
	if (frame_end(b, start) < 0)
		return -1;
	buf_put(&out, buf_head(b), b->len);
	buf_clear(b);
	flush_out(port);
	return 0;
}

static void reply_ok(int port, const char *seq, const char *value)
{
	struct buf b = { 0 };
	send_frame(port, &b, frame_begin_ok(&b, seq, value));
	buf_free(&b);
}

static void reply_error(int port, const char *seq, int err, const char *msg)
{
	struct buf b = { 0 };
	send_frame(port, &b, frame_begin_error(&b, seq, err, msg));
	buf_free(&b);
}

static int mkdirs(const char *path)
{
	char p[4096];
	if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
		return -1;
	for (char *c = p + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*c = '/';
	}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int parent_dirs(const char *path)
{
	char p[4096];
	if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
		return -1;
	char *slash = strrchr(p, '/');
	if (!slash || slash == p)
		return 0;
	*slash = 0;
	return mkdirs(p);
}

static void do_mount(int port, const char *seq, char **f)
{
	char *end;
	unsigned long flags = strtoul(f[5], &end, 10);
	if (*end) {
		reply_error(port, seq, EINVAL, "mount flags are not a number");
		return;
	}
	if (mkdirs(f[3]) < 0 || mount(f[2], f[3], f[4], flags, f[6][0] ? f[6] : NULL) < 0) {
		reply_error(port, seq, errno, strerror(errno));
		return;
	}
	reply_ok(port, seq, NULL);
}

static void do_write(int port, const char *seq, char **f)
{
	char *end;
	unsigned long mode = strtoul(f[3], &end, 8);
	int fd = -1;
	if (*end || mode > 07777) {
		reply_error(port, seq, EINVAL, "mode is not octal");
		return;
	}
	size_t len = strlen(f[4]);
	if (parent_dirs(f[2]) < 0 || (fd = open(f[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode)) < 0 ||
	    write(fd, f[4], len) != (ssize_t)len) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		reply_error(port, seq, e, strerror(e));
		return;
	}
	close(fd);
	reply_ok(port, seq, NULL);
}

static void do_read(int port, const char *seq, const char *path)
{
	static char data[65536 + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, data, sizeof data - 1);
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		reply_error(port, seq, e, strerror(e));
		return;
	}
	data[n] = 0;
	reply_ok(port, seq, data);
}

/* spawn <seq> <cwd> <argc> argv... <envc> env... */
static void do_spawn(int port, const char *seq, char **f, size_t n)
{
	char *end;
	unsigned long argc = n > 3 ? strtoul(f[3], &end, 10) : 0;
	if (n < 4 || *end || argc < 1 || n < 5 + argc) {
		reply_error(port, seq, EINVAL, "malformed spawn request");
		return;
	}
	unsigned long envc = strtoul(f[4 + argc], &end, 10);
	if (*end || n != 5 + argc + envc) {
		reply_error(port, seq, EINVAL, "malformed spawn request");
		return;
	}
	char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
	if (!argv || !envp) {
		free(argv), free(envp);
		reply_error(port, seq, ENOMEM, "out of memory");
		return;
	}
	memcpy(argv, f + 4, argc * sizeof *argv);
	memcpy(envp, f + 5 + argc, envc * sizeof *envp);
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		free(argv), free(envp);
		reply_error(port, seq, errno, strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC); /* dup2 clears the flag on 0 and 1 */
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		int e = 0;
		if (chdir(f[2]) < 0 || (execve(argv[0], argv, envp), 1))
			e = errno;
		ssize_t w = write(pipefd[1], &e, sizeof e);
		(void)w;
		_exit(127);
	}
	int e = pid < 0 ? errno : 0;
	close(pipefd[1]);
	if (pid > 0 && read(pipefd[0], &e, sizeof e) != (ssize_t)sizeof e)
		e = 0; /* EOF: it exec'd */
	close(pipefd[0]);
	free(argv), free(envp);
	if (e) {
		reply_error(port, seq, e, strerror(e));
		return; /* the child's exit is reaped and reported as usual */
	}
	char v[24];
	snprintf(v, sizeof v, "%d", (int)pid);
	reply_ok(port, seq, v);
}

static void do_release(int port, const char *seq, const char *fifo)
{
	int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		reply_error(port, seq, errno, strerror(errno));
		return;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	int r = poll(&p, 1, 5000);
	ssize_t got = r > 0 ? read(fd, &c, 1) : 0;
	close(fd);
	if (got == 1)
		reply_ok(port, seq, NULL);
	else
		reply_error(port, seq, ETIMEDOUT, "no byte on the exec FIFO within 5 s");
}

static void handle(int port, char **f, size_t n)
{
	const char *seq = n > 1 ? f[1] : "0";
	if (n == 2 && strcmp(f[0], "hello") == 0) {
		struct utsname u;
		uname(&u);
		struct buf b = { 0 };
		size_t s = frame_begin_ok(&b, seq, PROTOCOL_VERSION);
		frame_add(&b, u.release);
		frame_add_i64(&b, getpid());
		send_frame(port, &b, s);
		buf_free(&b);
	} else if (n == 2 && strcmp(f[0], "poweroff") == 0) {
		reply_ok(port, seq, NULL);
		say("power off, as the host asked");
		power_off();
	} else if (n == 7 && strcmp(f[0], "mount") == 0) {
		do_mount(port, seq, f);
	} else if (n == 5 && strcmp(f[0], "write") == 0) {
		do_write(port, seq, f);
	} else if (n == 3 && strcmp(f[0], "read") == 0) {
		do_read(port, seq, f[2]);
	} else if (n >= 4 && strcmp(f[0], "spawn") == 0) {
		do_spawn(port, seq, f, n);
	} else if (n == 3 && strcmp(f[0], "release") == 0) {
		do_release(port, seq, f[2]);
	} else {
		reply_error(port, seq, ENOSYS, n > 0 ? "unknown request" : "empty request");
	}
}

static void reap_all(int port)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct buf b = { 0 };
		size_t s = frame_begin(&b);
		frame_add(&b, "reaped");
		frame_add_i64(&b, pid);
		frame_add_i64(&b, status);
		send_frame(port, &b, s);
		buf_free(&b);
	}
}

/* Copies the tree below src (a directory of the initramfs: directories, files, symlinks) to dst. */
static int copy_tree(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	if (!d)
		return -1;
	struct dirent *e;
	int r = 0;
	while (r == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".root"))
			continue;
		char s[4096], t[4096];
		snprintf(s, sizeof s, "%s/%s", src, e->d_name);
		snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
		struct stat st;
		if (lstat(s, &st) < 0) {
			r = -1;
		} else if (S_ISDIR(st.st_mode)) {
			r = (mkdir(t, st.st_mode & 07777) < 0 && errno != EEXIST) ? -1 : copy_tree(s, t);
		} else if (S_ISLNK(st.st_mode)) {
			char l[4096];
			ssize_t n = readlink(s, l, sizeof l - 1);
			r = n < 0 ? -1 : (l[n] = 0, symlink(l, t));
		} else if (S_ISREG(st.st_mode)) {
			int in = open(s, O_RDONLY | O_CLOEXEC), out = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
			char buf[65536];
			ssize_t n;
			while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
				if (write(out, buf, (size_t)n) != n)
					break;
			r = (in < 0 || out < 0) ? -1 : 0;
			if (in >= 0)
				close(in);
			if (out >= 0)
				close(out);
		}
	}
	closedir(d);
	return r;
}

/* The initramfs is the kernel's rootfs, which pivot_root cannot leave: containers could only be chroot'ed.
 * So the agent first moves itself onto a tmpfs (the classic switch_root: copy, move the mount onto /,
 * chroot) and starts again from there. */
static void leave_initramfs(char **argv)
{
	struct statfs sf;
	if (statfs("/", &sf) < 0 || (sf.f_type != RAMFS_MAGIC && sf.f_type != TMPFS_MAGIC))
		return;
	struct stat st;
	if (stat("/.root", &st) == 0 || getenv("TSRT_AGENT_ROOT"))
		return; /* already done */
	if (mkdir("/.root", 0755) < 0 || mount("tmpfs", "/.root", "tmpfs", 0, "mode=0755") < 0 || copy_tree("/", "/.root") < 0 ||
	    chdir("/.root") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
		say("cannot move off the initramfs (%s): containers cannot pivot_root", strerror(errno));
		return;
	}
	setenv("TSRT_AGENT_ROOT", "tmpfs", 1);
	execv("/init", argv);
	say("re-exec from the new root: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	(void)argc;
	if (getpid() != 1) {
		fprintf(stderr, "tsrt-agent: must run as the guest's init\n");
		return 1;
	}
	leave_initramfs(argv);
	mount_or_say("proc", "/proc", "proc");
	mount_or_say("sysfs", "/sys", "sysfs");
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL) < 0 && errno != EBUSY)
		say("mount /dev: %s", strerror(errno));
	if (load_modules() < 0)
		say("some modules did not load; going on");
	int port = open_port();
	if (port < 0)
		power_off();
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		say("signalfd: %s", strerror(errno));
	int fl = fcntl(port, F_GETFL);
	fcntl(port, F_SETFL, fl | O_NONBLOCK);
	say("ready on %s", PORT_NAME);
	struct buf in = { 0 };
	for (;;) {
		struct pollfd p[2] = { { .fd = port, .events = POLLIN | (out.len ? POLLOUT : 0) }, { .fd = sfd, .events = POLLIN } };
		if (poll(p, 2, out.len ? 50 : -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				;
			reap_all(port);
		}
		flush_out(port);
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t r = buf_fill(&in, port, 65536);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			/* no host on the other end (yet, or any more): wait for one */
			buf_clear(&in);
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		for (;;) {
			char **fields;
			size_t nf, len;
			int k = frame_parse(&in, &fields, &nf, &len);
			if (k < 0) {
				say("bad frame from the host; dropping its bytes");
				buf_clear(&in);
				break;
			}
			if (k == 0)
				break;
			handle(port, fields, nf);
			free(fields);
			buf_drop(&in, len);
		}
	}
	power_off();
}
