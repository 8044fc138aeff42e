/* The device filter of a cgroup v2 container: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, made
 * from the plan's `devfilter` and `devex` steps and attached to the container's cgroup before the process
 * joins it. The backend has already reduced the spec's rules to what cgroup v1 would hold (a default and
 * exceptions, src/cgroups/devices.ts), so the program only matches a device against the exceptions. */
#ifndef TSRT_LAUNCH_DEVFILTER_H
#define TSRT_LAUNCH_DEVFILTER_H

struct plan;

/* Loads the program and attaches it to the plan's cgroup (BPF_F_ALLOW_MULTI); nothing without a
 * devfilter step. -1 with err_line set on failure. */
int devfilter_attach(const struct plan *p);

#endif
