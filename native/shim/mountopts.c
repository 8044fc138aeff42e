#include "mountopts.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

struct flag_opt {
	const char *name;
	int clear;           /* 1: the option clears the flag */
	unsigned long flag;
};

static const struct flag_opt flag_opts[] = {
	{ "async", 1, MS_SYNCHRONOUS },
	{ "atime", 1, MS_NOATIME },
	{ "bind", 0, MS_BIND },
	{ "defaults", 0, 0 },
	{ "dev", 1, MS_NODEV },
	{ "diratime", 1, MS_NODIRATIME },
	{ "dirsync", 0, MS_DIRSYNC },
	{ "exec", 1, MS_NOEXEC },
	{ "iversion", 0, MS_I_VERSION },
	{ "lazytime", 0, MS_LAZYTIME },
	{ "loud", 1, MS_SILENT },
	{ "mand", 0, MS_MANDLOCK },
	{ "noatime", 0, MS_NOATIME },
	{ "nodev", 0, MS_NODEV },
	{ "nodiratime", 0, MS_NODIRATIME },
	{ "noexec", 0, MS_NOEXEC },
	{ "noiversion", 1, MS_I_VERSION },
	{ "nolazytime", 1, MS_LAZYTIME },
	{ "nomand", 1, MS_MANDLOCK },
	{ "norelatime", 1, MS_RELATIME },
	{ "nostrictatime", 1, MS_STRICTATIME },
	{ "nosuid", 0, MS_NOSUID },
	{ "rbind", 0, MS_BIND | MS_REC },
	{ "relatime", 0, MS_RELATIME },
	{ "remount", 0, MS_REMOUNT },
	{ "ro", 0, MS_RDONLY },
	{ "rw", 1, MS_RDONLY },
	{ "silent", 0, MS_SILENT },
	{ "strictatime", 0, MS_STRICTATIME },
	{ "suid", 1, MS_NOSUID },
	{ "sync", 0, MS_SYNCHRONOUS },
};

static const struct flag_opt prop_opts[] = {
	{ "private", 0, MS_PRIVATE },
	{ "rprivate", 0, MS_PRIVATE | MS_REC },
	{ "shared", 0, MS_SHARED },
	{ "rshared", 0, MS_SHARED | MS_REC },
	{ "slave", 0, MS_SLAVE },
	{ "rslave", 0, MS_SLAVE | MS_REC },
	{ "unbindable", 0, MS_UNBINDABLE },
	{ "runbindable", 0, MS_UNBINDABLE | MS_REC },
};

static const struct flag_opt *find(const struct flag_opt *t, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(t[i].name) == len && memcmp(t[i].name, s, len) == 0)
			return &t[i];
	return NULL;
}

int mountopts_parse(const char *options, struct mount_opts *out)
{
	size_t total = options ? strlen(options) : 0;
	out->flags = 0;
	out->prop = 0;
	out->data = xrealloc(NULL, total + 1);
	size_t w = 0;
	const char *p = options ? options : "";
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const struct flag_opt *f;
		if (len == 0) {
			/* empty element: ignore */
		} else if ((f = find(flag_opts, sizeof flag_opts / sizeof *flag_opts, p, len))) {
			if (f->clear)
				out->flags &= ~f->flag;
			else
				out->flags |= f->flag;
		} else if ((f = find(prop_opts, sizeof prop_opts / sizeof *prop_opts, p, len))) {
			out->prop |= f->flag;
		} else if (len == 4 && memcmp(p, "loop", 4) == 0) {
			mountopts_free(out);
			errno = EOPNOTSUPP;
			return -1;
		} else {
			if (w > 0)
				out->data[w++] = ',';
			memcpy(out->data + w, p, len);
			w += len;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	out->data[w] = '\0';
	return 0;
}

void mountopts_free(struct mount_opts *o)
{
	free(o->data);
	o->data = NULL;
}

/* Flags a bind mount ignores on the first call and that need a remount to take effect. */
#define BIND_REMOUNT_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | \
			    MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

int mount_apply(const char *type, const char *source, const char *target, const char *options,
		const char **step)
{
	struct mount_opts o;
	*step = "parse";
	if (mountopts_parse(options, &o) < 0)
		return -errno;
	const char *data = o.data[0] ? o.data : NULL;
	const char *fstype = (type && type[0]) ? type : NULL;
	const char *src = (source && source[0]) ? source : "none";
	/* Options made only of propagation changes do not mount anything new. */
	int prop_only = o.prop && o.flags == 0 && !data && (!fstype || strcmp(fstype, "none") == 0);
	int rc = 0;
	if (!prop_only) {
		*step = "mount";
		if (mount(src, target, fstype, o.flags, data) < 0) {
			rc = -errno;
			goto out;
		}
		if ((o.flags & MS_BIND) && !(o.flags & MS_REMOUNT) && (o.flags & BIND_REMOUNT_FLAGS)) {
			*step = "remount";
			unsigned long rf = (o.flags & ~MS_REC) | MS_BIND | MS_REMOUNT;
			if (mount(NULL, target, NULL, rf, NULL) < 0) {
				rc = -errno;
				/* never leave a writable bind where a read-only one was asked for */
				(void)umount2(target, MNT_DETACH);
				goto out;
			}
		}
	}
	if (o.prop) {
		*step = "propagation";
		if (mount(NULL, target, NULL, o.prop, NULL) < 0)
			rc = -errno;
	}
out:
	mountopts_free(&o);
	return rc;
}

int umount_all(const char *target)
{
	for (int i = 0; i < 100000; i++) {
		if (umount2(target, MNT_DETACH) == 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno == EINVAL || errno == ENOENT)
			return 0;
		return -errno;
	}
	return -ELOOP;
}
