/* tsrt-launch serve: the exec server, stdin its channel to the monitor (serve.c). */
#ifndef TSRT_LAUNCH_SERVE_H
#define TSRT_LAUNCH_SERVE_H

#include "plan.h"

/* Joins what the plan names and serves requests until the channel ends: 0 then, -1 (err_line) when
 * it cannot start or the channel fails. */
int serve(const struct plan *p);

#endif
