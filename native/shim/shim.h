/* Command-line options, the two actions containerd runs and the -info flag. */
#ifndef TSRT_SHIM_H
#define TSRT_SHIM_H

#define SHIM_VERSION "0.1.0"

struct shim_opts {
	const char *namespace;
	const char *address;
	const char *publish_binary;
	const char *id;
	const char *bundle;
	const char *socket;
	int debug;
	int version;
	int info;
};

/* Both return the process exit code; fatal errors exit through die(). */
int cmd_start(const struct shim_opts *o);
int cmd_delete(const struct shim_opts *o);
/* -info: a containerd.types.RuntimeInfo for the runtime options on stdin (info.c). */
int cmd_info(void);

#endif
