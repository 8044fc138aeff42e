/* Which containerd is calling: the Go build information of its executable. */
#ifndef TSRT_GOBUILD_H
#define TSRT_GOBUILD_H

#include <stddef.h>

/* 1 when the executable at path (containerd's -publish-binary) is a Go program whose main package lies
 * in module github.com/containerd/containerd/vN with N >= 2, i.e. containerd 2.x or later; 0 when it is
 * not, or cannot be read. The running image is read through /proc/<parent>/exe when the parent process
 * runs that path, so a binary replaced on disk by an upgrade does not mislead. */
int containerd_major_ge2(const char *path);

/* The same test on a module path line of Go's build info ("path\t<main package>"): exposed for tests. */
int gobuild_main_is_containerd_ge2(const char *pkg, size_t len);

#endif
