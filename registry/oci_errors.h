/* oci_errors.h - the registry's client-visible error codes and their JSON body.
 *
 * The OCI distribution-spec (v1.1.1, "Error Codes") defines fourteen codes
 * (code-1..code-14); distribution adds RANGE_INVALID, PAGINATION_NUMBER_INVALID,
 * TAG_INVALID and UNKNOWN, which clients also know. The HTTP status of each
 * code follows distribution's registry/api/errcode/register.go (the table in
 * docs/oci.md). A handler that needs a different status for a code says so at
 * its call site (the manifest size limit answers 413 with SIZE_INVALID, as
 * the spec's end-7 says).
 *
 * The parsers of the oci_* modules return these codes as values so a handler
 * can answer with one call; SPY_OCI_OK (0) means success.
 *
 * Everything here is pure and reentrant (no shared state); the strings
 * returned by the name/message functions are constants. */
#ifndef SPY_OCI_ERRORS_H
#define SPY_OCI_ERRORS_H

#include <stddef.h>

#include <jansson.h>

/* Never renumber: handlers and tests keep these values in tables. */
enum spy_oci_code {
    SPY_OCI_OK = 0,
    SPY_OCI_BLOB_UNKNOWN = 1,
    SPY_OCI_BLOB_UPLOAD_INVALID = 2,
    SPY_OCI_BLOB_UPLOAD_UNKNOWN = 3,
    SPY_OCI_DIGEST_INVALID = 4,
    SPY_OCI_MANIFEST_BLOB_UNKNOWN = 5,
    SPY_OCI_MANIFEST_INVALID = 6,
    SPY_OCI_MANIFEST_UNKNOWN = 7,
    SPY_OCI_NAME_INVALID = 8,
    SPY_OCI_NAME_UNKNOWN = 9,
    SPY_OCI_SIZE_INVALID = 10,
    SPY_OCI_UNAUTHORIZED = 11,
    SPY_OCI_DENIED = 12,
    SPY_OCI_UNSUPPORTED = 13,
    SPY_OCI_TOOMANYREQUESTS = 14,
    SPY_OCI_RANGE_INVALID = 15,
    SPY_OCI_PAGINATION_NUMBER_INVALID = 16,
    SPY_OCI_TAG_INVALID = 17,
    SPY_OCI_UNKNOWN = 18,
};

#define SPY_OCI_CODE_COUNT 19 /* SPY_OCI_OK included */

/* The wire name of a code ("BLOB_UNKNOWN"). SPY_OCI_OK and values outside the
 * enum give "UNKNOWN", so a body built from a bad value is still valid. */
const char *spy_oci_code_name(enum spy_oci_code code);

/* The HTTP status a handler answers with for this code (404, 400, ...).
 * SPY_OCI_OK gives 200; values outside the enum give 500. */
int spy_oci_code_http_status(enum spy_oci_code code);

/* The default human-readable message of a code (the spec's description where
 * it has one, distribution's otherwise). Never NULL. */
const char *spy_oci_code_message(enum spy_oci_code code);

/* One entry of an error body. 'message' NULL means the code's default
 * message. 'detail' is emitted as a JSON string when not NULL; 'detail_json'
 * (borrowed, any JSON value) is emitted instead when not NULL. Both NULL: no
 * "detail" member. Strings need not be valid UTF-8: invalid bytes become
 * U+FFFD, so echoing a client's bytes can never produce an invalid body. */
struct spy_oci_error {
    enum spy_oci_code code;
    const char *message;
    const char *detail;
    const json_t *detail_json;
};

/* Builds {"errors":[{"code":..,"message":..,"detail":..},...]} (compact, members
 * in that order) for 'count' >= 1 entries. On SPY_OK *body is a NUL-terminated
 * malloc'd string the caller frees and *len its length. Returns SPY_OK,
 * SPY_EINVAL (count 0) or SPY_ENOMEM (logged). */
int spy_oci_errors_json(const struct spy_oci_error *errors, size_t count, char **body, size_t *len);

/* The one-error form of spy_oci_errors_json: message NULL = default,
 * detail NULL = no detail. */
int spy_oci_error_json(enum spy_oci_code code, const char *message, const char *detail, char **body,
                       size_t *len);

#endif
