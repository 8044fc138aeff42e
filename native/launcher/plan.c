/* Parsing the plan: strict. A line is `step field...`, fields separated by exactly one space, every
 * field percent-encoded (docs/native-launcher.md, "Format"). Any deviation is an error naming the
 * step and the line; nothing is skipped. */
#include "plan.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLAN_MAX (16u << 20) /* a plan larger than this is refused */
#define FIELDS_MAX 4096

static const char *const ns_names[NS_COUNT] = {
	[NS_USER] = "user", [NS_PID] = "pid", [NS_UTS] = "uts", [NS_IPC] = "ipc",
	[NS_NET] = "net", [NS_CGROUP] = "cgroup", [NS_TIME] = "time", [NS_MOUNT] = "mount",
};

static const char *const cap_names[CAP_SETS] = {
	[CAP_BOUNDING] = "bounding", [CAP_EFFECTIVE] = "effective", [CAP_INHERITABLE] = "inheritable",
	[CAP_PERMITTED] = "permitted", [CAP_AMBIENT] = "ambient",
};

const char *ns_name(enum ns_type t)
{
	return ns_names[t];
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fail("plan", ENOMEM, "out of memory");
		err_report(err_line);
		_exit(1);
	}
	return q;
}

/* Appends one zeroed element to the array *arr of *n elements and returns it. */
#define PUSH(arr, n) (*(arr) = xrealloc(*(arr), (*(n) + 1) * sizeof **(arr)), \
		      memset(&(*(arr))[*(n)], 0, sizeof **(arr)), &(*(arr))[(*(n))++])

/* The step and line being parsed, for error messages. */
static const char *cur_step = "plan";
static int cur_line;

static int bad(const char *what, const char *field)
{
	return fail(cur_step, EINVAL, "line %d: %s \"%.200s\"", cur_line, what, field);
}

static int allowed(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("._/=,:@+-", c) != NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower-case hex is not the format */
}

/* Every decoded field, kept reachable for the process's life (the plan points into them; after an
 * error the ones no step took are still here, so that LeakSanitizer sees no leak). */
static struct {
	char **v;
	size_t n;
} fields_kept;
static char *plan_text;

static char *keep(char *s)
{
	*PUSH(&fields_kept.v, &fields_kept.n) = s;
	return s;
}

/* Decodes the raw field [s, s+len) into a new string; NULL (err_line set) when malformed. */
static char *decode(const char *s, size_t len)
{
	if (len == 0) {
		/* a trailing or doubled space: the empty string is written `-` */
		bad("empty field (write - for the empty string)", "");
		return NULL;
	}
	char *out = xrealloc(NULL, len + 1);
	if (len == 1 && s[0] == '-') {
		out[0] = '\0';
		return keep(out);
	}
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				char raw[256];
				snprintf(raw, sizeof raw, "%.*s", (int)(len < 200 ? len : 200), s);
				free(out);
				bad(hi == 0 && lo == 0 ? "field holds %00" : "bad percent escape in field", raw);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (allowed(c)) {
			out[o++] = (char)c;
		} else {
			char raw[256];
			snprintf(raw, sizeof raw, "%.*s", (int)(len < 200 ? len : 200), s);
			free(out);
			bad(len == 0 ? "empty field (write - for the empty string)" : "byte not allowed unencoded in field", raw);
			return NULL;
		}
	}
	out[o] = '\0';
	return keep(out);
}

/* Unsigned number in base 10, 8 or 16 (digits only: no sign, no prefix, no spaces), at most max. */
static int number(const char *s, int base, unsigned long long max, unsigned long long *out)
{
	if (!*s)
		return bad("bad number", s);
	unsigned long long v = 0;
	for (const char *c = s; *c; c++) {
		int d;
		if (*c >= '0' && *c <= '9')
			d = *c - '0';
		else if (base == 16 && *c >= 'a' && *c <= 'f')
			d = *c - 'a' + 10;
		else if (base == 16 && *c >= 'A' && *c <= 'F')
			d = *c - 'A' + 10;
		else
			return bad("bad number", s);
		if (d >= base || v > (max - (unsigned)d) / (unsigned)base)
			return bad(d >= base ? "bad number" : "number out of range", s);
		v = v * (unsigned)base + (unsigned)d;
	}
	*out = v;
	return 0;
}

