#include "proc.h"
#include "err.h"
#include "seccomp.h"

#include <errno.h>
#include <linux/keyctl.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int uts_sysctl_setup(const struct plan *p)
{
	if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
		return fail("hostname", errno, "%s", p->hostname);
	if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
		return fail("domainname", errno, "%s", p->domainname);
	for (size_t i = 0; i < p->nsysctls; i++) {
		const struct psysctl *s = &p->sysctls[i];
		char path[4096];
		if (snprintf(path, sizeof path, "/proc/sys/%s", s->key) >= (int)sizeof path)
			return fail("sysctl", ENAMETOOLONG, "%s", s->key);
		for (char *c = path + 10; *c; c++)
			if (*c == '.')
				*c = '/';
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return fail("sysctl", errno, "%s", path);
		size_t n = strlen(s->value);
		ssize_t w = write(fd, s->value, n);
		int e = errno;
		close(fd);
		if (w != (ssize_t)n)
			return fail("sysctl", w < 0 ? e : EIO, "%s = %s", path, s->value);
	}
	return 0;
}

int console_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return fail("console", ENAMETOOLONG, "%s", path);
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("console", errno, "socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(s);
		return fail("console", e, "connect %s", path);
	}
	return s;
}

int console_setup(int sock)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return fail("console", errno, "/dev/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0) {
		int e = errno;
		close(master);
		return fail("console", e, "unlock the pty");
	}
	/* The slave through the master (no path lookup in a /dev/pts that may not be this ptmx's). */
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		int e = errno;
		close(master);
		return fail("console", e, "open the pty slave");
	}

	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &master, sizeof master);
	ssize_t w;
	do
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	int e = errno;
	close(master);
	close(sock);
	if (w < 0) {
		close(slave);
		return fail("console", e, "send the pty master");
	}

	if (setsid() < 0 && errno != EPERM) {
		e = errno;
		close(slave);
		return fail("console", e, "setsid");
	}
	if (ioctl(slave, TIOCSCTTY, 0) < 0) {
		e = errno;
		close(slave);
		return fail("console", e, "make the pty the controlling terminal");
	}
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0) {
			e = errno;
			close(slave);
			return fail("console", e, "dup2 the pty onto fd %d", fd);
		}
	if (slave > 2)
		close(slave);
	return 0;
}

/* Whether cap is known to this kernel (PR_CAPBSET_READ says EINVAL beyond the last one). */
static int cap_known(int cap)
{
	return prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0) >= 0;
}

/* Drops what mask leaves out, one PR_CAPBSET_READ per capability: it says whether the capability is in
 * the set, or EINVAL beyond the last one this kernel knows. */
static int caps_bounding(uint64_t mask)
{
	for (int cap = 0; cap < 64; cap++) {
		int in = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0);
		if (in < 0)
			break;
		if (in == 1 && !(mask & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) < 0)
			return fail("caps", errno, "drop %d from the bounding set", cap);
	}
	return 0;
}

static int caps_set(const struct plan *p)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	uint64_t e = p->caps[CAP_EFFECTIVE], pe = p->caps[CAP_PERMITTED], in = p->caps[CAP_INHERITABLE];
	d[0].effective = (uint32_t)e, d[1].effective = (uint32_t)(e >> 32);
	d[0].permitted = (uint32_t)pe, d[1].permitted = (uint32_t)(pe >> 32);
	d[0].inheritable = (uint32_t)in, d[1].inheritable = (uint32_t)(in >> 32);
	if (syscall(SYS_capset, &hdr, d) < 0)
		return fail("caps", errno, "capset effective %llx permitted %llx inheritable %llx",
			    (unsigned long long)e, (unsigned long long)pe, (unsigned long long)in);
	return 0;
}

static int caps_ambient(uint64_t mask)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return fail("caps", errno, "clear the ambient set");
	/* only the capabilities asked for are looked at; the known ones are numbered without a gap */
	for (int cap = 0; cap < 64; cap++) {
		if (!(mask & (1ULL << cap)))
			continue;
		if (!cap_known(cap))
			break;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap, 0, 0) < 0)
			return fail("caps", errno, "raise %d in the ambient set", cap);
	}
	return 0;
}

