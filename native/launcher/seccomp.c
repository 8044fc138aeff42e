/* The seccomp filter: plan names mapped to libseccomp's values, the filter built before "ready" (so that
 * a rule libseccomp refuses is an error of the set-up) and loaded later (proc.c decides when).
 *
 * As runc does, a syscall newer than every syscall the profile names (by number, per architecture) gets
 * ENOSYS instead of the profile's default action, so that a program built for a newer kernel (a libc
 * trying clone3 or faccessat2 first) falls back to the older call rather than failing with EPERM. That
 * takes a short classic-BPF stub in front of libseccomp's program: the program is exported, the stub
 * prepended, and the whole loaded with seccomp(2). Profiles whose default already allows, logs or
 * returns ENOSYS get no stub. */
#include "seccomp.h"
#include "err.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct name_val {
	const char *name;
	int val;
};

static const char *const actions[] = { "kill-thread", "kill-process", "trap", "errno", "trace", "allow", "log" };
static const struct name_val ops[] = {
	{ "ne", SCMP_CMP_NE }, { "lt", SCMP_CMP_LT }, { "le", SCMP_CMP_LE }, { "eq", SCMP_CMP_EQ },
	{ "ge", SCMP_CMP_GE }, { "gt", SCMP_CMP_GT }, { "masked-eq", SCMP_CMP_MASKED_EQ },
};
static const struct name_val flags[] = {
	{ "tsync", SCMP_FLTATR_CTL_TSYNC }, { "log", SCMP_FLTATR_CTL_LOG }, { "spec-allow", SCMP_FLTATR_CTL_SSB },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int lookup_nv(const struct name_val *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return (int)i;
	return -1;
}

int seccomp_action_known(const char *name)
{
	for (size_t i = 0; i < COUNT(actions); i++)
		if (strcmp(actions[i], name) == 0)
			return 1;
	return 0;
}

int seccomp_op_known(const char *name)
{
	return lookup_nv(ops, COUNT(ops), name) >= 0;
}

int seccomp_flag_known(const char *name)
{
	return lookup_nv(flags, COUNT(flags), name) >= 0;
}

/* The libseccomp action of a plan action (known: the parse checked it). */
static uint32_t action_of(const char *a, unsigned int ret)
{
	if (strcmp(a, "kill-thread") == 0)
		return SCMP_ACT_KILL_THREAD;
	if (strcmp(a, "kill-process") == 0)
		return SCMP_ACT_KILL_PROCESS;
	if (strcmp(a, "trap") == 0)
		return SCMP_ACT_TRAP;
	if (strcmp(a, "errno") == 0)
		return SCMP_ACT_ERRNO(ret);
	if (strcmp(a, "trace") == 0)
		return SCMP_ACT_TRACE(ret);
	if (strcmp(a, "log") == 0)
		return SCMP_ACT_LOG;
	return SCMP_ACT_ALLOW;
}

static scmp_filter_ctx ctx;
static int loaded;
static uint32_t default_action;
static unsigned long load_flags; /* SECCOMP_FILTER_FLAG_* of the plan's seccomp-flag steps */

/* The architectures of the filter (the native one and the plan's), each with the highest syscall number
 * the profile names for it (-1: none). */
#define ARCH_MAX 16
static struct { uint32_t token; int max; } arches[ARCH_MAX];
static size_t narches;

static void arch_note(uint32_t token)
{
	for (size_t i = 0; i < narches; i++)
		if (arches[i].token == token)
			return;
	if (narches < ARCH_MAX)
		arches[narches].token = token, arches[narches++].max = -1;
}

static void arch_syscall(const char *name)
{
	for (size_t i = 0; i < narches; i++) {
		int nr = seccomp_syscall_resolve_name_arch(arches[i].token, name);
		if (nr >= 0 && nr > arches[i].max)
			arches[i].max = nr; /* negative: libseccomp's pseudo number, the call does not exist there */
	}
}

int seccomp_build(const struct plan *p)
{
	if (!p->has_seccomp)
		return 0;
	uint32_t def = action_of(p->seccomp_action, p->seccomp_ret);
	default_action = def;
	narches = 0;
	arch_note(seccomp_arch_native());
	ctx = seccomp_init(def);
	if (!ctx)
		return fail("seccomp-default", ENOMEM, "seccomp_init");
	int r;
	/* no_new_privs is the `nonewprivs` step's business, not libseccomp's (it sets it by default) */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
		return fail("seccomp-default", -r, "no_new_privs attribute");
	for (size_t i = 0; i < p->seccomp_arches.n; i++) {
		const char *name = p->seccomp_arches.v[i];
		uint32_t arch = seccomp_arch_resolve_name(name);
		if (arch == 0) {
			warn_line("seccomp-arch", EINVAL, "%s: not known to this libseccomp, skipped", name);
			continue;
		}
		r = seccomp_arch_add(ctx, arch);
		if (r < 0 && r != -EEXIST)
			return fail("seccomp-arch", -r, "%s", name);
		arch_note(arch);
	}
	for (size_t i = 0; i < p->seccomp_flags.n; i++) {
		const char *name = p->seccomp_flags.v[i];
		int f = flags[lookup_nv(flags, COUNT(flags), name)].val;
		if ((r = seccomp_attr_set(ctx, f, 1)) < 0)
			return fail("seccomp-flag", -r, "%s", name);
		load_flags |= f == SCMP_FLTATR_CTL_TSYNC ? SECCOMP_FILTER_FLAG_TSYNC
			      : f == SCMP_FLTATR_CTL_LOG ? SECCOMP_FILTER_FLAG_LOG : SECCOMP_FILTER_FLAG_SPEC_ALLOW;
	}
	for (size_t i = 0; i < p->nseccomp_rules; i++) {
		const struct pseccomp_rule *rule = &p->seccomp_rules[i];
		int nr = seccomp_syscall_resolve_name(rule->name);
		if (nr == __NR_SCMP_ERROR) {
			warn_line("seccomp-rule", EINVAL, "%s: syscall not known to this libseccomp, skipped", rule->name);
			continue;
		}
		struct scmp_arg_cmp cmp[6];
		for (size_t a = 0; a < rule->nargs; a++) {
			cmp[a].arg = rule->args[a].index;
			cmp[a].op = (enum scmp_compare)ops[lookup_nv(ops, COUNT(ops), rule->args[a].op)].val;
			cmp[a].datum_a = rule->args[a].value;
			cmp[a].datum_b = rule->args[a].value_two;
		}
		arch_syscall(rule->name);
		uint32_t act = action_of(rule->action, rule->ret);
		if (act == def)
			continue; /* libseccomp refuses a rule that is the default (plan.ts leaves them out too) */
		r = seccomp_rule_add_array(ctx, act, nr, (unsigned int)rule->nargs, cmp);
		if (r < 0)
			return fail("seccomp-rule", -r, "%s %s", rule->action, rule->name);
	}
	return 0;
}

/* The stub in front of libseccomp's program (see the top of the file); its length, 0 when none is needed. */
static size_t enosys_stub(struct sock_filter *out, size_t cap)
{
	if (default_action == SCMP_ACT_ALLOW || default_action == SCMP_ACT_LOG || default_action == SCMP_ACT_ERRNO(ENOSYS))
		return 0;
	size_t blocks = 0, len = 1;
	for (size_t i = 0; i < narches; i++)
		if (arches[i].max >= 0 && arches[i].token != SCMP_ARCH_X32) /* x32 shares x86_64's audit arch */
			blocks++, len += arches[i].token == SCMP_ARCH_X86_64 ? 4 : 3;
	if (blocks == 0 || len + 2 > cap)
		return 0;
	size_t enosys = len + 1, cont = len + 2, n = 0;
	out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	for (size_t i = 0; i < narches; i++) {
		if (arches[i].max < 0 || arches[i].token == SCMP_ARCH_X32)
			continue;
		int x86_64 = arches[i].token == SCMP_ARCH_X86_64;
		size_t b = x86_64 ? 4 : 3;
		out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arches[i].token, 0, (uint8_t)(b - 1));
		n++;
		out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
		if (x86_64) { /* an x32 call (its bit set) goes on to the program */
			out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, (uint8_t)(cont - n - 1), 0);
			n++;
		}
		out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)arches[i].max,
						      (uint8_t)(enosys - n - 1), (uint8_t)(cont - n - 1));
		n++;
	}
	/* here n == len: the arch matched no block, so past the ENOSYS return to the program */
	out[n] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, (uint32_t)(cont - n - 1));
	n++;
	out[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
	return n;
}

