/* `start`: find or create the shim socket for this container's group, make sure a daemon
 * exists, fork the monitor, write <bundle>/address and answer containerd with the address in the form
 * its version expects (bootstrap.h). */
#include "bootstrap.h"
#include "buf.h"
#include "daemon.h"
#include "grpc.h"
#include "json.h"
#include "monitor.h"
#include "sha256.h"
#include "shim.h"
#include "transport.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define SOCKET_DIR "/run/containerd/s"
#define STDIN_MAX (10u << 20) /* what containerd's pkg/shim reads of stdin at most */

static struct monitor_cfg mc;
static const char *protocol = "ttrpc";

/* All of stdin (containerd writes it from memory and then closes it); bytes past STDIN_MAX are read
 * and dropped. */
static void read_stdin(struct buf *in)
{
	char b[4096];
	for (;;) {
		size_t room = in->len < STDIN_MAX ? STDIN_MAX - in->len : 0;
		ssize_t r = room ? buf_fill(in, 0, room < 65536 ? room : 65536) : read(0, b, sizeof b);
		if (r > 0 || (r < 0 && errno == EINTR))
			continue;
		return; /* EOF, or no usable stdin */
	}
}

/* Grouping id: annotation io.containerd.runc.v2.group, else io.kubernetes.cri.sandbox-id, else id. */
static char *group_id(const char *bundle, const char *id)
{
	static const char *const keys[] = { "io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id" };
	char path[PATH_MAX], *js;
	size_t len;
	if (fmt_path(path, sizeof path, "%s/config.json", bundle) < 0 ||
	    read_file(path, &js, &len, 64u << 20) < 0)
		return xstrdup(id);
	char *value = NULL;
	for (size_t i = 0; i < 2 && !value; i++)
		if (json_annotation(js, len, keys[i], &value) != 1)
			value = NULL;
	free(js);
	return value ? value : xstrdup(id);
}

static int bind_listen(const char *path)
{
	struct sockaddr_un sa;
	socklen_t len;
	if (unix_sockaddr(&sa, &len, path) < 0)
		return -errno;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Is a live server behind path? A connect within 100 ms, or a full backlog, says yes. */

/* The reply on stdout: 0 or -1 with errno. */
static int write_reply(enum bootstrap_reply kind)
{
	struct buf out = { 0 };
	/* containerd dials a gRPC address as a unix socket path (it adds the unix:// itself) */
	bootstrap_reply_encode(kind, mc.grpc ? mc.sock_path : mc.shim_address, protocol, &out);
	int rc = write_all(1, buf_head(&out), out.len);
	int e = errno;
	buf_free(&out);
	errno = e;
	return rc;
}

/* <bundle>/address = address, atomically. 0 or -1 with errno. For gRPC it is the reply itself:
 * containerd 1.7 reads this file back through its start-reply parser when it reconnects after a
 * restart, and a bare address would mean ttrpc. */
static int write_address(const char *bundle, const char *address, enum bootstrap_reply kind)
{
	char path[PATH_MAX];
	if (fmt_path(path, sizeof path, "%s/address", bundle) < 0)
		return -1;
	if (!mc.grpc)
		return write_file_atomic(path, address, strlen(address), 0644);
	struct buf out = { 0 };
	bootstrap_reply_encode(kind, mc.sock_path, protocol, &out);
	int rc = write_file_atomic(path, (const char *)buf_head(&out), out.len, 0644);
	int e = errno;
	buf_free(&out);
	errno = e;
	return rc;
}

/* gRPC when the options ask for it and containerd takes it (docs/grpc-transport.md): only the version
 * 2 JSON reply (containerd 1.7) carries it; else ttrpc, and the monitor logs why. */
static void choose_transport(enum transport want, enum bootstrap_reply reply)
{
	if (want != TRANSPORT_GRPC)
		return;
	if (reply != REPLY_JSON_V2) {
		mc.transport_note = reply == REPLY_ADDRESS
			? "runtime option Transport = \"grpc\": containerd 1.6 takes only a ttrpc address; serving ttrpc"
			: "runtime option Transport = \"grpc\": containerd 2.x drops a gRPC shim's tasks right after start "
			  "(it takes the new channel's IDLE state for a lost connection; docs/grpc-transport.md); serving ttrpc";
		return;
	}
	char err[256];
	if (grpc_load(err, sizeof err) < 0)
		die("runtime option Transport = \"grpc\": %s", err);
	mc.grpc = 1;
	protocol = "grpc";
}

/* Bind the shim socket; 1 when another monitor already serves it, 0 when we own mc.listen_fd. */
static int claim_socket(void)
{
	const char *path = mc.sock_path;
	if (mkdir_parent(path, 0700) < 0)
		die("mkdir for %s: %s", path, strerror(errno));
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (fmt_path(dir, sizeof dir, "%.*s", slash && slash != path ? (int)(slash - path) : 1,
		     slash ? path : ".") < 0)
		die("socket path too long");
	/* Serialise bind..listen against concurrent starts of the same group. */
	int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock >= 0)
		while (flock(lock, LOCK_EX) < 0 && errno == EINTR)
			;
	int fd = bind_listen(path);
	if (fd == -EADDRINUSE) {
		if (unix_socket_alive(path)) {
			if (lock >= 0)
				close(lock);
			return 1;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			int e = errno;
			if (lock >= 0)
				close(lock);
			die("remove stale socket %s: %s", path, strerror(e));
		}
		fd = bind_listen(path);
	}
	if (fd < 0) {
		if (lock >= 0)
			close(lock);
		die("listen on %s: %s", path, strerror(-fd));
	}
	struct stat st;
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0) {
		int e = errno;
		unlink(path);
		die("chmod %s: %s", path, strerror(e));
	}
	if (lock >= 0)
		close(lock);
	mc.listen_fd = fd;
	mc.sock_dev = st.st_dev;
	mc.sock_ino = st.st_ino;
	return 0;
}

