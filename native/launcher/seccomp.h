/* The seccomp filter (docs/native-launcher.md, `seccomp-*` steps), built with libseccomp. */
#ifndef TSRT_LAUNCH_SECCOMP_H
#define TSRT_LAUNCH_SECCOMP_H

#include "plan.h"

/* Builds the filter of the plan (nothing without a seccomp-default step), in memory: a rule of a
 * syscall this libseccomp does not know is skipped with a warning line. -1 with err_line set. */
int seccomp_build(const struct plan *p);

/* Loads the built filter into the calling thread (no-op when none, or when already loaded). */
int seccomp_apply(void);

#endif
