/* tags.c - the tag list (/v2/<name>/tags/list) and the catalog
 * (/v2/_catalog), both paginated with ?n=&last= (oci_page.h).
 *
 * Both answer application/json, sorted bytewise (MySQL's binary collation),
 * 'last' exclusive. n defaults to SPY_OCI_PAGE_MAX for tags and
 * SPY_OCI_CATALOG_PAGE_DEFAULT for the catalog; n > SPY_OCI_PAGE_MAX or a
 * malformed n is 400 PAGINATION_NUMBER_INVALID; n=0 is an empty list. When
 * more rows follow the page, a Link header names the next one
 * (</v2/<name>/tags/list?n=N&last=X>; rel="next"). An unknown repository's
 * tag list is 404 NAME_UNKNOWN. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_names.h"
#include "registry/oci_page.h"
#include "registry/oci_query.h"
#include "registry/registry.h"

struct list_req {
    struct spy_registry_req base;
    struct spy_meta_op op;
    struct spy_oci_query query; /* owns 'last' */
    struct spy_oci_page page;
    char *last; /* NUL-terminated cursor, or NULL */
    int catalog;
};

/* answer_error: a terminal error from the state. */
static void answer_error(struct list_req *l, enum spy_oci_code code, const char *message)
{
    spy_registry_error(l->base.req, code, message, NULL, NULL, 0);
    spy_registry_req_finish(&l->base);
}

/* list_body: the JSON body and, when more rows follow, the Link value.
 * Returns SPY_OK or an error status. */
static int list_body(struct list_req *l, const struct spy_meta_out *out, char **body, size_t *len,
                     char *link, size_t cap)
{
    const char *const *names = (const char *const *)out->names;
    int rc = l->catalog ? spy_oci_catalog_json(names, out->count, body, len)
                        : spy_oci_tags_json(l->base.name, names, out->count, body, len);
    if (rc != SPY_OK)
        return rc;
    link[0] = '\0';
    if (!out->more || out->count == 0 || l->page.n == 0)
        return SPY_OK;
    const char *last = out->names[out->count - 1];
    int n = l->catalog ? spy_oci_catalog_link(link, cap, l->page.n, last)
                       : spy_oci_tags_link(link, cap, l->base.name, l->page.n, last);
    if (n < 0) {
        free(*body);
        return n;
    }
    return SPY_OK;
}

/* list_done: TAG_LIST or CATALOG answered. */
static void list_done(struct spy_meta_op *op)
{
    struct list_req *l = op->data;
    if (l->base.req == NULL) {
        spy_meta_op_release(op);
        return;
    }
    if (op->status != SPY_OK) {
        enum spy_oci_code code = spy_registry_code_for(op->status, SPY_OCI_NAME_UNKNOWN);
        spy_meta_op_release(op);
        answer_error(l, code, NULL);
        return;
    }
    char *body = NULL;
    size_t len = 0;
    char link[SPY_OCI_LINK_MAX];
    int rc = list_body(l, &op->out, &body, &len, link, sizeof(link));
    spy_meta_op_release(op);
    if (rc != SPY_OK) {
        spy_error("registry: cannot build the %s response: %s", l->catalog ? "catalog" : "tags",
                  spy_strerror(rc));
        answer_error(l, SPY_OCI_UNKNOWN, NULL);
        return;
    }
    struct spy_http_field f[2] = {{"Content-Type", "application/json"}, {"Link", link}};
    spy_registry_respond(l->base.req, 200, f, link[0] != '\0' ? 2 : 1, body, len);
    free(body);
    spy_registry_req_finish(&l->base);
}

/* list_destroy: frees what the state owns. */
static void list_destroy(struct spy_registry_req *base)
{
    struct list_req *l = (struct list_req *)base;
    spy_meta_op_release(&l->op);
    spy_oci_query_free(&l->query);
    free(l->last);
}

static const struct spy_registry_req_ops list_ops = {.destroy = list_destroy};

/* start_list: parses n/last and submits the listing. */
static void start_list(struct spy_http_request *req, const struct spy_oci_route *route, int catalog)
{
    struct list_req *l = (struct list_req *)spy_registry_req_new(req, route, sizeof(*l), &list_ops);
    if (l == NULL) {
        spy_registry_error(req, SPY_OCI_UNKNOWN, "out of memory", NULL, NULL, 0);
        return;
    }
    l->catalog = catalog;
    const char *qs = req->query;
    if (spy_oci_query_parse(qs, qs != NULL ? strlen(qs) : 0, &l->query) != SPY_OK) {
        answer_error(l, SPY_OCI_PAGINATION_NUMBER_INVALID, "malformed query string");
        return;
    }
    uint32_t def = catalog ? SPY_OCI_CATALOG_PAGE_DEFAULT : SPY_OCI_PAGE_MAX;
    enum spy_oci_code code = spy_oci_page_parse(&l->query, def, &l->page);
    if (code != SPY_OCI_OK) {
        answer_error(l, code, NULL);
        return;
    }
    /* A cursor longer than any name is cut to SPY_OCI_NAME_MAX: no name or
     * tag (at most that long) sorts between the cut and the whole cursor,
     * so the page is the same. */
    size_t last_len = l->page.last_len < SPY_OCI_NAME_MAX ? l->page.last_len : SPY_OCI_NAME_MAX;
    if (l->page.last != NULL && (l->last = strndup(l->page.last, last_len)) == NULL) {
        answer_error(l, SPY_OCI_UNKNOWN, "out of memory");
        return;
    }
    spy_meta_op_init(&l->op, catalog ? SPY_META_CATALOG : SPY_META_TAG_LIST, list_done, l);
    l->op.in.repo = l->base.name;
    l->op.in.n = l->page.n;
    l->op.in.last = l->last;
    int rc = spy_registry_meta_submit(&l->base, &l->op);
    if (rc != SPY_OK)
        answer_error(l, spy_registry_code_for(rc, SPY_OCI_NAME_UNKNOWN), NULL);
}

void spy_registry_tags(struct spy_http_request *req, const struct spy_oci_route *route)
{
    start_list(req, route, 0);
}

void spy_registry_catalog(struct spy_http_request *req)
{
    const struct spy_oci_route route = {.kind = SPY_OCI_ROUTE_CATALOG};
    start_list(req, &route, 1);
}
