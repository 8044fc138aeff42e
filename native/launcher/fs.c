#include "fs.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PROPAGATION (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

/* Opens path relative to the rootfs as if rootfs were "/": absolute symlinks and ".." stay inside it
 * (RESOLVE_IN_ROOT), magic links (/proc/<pid>/fd/...) are refused. */
static int open_in_root(int rootfd, const char *path, int flags)
{
	while (*path == '/')
		path++;
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
}

/* Whether path (inside the root) leads to the same file as fd without following any symbolic link. A
 * proc or sysfs mount point reached through a link could sit in a volume another container shares,
 * which could swap it before the masked and read-only paths are applied by path. */
static int reached_without_symlinks(int rootfd, const char *path, int fd)
{
	while (*path == '/')
		path++;
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
	};
	int direct = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
	if (direct < 0)
		return 0;
	struct stat a, b;
	int same = fstat(direct, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	close(direct);
	return same;
}

/* Opens the directory path (inside the root), making every missing component a directory (0755). */
static int mkdirs_in_root(int rootfd, const char *path)
{
	int fd = open_in_root(rootfd, path, O_PATH | O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char *dup = strdup(path);
	if (!dup)
		return -1;
	char *slash = strrchr(dup, '/');
	const char *base = dup;
	int parent;
	if (slash) {
		*slash = '\0';
		base = slash + 1;
		parent = mkdirs_in_root(rootfd, dup);
	} else {
		parent = open_in_root(rootfd, ".", O_PATH | O_DIRECTORY);
	}
	if (parent < 0) {
		free(dup);
		return -1;
	}
	if (*base && mkdirat(parent, base, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		close(parent);
		free(dup);
		errno = e;
		return -1;
	}
	close(parent);
	free(dup);
	return open_in_root(rootfd, path, O_PATH | O_DIRECTORY);
}

/* Splits path into a parent directory fd (made if missing) and its last component in *base
 * (a pointer into path). Trailing slashes are not allowed here (the plan's paths have none). */
static int parent_in_root(int rootfd, const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*base = path;
		return open_in_root(rootfd, ".", O_PATH | O_DIRECTORY);
	}
	*base = slash + 1;
	char *dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -1;
	int fd = mkdirs_in_root(rootfd, dir);
	int e = errno;
	free(dir);
	errno = e;
	return fd;
}

enum kind { WANT_DIR, WANT_FILE };

/* Opens the mount point dest (inside the root) with O_PATH, made when missing as a directory or an
 * empty file. */
static int mountpoint_in_root(int rootfd, const char *dest, enum kind kind)
{
	int fd = open_in_root(rootfd, dest, O_PATH);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (kind == WANT_DIR)
		return mkdirs_in_root(rootfd, dest);
	const char *base;
	int parent = parent_in_root(rootfd, dest, &base);
	if (parent < 0)
		return -1;
	int f = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	int e = errno;
	close(parent);
	if (f < 0 && e != EEXIST) {
		errno = e;
		return -1;
	}
	if (f >= 0)
		close(f);
	return open_in_root(rootfd, dest, O_PATH);
}

static void fdpath(char *buf, size_t n, int fd)
{
	snprintf(buf, n, "/proc/self/fd/%d", fd);
}

/* The MS_ flags of the mount at path that a remount must keep (a mount locked in a user namespace
 * refuses to lose them: EPERM). */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return 0;
	unsigned long f = 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* MS_REMOUNT|MS_BIND with flags; on EPERM once more with the mount's own flags kept. */
static int remount_bind(const char *path, unsigned long flags)
{
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | kept_flags(path), NULL);
}