static void __attribute__((noreturn)) fail_owned(const char *what, int e)
{
	unlink(mc.sock_path);
	die("%s: %s", what, strerror(e));
}

int cmd_start(const struct shim_opts *o)
{
	if (o->id[0] == '\0')
		die("shim id cannot be empty");
	struct buf in = { 0 };
	read_stdin(&in);
	/* containerd >= 2.3 sends BootstrapParams (and still the flags and environment of before);
	 * earlier releases the runtime options, which start does not need (Create brings them too). */
	struct bootstrap_params bp;
	int boot = bootstrap_params_parse(buf_head(&in), in.len, o->id, o->namespace, &bp);
	enum transport want;
	char terr[256];
	if (transport_from_stdin(buf_head(&in), in.len, boot, &want, terr, sizeof terr) < 0)
		die("%s", terr);
	buf_free(&in);
	enum bootstrap_reply reply = boot ? REPLY_PROTO_V3 : bootstrap_legacy_reply(o->publish_binary);
	choose_transport(want, reply);
	const char *address = boot && bp.grpc_address[0] ? bp.grpc_address : o->address;
	const char *socket_dir = boot && bp.socket_dir[0] ? bp.socket_dir : SOCKET_DIR;
	if (boot) {
		const char *t = getenv("TTRPC_ADDRESS");
		/* the monitor and the daemon it may start inherit it */
		if ((!t || !*t) && bp.ttrpc_address[0] && setenv("TTRPC_ADDRESS", bp.ttrpc_address, 1) < 0)
			die("setenv: %s", strerror(errno));
	}

	if (o->bundle[0]) {
		if (fmt_path(mc.bundle, sizeof mc.bundle, "%s", o->bundle) < 0)
			die("bundle path too long");
	} else if (!getcwd(mc.bundle, sizeof mc.bundle)) {
		die("getcwd: %s", strerror(errno));
	}
	mc.namespace = o->namespace;
	mc.id = o->id;
	mc.debug = o->debug || (boot && bp.log_level <= -4); /* LOG_LEVEL_DEBUG or TRACE */

	char *group = group_id(mc.bundle, o->id);
	char input[3 * PATH_MAX];
	if (path_join3(input, sizeof input, address, o->namespace, group) < 0)
		die("socket hash input too long");
	/* a gRPC monitor is not one a ttrpc container of the same group may join, nor the reverse */
	if (mc.grpc && strlen(input) + 6 > sizeof input)
		die("socket hash input too long");
	if (mc.grpc)
		strcat(input, "#grpc");
	free(group);
	sha256_hex(input, strlen(input), mc.monitor_id);
	int r = o->socket[0] ? fmt_path(mc.sock_path, sizeof mc.sock_path, "%s", o->socket)
			     : fmt_path(mc.sock_path, sizeof mc.sock_path, "%s/%s", socket_dir, mc.monitor_id);
	if (r < 0 || fmt_path(mc.shim_address, sizeof mc.shim_address, "unix://%s", mc.sock_path) < 0)
		die("socket path too long");

	if (daemon_cfg_init(&mc.daemon, address) < 0)
		die("daemon paths: %s", strerror(errno));
	bootstrap_params_free(&bp); /* address and socket_dir are not used after this */

	if (claim_socket()) {
		/* another monitor serves this group: point this bundle at it */
		if (write_address(mc.bundle, mc.shim_address, reply) < 0)
			die("write %s/address: %s", mc.bundle, strerror(errno));
		if (write_reply(reply) < 0)
			die("write address to stdout: %s", strerror(errno));
		return 0;
	}

	int dfd = daemon_connect(&mc.daemon);
	if (dfd >= 0) {
		close(dfd);
	} else if (dfd != -EAGAIN) {
		int rc = daemon_spawn(&mc.daemon);
		if (rc < 0)
			fail_owned("start the tsrt daemon", -rc);
	}

	/* before the fork, so that a failure leaves no monitor behind */
	if (write_address(mc.bundle, mc.shim_address, reply) < 0)
		fail_owned("write address file", errno);

	pid_t pid = fork();
	if (pid < 0)
		fail_owned("fork monitor", errno);
	if (pid == 0)
		monitor_run(&mc);
	close(mc.listen_fd);
	if (write_reply(reply) < 0) {
		int e = errno;
		kill(pid, SIGTERM); /* the monitor removes the socket on its way out */
		die("write address to stdout: %s", strerror(e));
	}
	return 0;
}
