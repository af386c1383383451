/* registry.h - the imageserver's insides: the process-wide registry object,
 * the per-loop state, and the contract between the request router
 * (registry.c) and the handler modules (blobs.c, uploads.c, manifests.c,
 * tags.c, ...). Handlers are not a public API; this header is their deal.
 *
 * THREADS. One struct spy_registry per process, read-only after start. Each
 * HTTP loop thread has one struct spy_registry_loop (made in on_loop_start):
 * its blobstore attachment and its metadata poster. Every handler callback
 * runs on the loop thread of its request; metadata results come back to that
 * thread through the loop's poster, blobstore callbacks run on it by design.
 *
 * A REQUEST'S STATE. registry.c routes on_request by path
 * (spy_oci_route_split) and method to one handler's start function. A
 * handler that needs the body or any asynchronous work allocates its state
 * with spy_registry_req_new(), whose first member is a struct spy_registry_req
 * (the "base"), and stores it in req->data. registry.c forwards on_body,
 * on_body_end and on_abort to base->ops. A handler that answers at once
 * (spy_registry_error, spy_http_respond) needs no state: req->data stays NULL
 * and any body is discarded by the HTTP layer.
 *
 * LIFETIME. The base is reference-counted: the request holds one reference
 * until its terminal call (respond/stream_end/stream_fail) or on_abort, and
 * each asynchronous operation in flight (a metadata op, a blobstore write or
 * read) holds one. spy_registry_req_finish() marks the request side done
 * (after the handler's terminal call, or from on_abort): after it the handler
 * must not touch req, and completions that arrive later see base->req == NULL
 * and only clean up. The state is freed (ops->destroy, then free) when the
 * last reference goes. */
#ifndef SPY_REGISTRY_H
#define SPY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "blobstore/blobstore.h"
#include "registry/http_server.h"
#include "registry/meta.h"
#include "registry/oci_errors.h"
#include "registry/oci_names.h"

/* Settings from the flags (main.c); strings borrowed from argv. */
struct spy_registry_config {
    const char *host;      /* -h "0.0.0.0" */
    int port;              /* -p 6788 */
    unsigned threads;      /* --threads: loops (0 = one per core) */
    int debug;             /* -D */
    const char *tls_cert;  /* --tls_cert (NULL: plain HTTP) */
    const char *tls_key;   /* --tls_key */
    uint64_t max_manifest; /* 4 MiB */
    int delete_enabled;    /* --delete (default 1) */
    struct spy_meta_config meta;
    struct spy_blob_config blob;
};

struct spy_registry {
    struct spy_registry_config cfg;
    struct spy_meta *meta;
    struct spy_blob *blob;
    struct spy_http_server *http;
};

struct spy_registry_loop {
    struct spy_registry *reg;
    struct spy_http_loop *http;
    struct spy_blob_loop *blob;
    struct spy_meta_poster poster; /* delivers metadata ops on this loop */
};

struct spy_registry_req;

/* A handler's callbacks for one request (any may be NULL). */
struct spy_registry_req_ops {
    void (*on_body)(struct spy_registry_req *base, const char *data, size_t len);
    void (*on_body_end)(struct spy_registry_req *base);
    /* The client went away or timed out; the handler cancels what it can.
     * registry.c calls spy_registry_req_finish right after it returns. */
    void (*on_abort)(struct spy_registry_req *base, int status);
    /* Frees what the handler's state owns (not the state itself). */
    void (*destroy)(struct spy_registry_req *base);
};

struct spy_registry_req {
    const struct spy_registry_req_ops *ops;
    struct spy_http_request *req; /* NULL once finished */
    struct spy_registry_loop *loop;
    struct spy_registry *reg;
    struct spy_oci_route route; /* name/ref point into the request's path */
    char *name;                 /* NUL-terminated copy of route.name (owned) */
    char *ref;                  /* NUL-terminated copy of route.ref (owned), or NULL */
    unsigned refs;
};

/* Allocates a zeroed state of 'size' bytes (>= sizeof(struct
 * spy_registry_req)) whose base is filled from req/route, with one reference
 * (the request's), and sets req->data. NULL if out of memory (the caller
 * answers 500). */