static int u32(const char *s, unsigned int *out)
{
	unsigned long long v;
	if (number(s, 10, 0xffffffffULL, &v) < 0)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static int ulong_(const char *s, unsigned long *out)
{
	unsigned long long v;
	if (number(s, 10, (unsigned long)-1, &v) < 0)
		return -1;
	*out = (unsigned long)v;
	return 0;
}

/* ---- the steps ---- */

static int st_version(struct plan *p, char **f, int nf)
{
	(void)p, (void)nf;
	if (cur_line != 1)
		return bad("only on the first line", f[0]);
	if (strcmp(f[0], "1") != 0)
		return bad("unsupported plan version", f[0]);
	return 0;
}

#define SCALAR(fn, field) \
	static int fn(struct plan *p, char **f, int nf) { (void)nf; p->field = f[0]; return 0; }
SCALAR(st_errfile, errfile)
SCALAR(st_pidfile, pidfile)
SCALAR(st_rootfs, rootfs)
SCALAR(st_console, console)
SCALAR(st_execfifo, execfifo)
SCALAR(st_hostname, hostname)
SCALAR(st_domainname, domainname)
SCALAR(st_cwd, cwd)
SCALAR(st_keyring, keyring)

static void strv_push(struct strv *v, char *s)
{
	*PUSH(&v->v, &v->n) = s;
}

#define LIST(fn, field) \
	static int fn(struct plan *p, char **f, int nf) { (void)nf; strv_push(&p->field, f[0]); return 0; }
LIST(st_cgroup, cgroups)
LIST(st_mask, masks)
LIST(st_readonly, readonlys)
LIST(st_arg, argv)

static int st_env(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (!strchr(f[0], '='))
		return bad("not KEY=value", f[0]);
	strv_push(&p->env, f[0]);
	return 0;
}

static int st_ns(struct plan *p, char **f, int nf)
{
	(void)nf;
	for (int t = 0; t < NS_COUNT; t++) {
		if (strcmp(f[0], ns_names[t]) != 0)
			continue;
		if (p->ns_given[t])
			return bad("namespace given twice", f[0]);
		p->ns_given[t] = 1;
		p->ns_path[t] = f[1][0] ? f[1] : NULL;
		return 0;
	}
	return bad("unknown namespace type", f[0]);
}

static int idmap(struct idmap_line **arr, size_t *n, char **f)
{
	unsigned int c, h, s;
	if (u32(f[0], &c) < 0 || u32(f[1], &h) < 0 || u32(f[2], &s) < 0)
		return -1;
	if (s == 0)
		return bad("map size 0", f[2]);
	struct idmap_line *l = PUSH(arr, n);
	l->container = c, l->host = h, l->size = s;
	return 0;
}

static int st_uidmap(struct plan *p, char **f, int nf)
{
	(void)nf;
	return idmap(&p->uidmap, &p->nuidmap, f);
}

static int st_gidmap(struct plan *p, char **f, int nf)
{
	(void)nf;
	return idmap(&p->gidmap, &p->ngidmap, f);
}

static int st_setgroups(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (strcmp(f[0], "allow") == 0)
		p->setgroups = 1;
	else if (strcmp(f[0], "deny") == 0)
		p->setgroups = 0;
	else
		return bad("not allow or deny", f[0]);
	return 0;
}

static int st_oomscore(struct plan *p, char **f, int nf)
{
	(void)nf;
	const char *s = f[0];
	int neg = *s == '-';
	unsigned long long v;
	if (number(s + neg, 10, 1000, &v) < 0)
		return -1;
	p->has_oomscore = 1;
	p->oomscore = neg ? -(int)v : (int)v;
	return 0;
}

static int st_rootprop(struct plan *p, char **f, int nf)
{
	(void)nf;
	p->has_rootprop = 1;
	return ulong_(f[0], &p->rootprop);
}

static int st_mount(struct plan *p, char **f, int nf)
{
	(void)nf;
	unsigned long flags;
	if (ulong_(f[3], &flags) < 0)
		return -1;
	if (!f[0][0])
		return bad("empty destination", f[0]);
	struct pmount *m = PUSH(&p->mounts, &p->nmounts);
	m->dest = f[0], m->type = f[1], m->source = f[2], m->flags = flags;
	m->data = f[4][0] ? f[4] : NULL;
	return 0;
}

static int st_mountprop(struct plan *p, char **f, int nf)
{
	(void)nf;
	unsigned long flags;
	if (ulong_(f[1], &flags) < 0)
		return -1;
	struct pmountprop *m = PUSH(&p->mountprops, &p->nmountprops);
	m->dest = f[0], m->flags = flags;
	return 0;
}

static int st_device(struct plan *p, char **f, int nf)
{
	(void)nf;
	struct pdevice d = { .path = f[0] };
	unsigned int mode, uid, gid;
	if (strcmp(f[1], "c") && strcmp(f[1], "b") && strcmp(f[1], "p"))
		return bad("device kind not c, b or p", f[1]);
	d.kind = f[1][0];
	if (u32(f[2], &d.major) < 0 || u32(f[3], &d.minor) < 0 || u32(f[4], &mode) < 0 ||
	    u32(f[5], &uid) < 0 || u32(f[6], &gid) < 0)
		return -1;
	if (!d.path[0])
		return bad("empty device path", f[0]);
	d.mode = (mode_t)mode, d.uid = uid, d.gid = gid;
	*PUSH(&p->devices, &p->ndevices) = d;
	return 0;
}

static int st_symlink(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (!f[0][0] || !f[1][0])
		return bad("empty symlink target or path", f[0][0] ? f[1] : f[0]);
	struct plink *l = PUSH(&p->symlinks, &p->nsymlinks);
	l->target = f[0], l->linkpath = f[1];
	return 0;
}

static int boolean(const char *s, int *out)
{
	if (strcmp(s, "0") && strcmp(s, "1"))
		return bad("not 0 or 1", s);
	*out = s[0] == '1';
	return 0;
}

static int st_pivot(struct plan *p, char **f, int nf)
{
	(void)nf;
	return boolean(f[0], &p->pivot);
}

static int st_readonlyroot(struct plan *p, char **f, int nf)
{
	(void)f, (void)nf;
	p->readonlyroot = 1;
	return 0;
}

static int st_nonewprivs(struct plan *p, char **f, int nf)
{
	(void)f, (void)nf;
	p->nonewprivs = 1;
	return 0;
}

static int st_sysctl(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (!f[0][0] || strstr(f[0], "..") || strchr(f[0], '/'))
		return bad("bad sysctl key", f[0]);
	struct psysctl *s = PUSH(&p->sysctls, &p->nsysctls);
	s->key = f[0], s->value = f[1];
	return 0;
}

static int limit(const char *s, rlim_t *out)
{
	if (strcmp(s, "inf") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	unsigned long long v;
	if (number(s, 10, (unsigned long long)RLIM_INFINITY - 1, &v) < 0)
		return -1;
	*out = (rlim_t)v;
	return 0;
}

static int st_rlimit(struct plan *p, char **f, int nf)
{
	(void)nf;
	unsigned long long res;
	struct prlimit_step r;
	if (number(f[0], 10, RLIM_NLIMITS - 1, &res) < 0 || limit(f[1], &r.soft) < 0 || limit(f[2], &r.hard) < 0)
		return -1;
	if (r.soft > r.hard)
		return bad("soft limit above hard limit", f[1]);
	r.resource = (int)res;
	*PUSH(&p->rlimits, &p->nrlimits) = r;
	return 0;
}

static int st_user(struct plan *p, char **f, int nf)
{
	(void)nf;
	unsigned int uid, gid;
	if (u32(f[0], &uid) < 0 || u32(f[1], &gid) < 0)
		return -1;
	p->has_user = 1, p->uid = uid, p->gid = gid;
	return 0;
}

static int st_groups(struct plan *p, char **f, int nf)
{
	p->has_groups = 1;
	for (int i = 0; i < nf; i++) {
		unsigned int g;
		if (u32(f[i], &g) < 0)
			return -1;
		*PUSH(&p->groups, &p->ngroups) = g;
	}
	return 0;
}

static int st_umask(struct plan *p, char **f, int nf)
{
	(void)nf;
	unsigned long long v;
	if (number(f[0], 8, 0777, &v) < 0)
		return -1;
	p->has_umask = 1, p->umask = (mode_t)v;
	return 0;
}

static int st_caps(struct plan *p, char **f, int nf)
{
	(void)nf;
	for (int s = 0; s < CAP_SETS; s++) {
		if (strcmp(f[0], cap_names[s]) != 0)
			continue;
		unsigned long long v;
		if (number(f[1], 16, ~0ULL, &v) < 0)
			return -1;
		p->has_caps[s] = 1, p->caps[s] = v;
		return 0;
	}
	return bad("unknown capability set", f[0]);
}

static int seccomp_ret(const char *action, const char *s, unsigned int *out)
{
	unsigned long long v;
	if (!seccomp_action_known(action))
		return bad("unknown seccomp action", action);
	if (number(s, 10, 0xffff, &v) < 0)
		return -1;
	if (v && strcmp(action, "errno") && strcmp(action, "trace"))
		return bad("a return value only for errno or trace", s);
	*out = (unsigned int)v;
	return 0;
}

static int st_seccomp_default(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (seccomp_ret(f[0], f[1], &p->seccomp_ret) < 0)
		return -1;
	p->has_seccomp = 1, p->seccomp_action = f[0];
	return 0;
}

static int st_seccomp_arch(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (!f[0][0])
		return bad("empty architecture", f[0]);
	strv_push(&p->seccomp_arches, f[0]);
	return 0;
}

static int st_seccomp_flag(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (!seccomp_flag_known(f[0]))
		return bad("unknown seccomp flag", f[0]);
	strv_push(&p->seccomp_flags, f[0]);
	return 0;
}

static int st_seccomp_rule(struct plan *p, char **f, int nf)
{
	struct pseccomp_rule r = { .action = f[0], .name = f[2] };
	if ((nf - 3) % 4 != 0)
		return fail(cur_step, EINVAL, "line %d: %d fields, want 3 and 4 per argument", cur_line, nf);
	if (seccomp_ret(f[0], f[1], &r.ret) < 0)
		return -1;
	if (!r.name[0])
		return bad("empty syscall name", f[2]);
	unsigned int seen = 0;
	for (int i = 3; i < nf; i += 4) {
		struct pseccomp_arg *a = &r.args[r.nargs++];
		unsigned long long idx, v, v2;
		if (number(f[i], 10, 5, &idx) < 0)
			return -1;
		if (seen & (1u << idx))
			return bad("argument given twice in one rule", f[i]);
		seen |= 1u << idx;
		if (!seccomp_op_known(f[i + 1]))
			return bad("unknown seccomp comparison", f[i + 1]);
		if (number(f[i + 2], 10, ~0ULL, &v) < 0 || number(f[i + 3], 10, ~0ULL, &v2) < 0)
			return -1;
		a->index = (unsigned int)idx, a->op = f[i + 1], a->value = v, a->value_two = v2;
	}
	*PUSH(&p->seccomp_rules, &p->nseccomp_rules) = r;
	return 0;
}

static int st_devfilter(struct plan *p, char **f, int nf)
{
	(void)nf;
	if (p->devfilter_dir)
		return bad("given twice", f[0]);
	if (f[0][0] != '/')
		return bad("not an absolute path", f[0]);
	if (strcmp(f[1], "allow") != 0 && strcmp(f[1], "deny") != 0)
		return bad("not allow or deny", f[1]);
	p->devfilter_dir = f[0];
	p->devfilter_allow = strcmp(f[1], "allow") == 0;
	return 0;
}

static int devnum(const char *s, int *has, unsigned int *out)
{
	*has = strcmp(s, "any") != 0;
	return *has ? u32(s, out) : 0;
}

static int st_devex(struct plan *p, char **f, int nf)
{
	(void)nf;
	struct pdevex e = { 0 };
	if (strcmp(f[0], "a") != 0 && strcmp(f[0], "b") != 0 && strcmp(f[0], "c") != 0)
		return bad("device type not a, b or c", f[0]);
	e.type = f[0][0];
	if (devnum(f[1], &e.has_major, &e.major) < 0 || devnum(f[2], &e.has_minor, &e.minor) < 0)
		return -1;
	size_t n = strlen(f[3]);
	if (n == 0 || n > 3 || strspn(f[3], "rwm") != n)
		return bad("access not made of r, w and m", f[3]);
	memcpy(e.access, f[3], n + 1);
	*PUSH(&p->devexs, &p->ndevexs) = e;
	return 0;
}

struct step_def {
	const char *name;
	int min, max; /* field counts */
	int (*fn)(struct plan *, char **, int);
};

static const struct step_def steps[] = {
	{ "tsrt-plan", 1, 1, st_version }, { "errfile", 1, 1, st_errfile }, { "pidfile", 1, 1, st_pidfile },
	{ "cgroup", 1, 1, st_cgroup }, { "ns", 2, 2, st_ns }, { "uidmap", 3, 3, st_uidmap },
	{ "gidmap", 3, 3, st_gidmap }, { "setgroups", 1, 1, st_setgroups }, { "oomscore", 1, 1, st_oomscore },
	{ "rootfs", 1, 1, st_rootfs }, { "rootprop", 1, 1, st_rootprop }, { "mount", 5, 5, st_mount },
	{ "mountprop", 2, 2, st_mountprop }, { "device", 7, 7, st_device }, { "symlink", 2, 2, st_symlink },
	{ "pivot", 1, 1, st_pivot }, { "readonlyroot", 0, 0, st_readonlyroot }, { "mask", 1, 1, st_mask },
	{ "readonly", 1, 1, st_readonly }, { "hostname", 1, 1, st_hostname },
	{ "domainname", 1, 1, st_domainname }, { "sysctl", 2, 2, st_sysctl }, { "console", 1, 1, st_console },
	{ "rlimit", 3, 3, st_rlimit }, { "user", 2, 2, st_user }, { "groups", 0, FIELDS_MAX, st_groups },
	{ "umask", 1, 1, st_umask }, { "cwd", 1, 1, st_cwd }, { "caps", 2, 2, st_caps },
	{ "nonewprivs", 0, 0, st_nonewprivs }, { "env", 1, 1, st_env }, { "arg", 1, 1, st_arg },
	{ "execfifo", 1, 1, st_execfifo }, { "seccomp-default", 2, 2, st_seccomp_default },
	{ "seccomp-arch", 1, 1, st_seccomp_arch }, { "seccomp-flag", 1, 1, st_seccomp_flag },
	{ "seccomp-rule", 3, 3 + 6 * 4, st_seccomp_rule }, { "devfilter", 2, 2, st_devfilter },
	{ "devex", 4, 4, st_devex }, { "keyring", 1, 1, st_keyring },
};

/* Parses one line [s, s+len) (without its newline). */
static int parse_line(struct plan *p, const char *s, size_t len)
{
	const char *sp = memchr(s, ' ', len);
	size_t nlen = sp ? (size_t)(sp - s) : len;
	const struct step_def *def = NULL;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		if (strlen(steps[i].name) == nlen && memcmp(steps[i].name, s, nlen) == 0)
			def = &steps[i];
	if (!def) {
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)(nlen < 100 ? nlen : 100), s);
		cur_step = "plan";
		return fail(name[0] ? name : "plan", EINVAL, "line %d: unknown step", cur_line);
	}
	cur_step = def->name;
	if (cur_line == 1 && strcmp(def->name, "tsrt-plan") != 0)
		return fail("plan", EINVAL, "line 1: not a tsrt-plan header");

	char *fields[FIELDS_MAX];
	int nf = 0;
	const char *end = s + len;
	const char *q = sp ? sp + 1 : end;
	if (sp) {
		for (;;) {
			const char *e = memchr(q, ' ', (size_t)(end - q));
			if (!e)
				e = end;
			if (nf == FIELDS_MAX)
				return fail(cur_step, E2BIG, "line %d: too many fields", cur_line);
			char *f = decode(q, (size_t)(e - q));
			if (!f)
				return -1;
			fields[nf++] = f;
			if (e == end)
				break;
			q = e + 1;
		}
	}
	if (nf < def->min || nf > def->max) {
		fail(cur_step, EINVAL, "line %d: %d fields, want %d%s", cur_line, nf, def->min,
		     def->max > def->min ? " or more" : "");
		return -1;
	}
	return def->fn(p, fields, nf);
}

