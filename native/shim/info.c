/* `-info`: what containerd 2.x asks a runtime for (ctr plugins inspect-runtime, CRI's runtime features
 * check): a containerd.types.RuntimeInfo on stdout, built as runc-v2's manager Info builds it. The
 * runtime options Any, if any, comes on stdin; it names the runtime binary, whose `features` output
 * (the OCI runtime features document) is reported. */
#include "buf.h"
#include "json.h"
#include "pb.h"
#include "revision.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OPTIONS_MAX (10u << 20)
#define FEATURES_MAX (1u << 20)
#define FEATURES_TIMEOUT_MS 10000
/* typeurl's name for github.com/opencontainers/runtime-spec/specs-go/features.Features, which it
 * marshals as JSON (containerd core/runtime/typeurl.go) */
#define FEATURES_TYPE "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
#define CHECKPOINT_KEY "org.opencontainers.runc.checkpoint.enabled"

static char *dup_bytes(const void *p, size_t n)
{
	char *s = xrealloc(NULL, n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The string field num of an encoded message (the last one), or NULL. Dies on a malformed message. */
static char *string_field(const uint8_t *msg, size_t len, uint32_t num, const char *what)
{
	struct pb_reader r = pb_reader(msg, len);
	struct pb_field f;
	char *found = NULL;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.num == num && f.wire == PB_LEN) {
			free(found);
			found = dup_bytes(f.data, f.len);
		}
	}
	if (rc < 0)
		die("failed to read runtime options: %s is not a valid protobuf message", what);
	return found;
}

/* TOML basic ("...") or literal ('...') string at p; NULL if it is not one this reader knows. */
static char *toml_string(const char *p)
{
	char q = *p++;
	if (q != '"' && q != '\'')
		return NULL;
	struct buf b = { 0 };
	for (; *p && *p != q && *p != '\n'; p++) {
		char c = *p;
		if (q == '"' && c == '\\') {
			switch (*++p) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case 't': c = '\t'; break;
			case 'n': c = '\n'; break;
			default: buf_free(&b); return NULL; /* \u escapes and others: not in a binary name */
			}
		}
		buf_put(&b, &c, 1);
	}
	if (*p != q) {
		buf_free(&b);
		return NULL;
	}
	char *s = dup_bytes(buf_head(&b), b.len);
	buf_free(&b);
	return s;
}

/* The BinaryName key of a tsrt options file (TOML, flat: see README); NULL when it has none. */
static char *config_binary_name(const char *file)
{
	char *text;
	if (read_file(file, &text, NULL, 1u << 20) < 0)
		die("cannot read runtime config %s: %s", file, strerror(errno));
	char *found = NULL;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		char *p = line + strspn(line, " \t");
		if (strncmp(p, "BinaryName", 10) == 0) {
			p += 10;
			p += strspn(p, " \t");
			if (*p == '=') {
				p++;
				char *v = toml_string(p + strspn(p, " \t"));
				if (v) {
					free(found);
					found = v;
				}
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return found;
}

/* The runtime binary the options name (the daemon reads them the same way: src/plugins/config.ts). */
static char *runtime_binary(const uint8_t *any, size_t len)
{
	char *type = string_field(any, len, 1, "google.protobuf.Any");
	struct pb_reader r = pb_reader(any, len);
	struct pb_field f;
	const uint8_t *value = NULL;
	size_t vlen = 0;
	while (pb_next(&r, &f) > 0)
		if (f.num == 2 && f.wire == PB_LEN) {
			value = f.data;
			vlen = f.len;
		}
	if (!type || !*type)
		die("failed to read runtime options: no type_url");
	const char *slash = strrchr(type, '/');
	const char *name = slash ? slash + 1 : type;
	char *binary = NULL;
	if (strcmp(name, "runtimeoptions.v1.Options") == 0) {
		char *config = string_field(value, vlen, 2, name); /* config_path */
		if (config && *config)
			binary = config_binary_name(config);
		free(config);
	} else if (strcmp(name, "containerd.runc.v1.Options") == 0) {
		binary = string_field(value, vlen, 6, name); /* binary_name */
	} else if (strcmp(name, "containerd.linux.runc.CreateOptions") != 0) {
		die("unsupported runtime options type %s", type);
	}
	free(type);
	if (binary && !*binary) {
		free(binary);
		binary = NULL;
	}
	return binary ? binary : xstrdup("runc");
}

/* Go's exec.LookPath: a name with a slash as it is, else the first executable file of that name on
 * PATH. malloc'd, or NULL. */
static char *look_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	const char *path = getenv("PATH");
	if (!path)
		path = "";
	for (const char *p = path;;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char full[PATH_MAX];
		if (fmt_path(full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", name) == 0 && access(full, X_OK) == 0)
			return xstrdup(full);
		if (!colon)
			return NULL;
		p = colon + 1;
	}
}

/* `<binary> features`: its stdout when it exits 0 within the time limit, else NULL (as runc-v2, which
 * leaves features out when the runtime has no such command). */
static char *run_features(const char *binary, size_t *len)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return NULL;
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return NULL;
	}
	if (pid == 0) {
		child_reset_signals();
		if (child_devnull_stdio() < 0 || dup2(pipefd[1], 1) < 0)
			_exit(126);
		close_fds_from(3, -1);
		char *argv[] = { (char *)binary, "features", NULL };
		execv(binary, argv);
		_exit(127);
	}
	close(pipefd[1]);
	struct buf out = { 0 };
	int64_t deadline = mono_ms() + FEATURES_TIMEOUT_MS;
	int ok = 1;
	for (;;) {
		int64_t left = deadline - mono_ms();
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		int rc = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			ok = 0; /* timed out */
			break;
		}
		ssize_t n = buf_fill(&out, pipefd[0], 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out.len > FEATURES_MAX) {
			ok = 0;
			break;
		}
	}
	close(pipefd[0]);
	if (!ok)
		kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			st = -1;
			break;
		}
	char *text = NULL;
	if (ok && st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		text = dup_bytes(buf_head(&out), out.len);
		*len = out.len;
	}
	buf_free(&out);
	return text;
}

