/* The seccomp filter: plan names mapped to libseccomp's values, the filter built before "ready" (so that
 * a rule libseccomp refuses is an error of the set-up) and loaded later (proc.c decides when). */
#include "seccomp.h"
#include "err.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>

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

int seccomp_build(const struct plan *p)
{
	if (!p->has_seccomp)
		return 0;
	uint32_t def = action_of(p->seccomp_action, p->seccomp_ret);
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
	}
	for (size_t i = 0; i < p->seccomp_flags.n; i++) {
		const char *name = p->seccomp_flags.v[i];
		if ((r = seccomp_attr_set(ctx, flags[lookup_nv(flags, COUNT(flags), name)].val, 1)) < 0)
			return fail("seccomp-flag", -r, "%s", name);
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
		uint32_t act = action_of(rule->action, rule->ret);
		if (act == def)
			continue; /* libseccomp refuses a rule that is the default (plan.ts leaves them out too) */
		r = seccomp_rule_add_array(ctx, act, nr, (unsigned int)rule->nargs, cmp);
		if (r < 0)
			return fail("seccomp-rule", -r, "%s %s", rule->action, rule->name);
	}
	return 0;
}

int seccomp_apply(void)
{
	if (!ctx || loaded)
		return 0;
	int r = seccomp_load(ctx);
	if (r < 0)
		return fail("seccomp-default", -r, "loading the filter");
	loaded = 1;
	return 0;
}
