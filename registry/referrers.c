/* referrers.c - GET /v2/<name>/referrers/<digest>[?artifactType=T]
 * (distribution-spec v1.1.1, "Listing Referrers").
 *
 * The answer is always an OCI image index (Content-Type
 * application/vnd.oci.image.index.v1+json) listing the manifests of the
 * repository whose subject is <digest>, with their artifactType and
 * annotations; none is an empty index, never a 404, for any valid digest
 * (an unknown repository or subject included). With ?artifactType= only
 * exact matches are listed and OCI-Filters-Applied: artifactType says so; a
 * malformed query string applies no filter (no OCI-Filters-Applied: the
 * client filters, as the spec has it for registries without filtering).
 * An invalid digest is 400 DIGEST_INVALID. The list stops at
 * SPY_META_REFERRERS_MAX entries (logged when cut; no Link paging yet). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_digest.h"
#include "registry/oci_query.h"
#include "registry/oci_referrers.h"
#include "registry/registry.h"

#define INDEX_TYPE     "application/vnd.oci.image.index.v1+json"
#define MEDIA_TYPE_MAX 255 /* RFC 6838: 127 + "/" + 127 */

struct referrers_req {
    struct spy_registry_req base;
    struct spy_meta_op op;
    struct spy_oci_query query; /* owns 'filter' */
    const char *filter;         /* artifactType, NULL when absent or empty */
};

/* respond_index: builds and sends the index for refs[0..count). */
static void respond_index(struct spy_http_request *req, const struct spy_oci_referrer *refs,
                          size_t count, const char *filter)
{
    char *body = NULL;
    size_t len = 0;
    bool filtered = false;
    int rc = spy_oci_referrers_json(refs, count, filter, &body, &len, &filtered);
    if (rc != SPY_OK) {
        spy_error("registry: cannot build a referrers index: %s", spy_strerror(rc));
        spy_registry_error(req, SPY_OCI_UNKNOWN, NULL, NULL, NULL, 0);
        return;
    }
    const struct spy_http_field f[2] = {{"Content-Type", INDEX_TYPE},
                                        {"OCI-Filters-Applied", "artifactType"}};
    spy_registry_respond(req, 200, f, filtered ? 2 : 1, body, len);
    free(body);
}

/* referrers_done: REFERRERS answered. */
static void referrers_done(struct spy_meta_op *op)
{
    struct referrers_req *r = op->data;
    if (r->base.req == NULL) {
        spy_meta_op_release(op);
        return;
    }
    if (op->status == SPY_OK || op->status == SPY_ENOTFOUND) {
        if (op->out.more)
            spy_warn("registry: referrers of %s in %s cut at %zu entries", r->base.ref,
                     r->base.name, op->out.count);
        size_t count = op->status == SPY_OK ? op->out.count : 0;
        respond_index(r->base.req, op->out.referrers, count, r->filter);
    } else {
        spy_registry_error(r->base.req, spy_registry_code_for(op->status, SPY_OCI_UNKNOWN), NULL,
                           NULL, NULL, 0);
    }
    spy_meta_op_release(op);
    spy_registry_req_finish(&r->base);
}

/* referrers_destroy: frees what the state owns. */
static void referrers_destroy(struct spy_registry_req *base)
{
    struct referrers_req *r = (struct referrers_req *)base;
    spy_meta_op_release(&r->op);
    spy_oci_query_free(&r->query);
}

static const struct spy_registry_req_ops referrers_ops = {.destroy = referrers_destroy};

void spy_registry_referrers(struct spy_http_request *req, const struct spy_oci_route *route)
{
    struct spy_oci_digest d;
    enum spy_oci_code code = spy_oci_digest_parse(route->ref, route->ref_len, &d);
    if (code == SPY_OCI_DIGEST_INVALID) {
        spy_registry_error(req, SPY_OCI_DIGEST_INVALID, "invalid digest", NULL, NULL, 0);
        return;
    }
    struct referrers_req *r =
        (struct referrers_req *)spy_registry_req_new(req, route, sizeof(*r), &referrers_ops);
    if (r == NULL) {
        spy_registry_error(req, SPY_OCI_UNKNOWN, "out of memory", NULL, NULL, 0);
        return;
    }
    const char *qs = req->query;
    if (spy_oci_query_parse(qs, qs != NULL ? strlen(qs) : 0, &r->query) != SPY_OK)
        spy_debug("registry: referrers: malformed query ignored (no filter applied)");
    const char *filter = spy_oci_query_get(&r->query, "artifactType", NULL);
    r->filter = filter != NULL && filter[0] != '\0' ? filter : NULL;
    /* Nothing stored can name an unsupported digest, nor have an artifact
     * type longer than a media type may be: an empty index. */
    if (code == SPY_OCI_UNSUPPORTED || (r->filter != NULL && strlen(r->filter) > MEDIA_TYPE_MAX)) {
        respond_index(req, NULL, 0, r->filter);
        spy_registry_req_finish(&r->base);
        return;
    }
    spy_meta_op_init(&r->op, SPY_META_REFERRERS, referrers_done, r);
    r->op.in.repo = r->base.name;
    r->op.in.digest = r->base.ref;
    r->op.in.artifact_type = r->filter;
    int rc = spy_registry_meta_submit(&r->base, &r->op);
    if (rc != SPY_OK) {
        spy_registry_error(req, spy_registry_code_for(rc, SPY_OCI_UNKNOWN), NULL, NULL, NULL, 0);
        spy_registry_req_finish(&r->base);
    }
}