int seccomp_apply(void)
{
	if (!ctx || loaded)
		return 0;
	struct sock_filter stub[64];
	size_t nstub = enosys_stub(stub, COUNT(stub));
	if (nstub == 0) {
		int r = seccomp_load(ctx);
		if (r < 0)
			return fail("seccomp-default", -r, "loading the filter");
		loaded = 1;
		return 0;
	}
	/* libseccomp's program, exported through a memfd, behind the stub */
	int fd = memfd_create("tsrt-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return fail("seccomp-default", errno, "memfd for the filter");
	int r = seccomp_export_bpf(ctx, fd);
	off_t size = lseek(fd, 0, SEEK_END);
	if (r < 0 || size <= 0 || size % (off_t)sizeof(struct sock_filter)) {
		close(fd);
		return fail("seccomp-default", r < 0 ? -r : EINVAL, "exporting the filter");
	}
	size_t nprog = (size_t)size / sizeof(struct sock_filter);
	struct sock_filter *all = calloc(nstub + nprog, sizeof *all);
	if (!all || pread(fd, all + nstub, (size_t)size, 0) != size) {
		free(all);
		close(fd);
		return fail("seccomp-default", errno ? errno : ENOMEM, "reading the exported filter");
	}
	close(fd);
	memcpy(all, stub, nstub * sizeof *stub);
	struct sock_fprog prog = { .len = (unsigned short)(nstub + nprog), .filter = all };
	long k = nstub + nprog > BPF_MAXINSNS ? (errno = E2BIG, -1) : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, load_flags, &prog);
	int e = errno;
	free(all);
	if (k < 0)
		return fail("seccomp-default", e, "loading the filter (%zu + %zu instructions)", nstub, nprog);
	loaded = 1;
	return 0;
}
