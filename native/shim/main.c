/* containerd-shim-tsrt-v2: Go-flag-style option parsing and dispatch to start / delete / -info. */
#include "shim.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

struct flag {
	const char *name;
	const char **str; /* string flag */
	int *boolean;     /* bool flag */
};

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True" };
	static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False" };
	for (size_t i = 0; i < 6; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Parses flags like Go's flag package; returns the index of the first positional argument. */
static int parse_flags(int argc, char **argv, struct shim_opts *o)
{
	const struct flag flags[] = {
		{ "namespace", &o->namespace, NULL },
		{ "address", &o->address, NULL },
		{ "publish-binary", &o->publish_binary, NULL },
		{ "id", &o->id, NULL },
		{ "bundle", &o->bundle, NULL },
		{ "socket", &o->socket, NULL },
		{ "debug", NULL, &o->debug },
		{ "v", NULL, &o->version },
		{ "version", NULL, &o->version },
		{ "info", NULL, &o->info },
	};
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		const char *name = a + 1;
		if (name[0] == '-') {
			name++;
			if (name[0] == '\0')
				return i + 1; /* "--" ends the flags */
		}
		if (name[0] == '-' || name[0] == '=')
			die("bad flag syntax: %s", a);
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag *f = NULL;
		for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
			if (strlen(flags[k].name) == len && strncmp(flags[k].name, name, len) == 0)
				f = &flags[k];
		if (!f)
			die("flag provided but not defined: -%.*s", (int)len, name);
		if (f->boolean) {
			if (eq && parse_bool(eq + 1, f->boolean) < 0)
				die("invalid boolean value \"%s\" for -%s", eq + 1, f->name);
			if (!eq)
				*f->boolean = 1;
		} else if (eq) {
			*f->str = eq + 1;
		} else if (i + 1 < argc) {
			*f->str = argv[++i];
		} else {
			die("flag needs an argument: -%s", f->name);
		}
	}
	return i;
}

int main(int argc, char **argv)
{
	struct shim_opts o = {
		.namespace = "", .address = "", .publish_binary = "", .id = "", .bundle = "", .socket = "",
	};
	int pos = parse_flags(argc, argv, &o);
	if (o.version) {
		printf("containerd-shim-tsrt-v2 version " SHIM_VERSION "\n");
		return fflush(stdout) == 0 ? 0 : 1;
	}
	/* before the namespace check, as in containerd's pkg/shim: containerd passes no flags with it */
	if (o.info)
		return cmd_info();
	if (o.namespace[0] == '\0')
		die("shim namespace cannot be empty");
	const char *action = pos < argc ? argv[pos] : "";
	if (strcmp(action, "start") == 0)
		return cmd_start(&o);
	if (strcmp(action, "delete") == 0)
		return cmd_delete(&o);
	if (action[0] == '\0')
		die("no action given (expected start or delete)");
	die("unknown action \"%s\" (expected start or delete)", action);
}