static int do_mount(int rootfd, const struct pmount *m)
{
	unsigned long prop = m->flags & PROPAGATION;
	unsigned long flags = m->flags & ~PROPAGATION;
	int bind = (flags & MS_BIND) != 0;
	enum kind kind = WANT_DIR;
	if (bind) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			return fail("mount", errno, "%s: source %s", m->dest, m->source);
		if (!S_ISDIR(st.st_mode))
			kind = WANT_FILE;
	}
	int fd = mountpoint_in_root(rootfd, m->dest, kind);
	if (fd < 0)
		return fail("mount", errno, "%s: mount point", m->dest);
	if (!bind && (strcmp(m->type, "proc") == 0 || strcmp(m->type, "sysfs") == 0) && !reached_without_symlinks(rootfd, m->dest, fd)) {
		close(fd);
		return fail("mount", ELOOP, "%s: a %s mount point must not be reached through a symbolic link", m->dest, m->type);
	}
	char target[64];
	fdpath(target, sizeof target, fd);
	const char *src = m->source[0] ? m->source : "none";
	int r;
	if (bind)
		r = mount(src, target, NULL, MS_BIND | (flags & MS_REC), NULL);
	else
		r = mount(src, target, m->type[0] ? m->type : NULL, flags, m->data);
	int e = errno;
	close(fd);
	if (r < 0)
		return fail("mount", e, "%s: mount %s (%s) flags 0x%lx", m->dest, src, m->type, flags);

	unsigned long rest = flags & ~(MS_BIND | MS_REC);
	if (!(bind && rest) && !prop)
		return 0;
	/* Reopened: the first fd is the mount point under the new mount, the next calls need the mount. */
	fd = open_in_root(rootfd, m->dest, O_PATH);
	if (fd < 0)
		return fail("mount", errno, "%s: reopen", m->dest);
	fdpath(target, sizeof target, fd);
	if (bind && rest && remount_bind(target, rest) < 0) {
		e = errno;
		close(fd);
		return fail("mount", e, "%s: remount flags 0x%lx", m->dest, rest);
	}
	if (prop && mount(NULL, target, NULL, prop | (flags & MS_REC), NULL) < 0) {
		e = errno;
		close(fd);
		return fail("mount", e, "%s: propagation 0x%lx", m->dest, prop);
	}
	close(fd);
	return 0;
}

static int do_device(int rootfd, const struct pdevice *d)
{
	const char *base;
	int parent = parent_in_root(rootfd, d->path, &base);
	if (parent < 0)
		return fail("device", errno, "%s: parent directory", d->path);
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		close(parent);
		return fail("device", EINVAL, "%s", d->path);
	}
	mode_t type = d->kind == 'c' ? S_IFCHR : d->kind == 'b' ? S_IFBLK : S_IFIFO;
	if (unlinkat(parent, base, 0) < 0 && errno != ENOENT) {
		int e = errno;
		close(parent);
		return fail("device", e, "%s: remove the existing file", d->path);
	}
	if (mknodat(parent, base, type | (d->mode & 07777), makedev(d->major, d->minor)) == 0) {
		int r = 0;
		if (fchownat(parent, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = fail("device", errno, "%s: chown %u:%u", d->path, (unsigned)d->uid, (unsigned)d->gid);
		else if (fchmodat(parent, base, d->mode & 07777, 0) < 0)
			r = fail("device", errno, "%s: chmod %o", d->path, (unsigned)(d->mode & 07777));
		close(parent);
		return r;
	}
	if (errno != EPERM) {
		int e = errno;
		close(parent);
		return fail("device", e, "%s: mknod", d->path);
	}
	/* In a user namespace mknod is refused: bind the host's node of the same path instead. */
	int f = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (f < 0) {
		int e = errno;
		close(parent);
		return fail("device", e, "%s: bind mount point", d->path);
	}
	close(f);
	int fd = openat(parent, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	close(parent);
	if (fd < 0)
		return fail("device", errno, "%s: bind mount point", d->path);
	char target[64];
	fdpath(target, sizeof target, fd);
	int r = mount(d->path, target, NULL, MS_BIND, NULL);
	int e = errno;
	close(fd);
	if (r < 0)
		return fail("device", e, "%s: bind of the host node", d->path);
	return 0;
}

static int do_symlink(int rootfd, const struct plink *l)
{
	const char *base;
	int parent = parent_in_root(rootfd, l->linkpath, &base);
	if (parent < 0)
		return fail("symlink", errno, "%s: parent directory", l->linkpath);
	int r = symlinkat(l->target, parent, base);
	int e = errno;
	close(parent);
	if (r < 0 && e != EEXIST)
		return fail("symlink", e, "%s -> %s", l->linkpath, l->target);
	return 0;
}

static int do_mountprop(int rootfd, const struct pmountprop *m)
{
	int fd = open_in_root(rootfd, m->dest, O_PATH);
	if (fd < 0)
		return fail("mountprop", errno, "%s", m->dest);
	char target[64];
	fdpath(target, sizeof target, fd);
	int r = mount(NULL, target, NULL, m->flags, NULL);
	int e = errno;
	close(fd);
	if (r < 0)
		return fail("mountprop", e, "%s: flags 0x%lx", m->dest, m->flags);
	return 0;
}

static int do_pivot(int rootfd, int pivot)
{
	if (fchdir(rootfd) < 0)
		return fail("pivot", errno, "chdir to the rootfs");
	if (pivot) {
		/* pivot_root(".", "."): the old root ends up mounted on top of the new one (see
		 * pivot_root(2)); made a slave so that its unmount does not propagate, then detached. */
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			return fail("pivot", errno, "pivot_root");
		if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
			return fail("pivot", errno, "make the old root a slave");
		if (umount2(".", MNT_DETACH) < 0)
			return fail("pivot", errno, "detach the old root");
	} else {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			return fail("pivot", errno, "move the rootfs onto /");
		if (chroot(".") < 0)
			return fail("pivot", errno, "chroot");
	}
	if (chdir("/") < 0)
		return fail("pivot", errno, "chdir /");
	return 0;
}

static int do_mask(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return fail("mask", errno, "%s", path);
	}
	int r;
	if (S_ISDIR(st.st_mode))
		r = mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL); /* empty and read-only: runc's mount, flag for flag */
	else
		r = mount("/dev/null", path, NULL, MS_BIND, NULL);
	if (r < 0)
		return fail("mask", errno, "%s", path);
	return 0;
}

