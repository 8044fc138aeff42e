/* What `start` reads from containerd and how it answers, by containerd version (docs/architecture.md,
 * "start's reply"):
 *
 *   containerd   stdin                                   env MAX_SHIM_VERSION   reply on stdout
 *   1.6          runtime options Any, or nothing         unset                   the address
 *   1.7          the same                                2                       {"version":2,...} JSON
 *   2.0 - 2.2    the same                                2                       {"version":3,...} JSON
 *   2.3+         protobuf BootstrapParams                2                       protobuf BootstrapResult, version 3
 *
 * 1.7 and 2.0 - 2.2 send the same flags, environment and stdin; they are told apart by the Go module
 * of containerd's own executable (-publish-binary, see gobuild.h). Version 3 means containerd then
 * calls containerd.task.v3.Task. */
#ifndef TSRT_BOOTSTRAP_H
#define TSRT_BOOTSTRAP_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

enum bootstrap_reply {
	REPLY_ADDRESS,  /* the bare address (containerd 1.6) */
	REPLY_JSON_V2,  /* {"version":2,"address":...,"protocol":"ttrpc"} (1.7) */
	REPLY_JSON_V3,  /* {"version":3,...} (2.0 - 2.2) */
	REPLY_PROTO_V3, /* BootstrapResult{version: 3, address, protocol: "ttrpc"} (2.3+) */
};

/* The fields of containerd.runtime.bootstrap.v1.BootstrapParams that start uses (malloc'd, "" when
 * absent). */
struct bootstrap_params {
	char *grpc_address;  /* containerd_grpc_address = 6 */
	char *ttrpc_address; /* containerd_ttrpc_address = 5 */
	char *socket_dir;    /* optional socket_dir = 9 */
	int32_t log_level;   /* log_level = 3: 0 info, -4 debug, -8 trace */
};

/* 1 when stdin (in, len bytes) is a BootstrapParams for this instance: it decodes as one and its
 * instance_id and namespace are the -id and -namespace flags (legacy runtime options can decode as a
 * BootstrapParams too; this is how containerd's pkg/shim tells them apart). Fills *p. 0 otherwise. */
int bootstrap_params_parse(const uint8_t *in, size_t len, const char *id, const char *ns,
			   struct bootstrap_params *p);
void bootstrap_params_free(struct bootstrap_params *p);

/* The reply for a caller that sent no BootstrapParams, from MAX_SHIM_VERSION and -publish-binary. */
enum bootstrap_reply bootstrap_legacy_reply(const char *publish_binary);

/* The reply's bytes, as containerd's own shim library writes them (Go's encoding/json, proto.Marshal).
 * protocol is "ttrpc" or "grpc" (bare address: ttrpc only); a gRPC address is a socket path, without
 * the unix:// that containerd adds itself. */
void bootstrap_reply_encode(enum bootstrap_reply kind, const char *address, const char *protocol, struct buf *out);

#endif
