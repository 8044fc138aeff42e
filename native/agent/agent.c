/* tsrt-agent: the init of the vm backend's guest (docs/vm-guest.md).
 *
 * It runs as pid 1 of a micro-VM booted from Debian's kernel and an initramfs that holds it and the
 * kernel modules the guest needs. It mounts /proc, /sys and /dev, loads the modules in the order
 * /lib/tsrt/modules lists them, finds the virtio-serial port named "tsrt.agent", and answers the host's
 * requests on it: control frames (native/shim/frame.h), `<op> <seq> args...`, answered with
 * `ok <seq> values...` or `error <seq> <errno> <message>`.
 *
 *   hello <seq>      -> ok <seq> <protocol version> <kernel release> <agent pid>
 *   poweroff <seq>   -> ok <seq>, then the guest powers off
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

static int send_frame(int port, struct buf *b, size_t start)
{
	if (frame_end(b, start) < 0)
		return -1;
	while (b->len > 0) {
		ssize_t w = buf_flush(b, port);
		if (w < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

static void reply_error(int port, const char *seq, int err, const char *msg)
{
	struct buf b = { 0 };
	size_t s = frame_begin(&b);
	frame_add(&b, "error");
	frame_add(&b, seq);
	frame_add_u64(&b, (uint64_t)err);
	frame_add(&b, msg);
	send_frame(port, &b, s);
	buf_free(&b);
}

static void handle(int port, char **f, size_t n)
{
	const char *seq = n > 1 ? f[1] : "0";
	struct buf b = { 0 };
	size_t s = frame_begin(&b);
	if (n == 2 && strcmp(f[0], "hello") == 0) {
		struct utsname u;
		uname(&u);
		frame_add(&b, "ok");
		frame_add(&b, seq);
		frame_add(&b, PROTOCOL_VERSION);
		frame_add(&b, u.release);
		frame_add_i64(&b, getpid());
		send_frame(port, &b, s);
	} else if (n == 2 && strcmp(f[0], "poweroff") == 0) {
		frame_add(&b, "ok");
		frame_add(&b, seq);
		send_frame(port, &b, s);
		buf_free(&b);
		say("power off, as the host asked");
		power_off();
	} else {
		buf_free(&b);
		reply_error(port, seq, ENOSYS, n > 0 ? "unknown request" : "empty request");
		return;
	}
	buf_free(&b);
}

int main(void)
{
	if (getpid() != 1) {
		fprintf(stderr, "tsrt-agent: must run as the guest's init\n");
		return 1;
	}
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
	say("ready on %s", PORT_NAME);
	struct buf in = { 0 };
	for (;;) {
		struct pollfd p = { .fd = port, .events = POLLIN };
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		ssize_t r = buf_fill(&in, port, 65536);
		if (r < 0 && errno == EINTR)
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
