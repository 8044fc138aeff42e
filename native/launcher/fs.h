/* The container's filesystem, in the init's new mount namespace: rootprop, the rootfs made a mount
 * point, mounts, devices, symlinks, mountprop, the cwd made, pivot_root (or MS_MOVE + chroot),
 * readonlyroot, masked and read-only paths. */
#ifndef TSRT_LAUNCH_FS_H
#define TSRT_LAUNCH_FS_H

#include "plan.h"

/* Everything up to and including the pivot and the path steps after it, in the documented order. */
int fs_setup(const struct plan *p);

#endif
