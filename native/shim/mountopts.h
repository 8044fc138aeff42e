/* fstab-style mount options, mount(2) and recursive lazy unmount. */
#ifndef TSRT_MOUNTOPTS_H
#define TSRT_MOUNTOPTS_H

struct mount_opts {
	unsigned long flags; /* MS_* flags for the main mount call */
	unsigned long prop;  /* propagation flags (MS_PRIVATE, ..., with MS_REC), applied separately */
	char *data;          /* malloc'd comma-joined remaining options ("" when none) */
};

/* Split options (comma-joined, may be NULL or empty). 0, or -1 with errno EOPNOTSUPP for
 * options containerd handles in user space and tsrt does not ("loop"). */
int mountopts_parse(const char *options, struct mount_opts *out);
void mountopts_free(struct mount_opts *o);

/* Mount source on target. For a bind mount with ro/nosuid/nodev/noexec/atime options the
 * bind is followed by a MS_REMOUNT|MS_BIND, and propagation options by a separate call.
 * 0 or -errno; *step names the failing step ("parse", "mount", "remount", "propagation"). */
int mount_apply(const char *type, const char *source, const char *target, const char *options,
		const char **step);

/* umount2(target, MNT_DETACH) until nothing is mounted there any more. 0 or -errno. */
int umount_all(const char *target);

#endif