/* The features document as tsrt supports it: tsrt cannot checkpoint (Checkpoint is Unimplemented),
 * so a runtime's "checkpoint enabled" annotation is reported "false". NULL if js is not JSON. */
static char *features_for_tsrt(char *js, size_t *len)
{
	char *checkpoint = NULL;
	if (json_annotation(js, *len, CHECKPOINT_KEY, &checkpoint) < 0) {
		free(js);
		return NULL;
	}
	int enabled = checkpoint && strcmp(checkpoint, "true") == 0;
	free(checkpoint);
	if (!enabled)
		return js;
	/* find "<key>" <ws> : <ws> "true" (the key is spelt without escapes by runc and crun) */
	for (char *k = strstr(js, "\"" CHECKPOINT_KEY "\""); k; k = strstr(k + 1, "\"" CHECKPOINT_KEY "\"")) {
		char *p = k + sizeof CHECKPOINT_KEY + 1;
		p += strspn(p, " \t\r\n");
		if (*p != ':')
			continue;
		p++;
		p += strspn(p, " \t\r\n");
		if (strncmp(p, "\"true\"", 6) != 0)
			continue;
		struct buf b = { 0 };
		buf_put(&b, js, (size_t)(p - js));
		buf_put(&b, "\"false\"", 7);
		buf_put(&b, p + 6, *len - (size_t)(p + 6 - js));
		char *out = dup_bytes(buf_head(&b), b.len);
		*len = b.len;
		buf_free(&b);
		free(js);
		return out;
	}
	return js;
}

int cmd_info(void)
{
	struct buf in = { 0 };
	for (;;) {
		ssize_t n = buf_fill(&in, 0, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (in.len > OPTIONS_MAX)
			die("runtime options on stdin are larger than %u bytes", OPTIONS_MAX);
	}
	char *binary = in.len ? runtime_binary(buf_head(&in), in.len) : xstrdup("runc");
	char *path = look_path(binary);
	if (!path)
		die("failed to look up the path of \"%s\": executable file not found in $PATH", binary);
	size_t flen = 0;
	char *features = run_features(path, &flen);
	if (features)
		features = features_for_tsrt(features, &flen);

	struct buf version = { 0 }, any = { 0 }, info = { 0 };
	pb_put_string(&version, 1, SHIM_VERSION);
	pb_put_string(&version, 2, SHIM_REVISION);
	pb_put_string(&info, 1, RUNTIME_NAME);
	pb_put_bytes(&info, 2, buf_head(&version), version.len);
	if (in.len)
		pb_put_bytes(&info, 3, buf_head(&in), in.len); /* the options as given, like runc-v2 */
	if (features) {
		pb_put_string(&any, 1, FEATURES_TYPE);
		pb_put_bytes(&any, 2, features, flen);
		pb_put_bytes(&info, 4, buf_head(&any), any.len);
	}
	int rc = write_all(1, buf_head(&info), info.len);
	int e = errno;
	buf_free(&version);
	buf_free(&any);
	buf_free(&info);
	buf_free(&in);
	free(features);
	free(path);
	free(binary);
	if (rc < 0)
		die("write to stdout: %s", strerror(e));
	return 0;
}
