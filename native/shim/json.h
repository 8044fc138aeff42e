/* Minimal JSON reading: the string values of the top-level "annotations" object of an OCI spec. */
#ifndef TSRT_JSON_H
#define TSRT_JSON_H

#include <stddef.h>

/* Looks up annotations[key] in the JSON document js (len bytes). Returns 1 and a malloc'd
 * string in *value when present (the last occurrence wins, like Go's encoding/json), 0 when absent,
 * -1 when the document is not valid JSON or the value is not a string without NUL bytes. */
int json_annotation(const char *js, size_t len, const char *key, char **value);

#endif
