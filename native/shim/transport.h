/* Which transport the operator chose for a runtime: the top-level TOML key `Transport` ("ttrpc", the
 * default, or "grpc") of the options file (runtimeoptions.v1.Options.config_path) or of the CRI options
 * table containerd sends as TOML (config_body). start needs it before any Create, so it reads those
 * options from its stdin: the bare runtime-options Any (containerd up to 2.2), or the runtimeoptions
 * extension of BootstrapParams (2.3+). The daemon's own parser (src/plugins/config.ts) validates the
 * whole document again at Create. */
#ifndef TSRT_TRANSPORT_H
#define TSRT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

enum transport { TRANSPORT_TTRPC, TRANSPORT_GRPC };

/* From start's stdin (bootstrap: it is a BootstrapParams). 0 and *t; -1 with a message in err when the
 * options set Transport to something else than "ttrpc" or "grpc". Options that cannot be read (a
 * missing file, another options type) give ttrpc: Create reports what is wrong with them. */
int transport_from_stdin(const uint8_t *in, size_t len, int bootstrap, enum transport *t, char *err, size_t errlen);

/* The scan itself, over a TOML document: Transport among the keys before the first table header. */
int transport_from_toml(const char *text, size_t len, enum transport *t, char *err, size_t errlen);

#endif