/* Finds an `errfile` line before the real parse, so that a parse error can be written there. */
static void prescan_errfile(struct plan *p, const char *buf, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (buf + i)) : len - i;
		const char *s = buf + i;
		if (l > 8 && memcmp(s, "errfile ", 8) == 0 && !memchr(s + 8, ' ', l - 8)) {
			int saved_line = cur_line;
			char saved[ERR_MAX];
			memcpy(saved, err_line, sizeof saved);
			char *f = decode(s + 8, l - 8);
			memcpy(err_line, saved, sizeof saved);
			cur_line = saved_line;
			if (f && f[0])
				p->errfile = f;
		}
		i += l + 1;
	}
}

/* Parses the len bytes of buf (malloc'd; freed here on success, named name in errors). */
static int parse(struct plan *p, char *buf, size_t len, const char *name)
{
	prescan_errfile(p, buf, len);
	if (len == 0)
		return fail("plan", EINVAL, "%s: empty", name);
	if (buf[len - 1] != '\n')
		return fail("plan", EINVAL, "%s: last line not newline-terminated", name);
	cur_line = 0;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t l = (size_t)(nl - (buf + i));
		cur_line++;
		if (l == 0)
			return fail("plan", EINVAL, "line %d: empty line", cur_line);
		if (parse_line(p, buf + i, l) < 0)
			return -1;
		i += l + 1;
	}
	free(buf);
	plan_text = NULL;
	return 0;
}

int plan_load(const char *path, struct plan *p)
{
	memset(p, 0, sizeof *p);
	p->setgroups = -1;
	p->pivot = 1;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("plan", errno, "%s", path);
	size_t cap = 65536, len = 0;
	char *buf = plan_text = xrealloc(NULL, cap);
	for (;;) {
		if (len == cap) {
			if (cap >= PLAN_MAX) {
				close(fd);
				return fail("plan", EFBIG, "%s", path);
			}
			cap *= 2;
			buf = plan_text = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return fail("plan", e, "%s", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return parse(p, buf, len, path);
}

int plan_parse(char *buf, size_t len, struct plan *p)
{
	memset(p, 0, sizeof *p);
	p->setgroups = -1;
	p->pivot = 1;
	plan_text = buf;
	return parse(p, buf, len, "the plan");
}