static const char *env_get(const struct plan *p, const char *key)
{
	size_t k = strlen(key);
	const char *v = NULL;
	for (size_t i = 0; i < p->env.n; i++)
		if (strncmp(p->env.v[i], key, k) == 0 && p->env.v[i][k] == '=')
			v = p->env.v[i] + k + 1; /* the last one wins, as getenv of execve'd programs sees it */
	return v;
}

static char exe_path[4096];

/* Whether path is a file exec may run, as Go's exec.LookPath (which runc uses) judges it: not a directory,
 * some execute bit set; else the errno and, through *stat_failed, whether stat itself failed. */
static int runnable(const char *path, int *stat_failed)
{
	struct stat st;
	*stat_failed = 0;
	if (stat(path, &st) < 0) {
		*stat_failed = 1;
		return errno;
	}
	if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111))
		return EACCES;
	return 0;
}

/* argv[0] as a path: itself when it has a '/', else the first runnable file on PATH (an empty entry is
 * "."). The failures read as runc's. */
static int lookup(const struct plan *p)
{
	const char *name = p->argv.v[0];
	int stat_failed, e;
	if (strchr(name, '/')) {
		if (strlen(name) >= sizeof exe_path)
			return fail_program(name, "stat %s: %s", name, go_strerror(ENAMETOOLONG));
		if ((e = runnable(name, &stat_failed)))
			return stat_failed ? fail_program(name, "stat %s: %s", name, go_strerror(e))
					   : fail_program(name, "%s", go_strerror(e));
		strcpy(exe_path, name);
		return 0;
	}
	const char *path = env_get(p, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	if (name[0]) {
		for (const char *s = path;;) {
			const char *end = strchr(s, ':');
			size_t n = end ? (size_t)(end - s) : strlen(s);
			int k = n ? snprintf(exe_path, sizeof exe_path, "%.*s/%s", (int)n, s, name)
				  : snprintf(exe_path, sizeof exe_path, "./%s", name);
			if (k > 0 && (size_t)k < sizeof exe_path && runnable(exe_path, &stat_failed) == 0)
				return 0;
			if (!end)
				break;
			s = end + 1;
		}
	}
	return fail_program(name, "executable file not found in $PATH");
}

/* HOME=..., when the plan's env has none: the process's uid's home in the container's /etc/passwd (read
 * by hand, never through NSS, which would load the container's libraries into the launcher), else "/",
 * as runc sets it. */
static char home_env[4096 + 6];

static void find_home(uid_t uid)
{
	snprintf(home_env, sizeof home_env, "HOME=/");
	/* Non-blocking and a regular file only: an image's /etc/passwd that is a FIFO or a device must not
	 * hang the launcher; at most 1 MiB is read. */
	int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
		close(fd);
		return;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return;
	}
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		/* name:password:uid:gid:gecos:home:shell */
		char *field[7] = { 0 };
		char *s = line;
		int n = 0;
		for (; n < 7 && s; n++) {
			field[n] = s;
			s = strchr(s, ':');
			if (s)
				*s++ = '\0';
		}
		if (n < 6)
			continue;
		char *end;
		errno = 0;
		unsigned long u = strtoul(field[2], &end, 10);
		if (errno || end == field[2] || *end || u != (unsigned long)uid)
			continue;
		field[5][strcspn(field[5], "\n")] = '\0';
		if (field[5][0])
			snprintf(home_env, sizeof home_env, "HOME=%s", field[5]);
		break;
	}
	fclose(f);
}

/* /proc/self/setgroups says deny (only in a user namespace). */
static int setgroups_denied(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 && strncmp(buf, "deny", 4) == 0;
}

/* A session keyring of the container's own (by name, so that its execs join the same one), instead of
 * the monitor's, which every container would otherwise share: made possessor-all and searchable by its
 * user, as runc makes it. Before the seccomp filter, which may deny keyctl (containerd's default does). */
