/* The container's filesystem, in the init's new mount namespace: rootprop, the rootfs made a mount
 * point, mounts, devices, symlinks, mountprop, the cwd made, pivot_root (or MS_MOVE + chroot),
 * readonlyroot, masked and read-only paths. */
#ifndef TSRT_LAUNCH_FS_H
#define TSRT_LAUNCH_FS_H

#include "plan.h"

/* Everything up to and including the pivot, in the documented order. */
int fs_setup(const struct plan *p);

/* After the pivot, once hostname and sysctls are written (a sysctl needs /proc/sys writable, which the
 * usual read-only paths take away): readonlyroot, masked paths, read-only paths. */
int fs_protect(const struct plan *p);

#endif
