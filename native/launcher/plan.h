/* The plan (docs/native-launcher.md): parsed whole, strictly, into one struct before anything is done.
 * Every string is the decoded field (percent-encoding undone, `-` made empty), NUL-terminated. */
#ifndef TSRT_LAUNCH_PLAN_H
#define TSRT_LAUNCH_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

enum ns_type { NS_USER, NS_PID, NS_UTS, NS_IPC, NS_NET, NS_CGROUP, NS_TIME, NS_MOUNT, NS_COUNT };
/* The order above is the order of setns: user first (it gives the rights for the others), mount last
 * (it changes the root that later paths would be looked up in). */

enum cap_set { CAP_BOUNDING, CAP_EFFECTIVE, CAP_INHERITABLE, CAP_PERMITTED, CAP_AMBIENT, CAP_SETS };

struct strv {
	char **v;
	size_t n;
};

struct idmap_line {
	unsigned long container, host, size;
};

struct pmount {
	char *dest, *type, *source, *data; /* data NULL for none */
	unsigned long flags;
};

struct pmountprop {
	char *dest;
	unsigned long flags;
};

struct pdevice {
	char *path;
	char kind; /* 'c', 'b' or 'p' */
	unsigned int major, minor;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

struct plink {
	char *target, *linkpath;
};

struct psysctl {
	char *key, *value;
};

struct prlimit_step {
	int resource;
	rlim_t soft, hard;
};

/* seccomp: actions as the plan names them (docs/native-launcher.md), kept as names; seccomp.c maps
 * them to libseccomp's. */
struct pseccomp_arg {
	unsigned int index;
	char *op;
	uint64_t value, value_two;
};

struct pseccomp_rule {
	char *action, *name;
	unsigned int ret;
	struct pseccomp_arg args[6];
	size_t nargs;
};

/* An exception of the cgroup v2 device filter (`devex` step). */
struct pdevex {
	char type; /* 'a', 'b' or 'c' */
	int has_major, has_minor; /* 0: any */
	unsigned int major, minor;
	char access[4]; /* of "rwm" */
};

struct plan {
	char *errfile, *pidfile, *rootfs, *console, *execfifo, *hostname, *domainname, *cwd, *keyring;
	struct strv cgroups, masks, readonlys, env, argv;

	int ns_given[NS_COUNT];
	char *ns_path[NS_COUNT]; /* NULL: a new namespace */

	struct idmap_line *uidmap, *gidmap;
	size_t nuidmap, ngidmap;
	int setgroups; /* -1 not given, 0 deny, 1 allow */

	int has_oomscore;
	int oomscore;

	int has_rootprop;
	unsigned long rootprop;

	struct pmount *mounts;
	size_t nmounts;
	struct pmountprop *mountprops;
	size_t nmountprops;
	struct pdevice *devices;
	size_t ndevices;
	struct plink *symlinks;
	size_t nsymlinks;
	struct psysctl *sysctls;
	size_t nsysctls;
	struct prlimit_step *rlimits;
	size_t nrlimits;

	int pivot; /* 1 unless `pivot 0` */
	int readonlyroot, nonewprivs;

	int has_user;
	uid_t uid;
	gid_t gid;

	int has_groups;
	gid_t *groups;
	size_t ngroups;

	int has_umask;
	mode_t umask;

	int has_caps[CAP_SETS];
	uint64_t caps[CAP_SETS];

	int has_seccomp; /* a seccomp-default step */

	char *devfilter_dir; /* the cgroup v2 directory to attach the device filter to (NULL: none) */
	int devfilter_allow; /* the default: 1 allow, 0 deny */
	struct pdevex *devexs;
	size_t ndevexs;
	char *seccomp_action;
	unsigned int seccomp_ret;
	struct strv seccomp_arches, seccomp_flags;
	struct pseccomp_rule *seccomp_rules;
	size_t nseccomp_rules;
};

/* A seccomp action name of the plan is known (`allow`, `errno`, ...). */
int seccomp_action_known(const char *name);
/* A comparison name of the plan is known (`eq`, `masked-eq`, ...). */
int seccomp_op_known(const char *name);
/* A flag name of the plan is known (`tsync`, `log`, `spec-allow`). */
int seccomp_flag_known(const char *name);

/* Reads and parses the plan file; -1 with err_line set on any error. p->errfile is set when the
 * file names one, even when the parse fails (so that the error can be written there). */
int plan_load(const char *path, struct plan *p);
/* The same for a plan in memory: buf (malloc'd, len bytes) is the parser's from here on. */
int plan_parse(char *buf, size_t len, struct plan *p);

/* The namespace type's name (`pid`, `mount`, ...). */
const char *ns_name(enum ns_type t);

#endif