static int keyring_join(const struct plan *p)
{
	if (!p->keyring)
		return 0;
	long id = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, p->keyring, 0L, 0L, 0L);
	if (id < 0 && errno == ENOSYS)
		return 0; /* a kernel without keyrings has none to share either */
	if (id < 0)
		return fail("keyring", errno, "join session keyring %s", p->keyring);
	unsigned long perm = 0x3f000000UL /* possessor: all */ | 0x001b0000UL /* user: view, read, search, link */;
	if (syscall(SYS_keyctl, KEYCTL_SETPERM, id, perm, 0L, 0L) < 0)
		return fail("keyring", errno, "set the permissions of session keyring %s", p->keyring);
	return 0;
}

int proc_setup(const struct plan *p)
{
	if (keyring_join(p) < 0)
		return -1;
	if (!env_get(p, "HOME"))
		find_home(p->has_user ? p->uid : getuid());
	for (size_t i = 0; i < p->nrlimits; i++) {
		const struct prlimit_step *r = &p->rlimits[i];
		struct rlimit rl = { .rlim_cur = r->soft, .rlim_max = r->hard };
		if (setrlimit(r->resource, &rl) < 0)
			return fail("rlimit", errno, "resource %d", r->resource);
	}
	/* The filter is built here, before "ready", so that a rule libseccomp refuses is a set-up error. With
	 * no_new_privs it is loaded last, right before execve (proc_exec), as the unprivileged load it then
	 * is; without, loading needs CAP_SYS_ADMIN, so it is loaded now, before any capability is dropped,
	 * and the profile must allow what the launcher still does (prctl, capset, setgroups, setres[ug]id,
	 * chdir, the program's lookup, the report to the parent, the exec FIFO, execve), as with runc. */
	if (seccomp_build(p) < 0)
		return -1;
	if (!p->nonewprivs && seccomp_apply() < 0)
		return -1;
	/* The bounding set first: dropping needs CAP_SETPCAP, which the uid change may take away. */
	if (p->has_caps[CAP_BOUNDING] && caps_bounding(p->caps[CAP_BOUNDING]) < 0)
		return -1;
	int set_caps = p->has_caps[CAP_EFFECTIVE] || p->has_caps[CAP_PERMITTED] || p->has_caps[CAP_INHERITABLE];
	/* An empty list where setgroups(2) is denied (a user namespace whose gid map was written with
	 * setgroups deny) is already what the process has: nothing to drop, as runc skips it too. */
	if (p->has_groups && (p->ngroups > 0 || !setgroups_denied()) && setgroups(p->ngroups, p->groups) < 0)
		return fail("groups", errno, "setgroups (%zu gids)", p->ngroups);
	if (p->has_user) {
		/* Keep the permitted set across the change to a non-zero uid; capset sets it right after. */
		if ((set_caps || p->has_caps[CAP_AMBIENT]) && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return fail("user", errno, "PR_SET_KEEPCAPS");
		if (setresgid(p->gid, p->gid, p->gid) < 0)
			return fail("user", errno, "setresgid %u", (unsigned)p->gid);
		if (setresuid(p->uid, p->uid, p->uid) < 0)
			return fail("user", errno, "setresuid %u", (unsigned)p->uid);
		if ((set_caps || p->has_caps[CAP_AMBIENT]) && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return fail("user", errno, "PR_SET_KEEPCAPS");
	}
	if (p->has_umask)
		umask(p->umask);
	if (p->cwd && p->cwd[0] && chdir(p->cwd) < 0)
		return fail("cwd", errno, "%s", p->cwd);
	if (set_caps && caps_set(p) < 0)
		return -1;
	if (p->has_caps[CAP_AMBIENT] && caps_ambient(p->caps[CAP_AMBIENT]) < 0)
		return -1;
	if (p->nonewprivs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail("nonewprivs", errno, "PR_SET_NO_NEW_PRIVS");
	return lookup(p);
}

int proc_exec(const struct plan *p)
{
	char **argv = calloc(p->argv.n + 1, sizeof *argv);
	char **envp = calloc(p->env.n + 2, sizeof *envp);
	if (!argv || !envp)
		return fail("arg", ENOMEM, "argv");
	memcpy(argv, p->argv.v, p->argv.n * sizeof *argv);
	if (p->env.n)
		memcpy(envp, p->env.v, p->env.n * sizeof *envp);
	if (home_env[0])
		envp[p->env.n] = home_env;
	/* With no_new_privs the filter comes in here, last: only execve runs under it (which it must allow) */
	if (seccomp_apply() < 0) {
		free(argv);
		free(envp);
		return -1;
	}
	execve(exe_path, argv, envp);
	int e = errno;
	free(argv);
	free(envp);
	return fail("arg", e, "execve %s", exe_path);
}

static int fifo_dir = -1;
static char *fifo_base;

/* dirname/basename into a directory fd and a name. */
static int open_parent(const char *path, const char *step, char **base)
{
	const char *slash = strrchr(path, '/');
	const char *b = slash ? slash + 1 : path;
	if (!*b)
		return fail(step, EINVAL, "%s: no file name", path);
	*base = strdup(b);
	char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	if (!*base || !dir)
		return fail(step, ENOMEM, "%s", path);
	int fd = open(slash && slash == path ? "/" : dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int e = errno;
	free(dir);
	if (fd < 0)
		return fail(step, e, "%s: directory", path);
	return fd;
}

int fifo_prepare(const char *path)
{
	fifo_dir = open_parent(path, "execfifo", &fifo_base);
	if (fifo_dir < 0)
		return -1;
	/* Made here when missing, as runc makes its exec.fifo: the backend only names it. Mode 0622 whatever
	 * the umask: the init opens it after it has become the container's user, which may be an unprivileged
	 * uid, or root of a user namespace to whom the host's root owner is nobody. */
	if (mkfifoat(fifo_dir, fifo_base, 0622) < 0 && errno != EEXIST)
		return fail("execfifo", errno, "mkfifo %s", path);
	struct stat st;
	if (fstatat(fifo_dir, fifo_base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail("execfifo", errno, "%s", path);
	if (!S_ISFIFO(st.st_mode))
		return fail("execfifo", EINVAL, "%s: not a FIFO", path);
	if (fchmodat(fifo_dir, fifo_base, 0622, 0) < 0)
		return fail("execfifo", errno, "chmod %s", path);
	return 0;
}

int fifo_wait(void)
{
	int fd;
	do
		fd = openat(fifo_dir, fifo_base, O_WRONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return fail("execfifo", errno, "open %s", fifo_base);
	char b = '0';
	ssize_t w = write(fd, &b, 1);
	int e = errno;
	close(fd);
	close(fifo_dir);
	if (w != 1)
		return fail("execfifo", w < 0 ? e : EIO, "write %s", fifo_base);
	return 0;
}

static int pid_dir = -1;
static char *pid_base;

int pidfile_prepare(const char *path)
{
	pid_dir = open_parent(path, "pidfile", &pid_base);
	return pid_dir < 0 ? -1 : 0;
}

int pidfile_write(pid_t pid)
{
	if (pid_dir < 0)
		return 0;
	char tmp[4096], v[24];
	snprintf(tmp, sizeof tmp, ".%.200s.%d.tmp", pid_base, (int)getpid());
	int fd = openat(pid_dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return fail("pidfile", errno, "%s", tmp);
	int n = snprintf(v, sizeof v, "%d", (int)pid);
	ssize_t w = write(fd, v, (size_t)n);
	int e = errno;
	if (close(fd) < 0 && w == n)
		w = -1, e = errno;
	if (w != n) {
		unlinkat(pid_dir, tmp, 0);
		return fail("pidfile", w < 0 ? e : EIO, "write %s", tmp);
	}
	if (renameat(pid_dir, tmp, pid_dir, pid_base) < 0) {
		e = errno;
		unlinkat(pid_dir, tmp, 0);
		return fail("pidfile", e, "rename to %s", pid_base);
	}
	return 0;
}