static int do_readonly(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return fail("readonly", errno, "%s", path);
	}
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail("readonly", errno, "%s: bind", path);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(path), NULL) < 0)
		return fail("readonly", errno, "%s: remount read-only", path);
	return 0;
}

int fs_setup(const struct plan *p)
{
	unsigned long prop = p->has_rootprop ? p->rootprop : MS_REC | MS_PRIVATE;
	if (mount(NULL, "/", NULL, prop, NULL) < 0)
		return fail("rootprop", errno, "flags 0x%lx", prop);

	struct stat st;
	if (stat(p->rootfs, &st) < 0)
		return fail("rootfs", errno, "%s", p->rootfs);
	if (!S_ISDIR(st.st_mode))
		return fail("rootfs", ENOTDIR, "%s", p->rootfs);
	/* pivot_root and MS_MOVE need the rootfs to be a mount point. */
	if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail("rootfs", errno, "%s: bind onto itself", p->rootfs);
	int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return fail("rootfs", errno, "%s", p->rootfs);

	int r = 0;
	for (size_t i = 0; r == 0 && i < p->nmounts; i++)
		r = do_mount(rootfd, &p->mounts[i]);
	for (size_t i = 0; r == 0 && i < p->ndevices; i++)
		r = do_device(rootfd, &p->devices[i]);
	for (size_t i = 0; r == 0 && i < p->nsymlinks; i++)
		r = do_symlink(rootfd, &p->symlinks[i]);
	for (size_t i = 0; r == 0 && i < p->nmountprops; i++)
		r = do_mountprop(rootfd, &p->mountprops[i]);
	if (r == 0 && p->cwd && p->cwd[0]) {
		/* Made as root before the pivot, so that a read-only root or the user's rights do not stop it. */
		int fd = mkdirs_in_root(rootfd, p->cwd);
		if (fd < 0)
			r = fail("cwd", errno, "%s: create", p->cwd);
		else
			close(fd);
	}
	if (r == 0)
		r = do_pivot(rootfd, p->pivot);
	close(rootfd);
	return r < 0 ? -1 : 0;
}

int fs_protect(const struct plan *p)
{
	if (p->readonlyroot && remount_bind("/", MS_RDONLY | kept_flags("/")) < 0)
		return fail("readonlyroot", errno, "remount / read-only");
	/* read-only paths, then masked ones, as runc does: the container's mount table reads the same */
	for (size_t i = 0; i < p->readonlys.n; i++)
		if (do_readonly(p->readonlys.v[i]) < 0)
			return -1;
	for (size_t i = 0; i < p->masks.n; i++)
		if (do_mask(p->masks.v[i]) < 0)
			return -1;
	return 0;
}