struct spy_registry_req *spy_registry_req_new(struct spy_http_request *req,
                                              const struct spy_oci_route *route, size_t size,
                                              const struct spy_registry_req_ops *ops);
void spy_registry_req_ref(struct spy_registry_req *base);
void spy_registry_req_unref(struct spy_registry_req *base);
/* Ends the request side (see LIFETIME) and drops the request's reference. */
void spy_registry_req_finish(struct spy_registry_req *base);

/* The loop state of a request. */
struct spy_registry_loop *spy_registry_loop_of(struct spy_http_request *req);

/* Terminal: answers the OCI error body {"errors":[...]} with the code's HTTP
 * status (spy_oci_code_http_status), Content-Type application/json, plus
 * 'extra' header fields. message NULL = the code's default. */
int spy_registry_error(struct spy_http_request *req, enum spy_oci_code code, const char *message,
                       const char *detail, const struct spy_http_field *extra, size_t nextra);

/* Maps an internal status (common/status.h) from meta or blobstore to the
 * OCI code a client should see in 'context' (e.g. ENOTFOUND -> BLOB_UNKNOWN
 * for a blob, MANIFEST_UNKNOWN for a manifest; EBUSY -> TOOMANYREQUESTS;
 * EIO/ETIMEDOUT -> UNKNOWN (500)). */
enum spy_oci_code spy_registry_code_for(int status, enum spy_oci_code not_found_code);

/* Every response carries "Docker-Distribution-API-Version: registry/2.0".
 * The HTTP layer has no per-server header list, so handlers answer through
 * these two: spy_http_respond / spy_http_stream_begin with that field
 * appended to fields[0..nfields) (at most SPY_REGISTRY_FIELDS_MAX). Same
 * returns; SPY_EINVAL if nfields is over the maximum (nothing sent). */
#define SPY_REGISTRY_FIELDS_MAX 63

/* That field alone, for the HTTP layer's own error answers
 * (spy_http_config.error_fields). */
extern const struct spy_http_field spy_registry_api_version_field;
int spy_registry_respond(struct spy_http_request *req, int status,
                         const struct spy_http_field *fields, size_t nfields, const void *body,
                         size_t len);
int spy_registry_stream_begin(struct spy_http_request *req, int status,
                              const struct spy_http_field *fields, size_t nfields,
                              int64_t content_length);

/* The imageserver's HTTP handler for reg (the router, on_loop_start/stop;
 * ctx = reg), for spy_http_server_start. reg->meta and reg->blob must exist
 * before the server starts and outlive spy_http_server_stop, which waits
 * (bounded) in each loop's on_loop_stop for that loop's request states to
 * end and then detaches the loop from the blobstore. */
void spy_registry_handler(struct spy_registry *reg, struct spy_http_handler *out);

/* Submits a metadata op from a loop thread with this loop's poster; the op's
 * done runs on the same loop. Takes a reference on base, dropped after done.
 * Returns what spy_meta_submit returns. */
int spy_registry_meta_submit(struct spy_registry_req *base, struct spy_meta_op *op);

/* Handler entry points, called by registry.c on the loop thread with the
 * route already validated (name valid; ref non-empty where the route has one).
 * Each either answers at once or creates its state. */
void spy_registry_base(struct spy_http_request *req);    /* /v2/ */
void spy_registry_catalog(struct spy_http_request *req); /* _catalog */
void spy_registry_tags(struct spy_http_request *req, const struct spy_oci_route *route);
void spy_registry_manifest(struct spy_http_request *req, const struct spy_oci_route *route);
void spy_registry_blob(struct spy_http_request *req, const struct spy_oci_route *route);
void spy_registry_referrers(struct spy_http_request *req, const struct spy_oci_route *route);
/* uploads.c: POST .../blobs/uploads/ (with ?digest=, ?mount=&from=) */
void spy_registry_upload_start(struct spy_http_request *req, const struct spy_oci_route *route);
/* uploads.c: PATCH, PUT, GET, DELETE .../blobs/uploads/<uuid> */
void spy_registry_upload(struct spy_http_request *req, const struct spy_oci_route *route);

#endif
