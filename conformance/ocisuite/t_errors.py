"""Checks of the grammar errors every route shares (repository names) and of
the error codes no other area provokes. The per-route error codes
(BLOB_UNKNOWN, DIGEST_INVALID, ...) are checked where the route is; each
goes through runner.expect_error, which checks status, JSON shape and
code together."""

from . import content, ops
from .runner import CheckSkipped, check, expect_error

# Names breaking the spec's grammar (spec "Pulling manifests"): upper case,
# separators at either end or doubled beyond the grammar, too long.
BAD_NAMES = [
    "Upper/case",
    "conformance/UPPER",
    "-leading",
    "trailing-",
    "a..b",
    "a___b",
    "a._b",
    "a/-b",
    "ends.",
    "a" * 256,
]


def _name_routes(name):
    """One request per route family for a repository name."""
    d = content.digest(b"x")
    return [
        ("GET", "/v2/%s/tags/list" % name),
        ("GET", "/v2/%s/manifests/latest" % name),
        ("GET", "/v2/%s/blobs/%s" % (name, d)),
        ("POST", "/v2/%s/blobs/uploads/" % name),
    ]


@check("errors.name-invalid")
def errors_name_invalid(ctx):
    """Names breaking the grammar (upper case, bad separators, 256 characters) on tags, manifests,
    blobs, uploads: 400 NAME_INVALID.
    """
    for name in BAD_NAMES:
        for method, path in _name_routes(name):
            body = b"" if method == "POST" else None
            expect_error(ctx.client.request(method, path, body=body), 400, "NAME_INVALID")


@check("errors.name-max-length")
def errors_name_max_length(ctx):
    """A valid name of 255 characters is accepted (an upload can start)."""
    prefix = ctx.repo("long/")
    name = prefix + "n" * (255 - len(prefix))
    resp, url = ops.start_upload(ctx.client, name)
    ctx.client.request("DELETE", url)


@check("errors.name-separators")
def errors_name_separators(ctx):
    """Valid names with every separator the grammar allows (., _, __, -, ---, /) are accepted."""
    for leaf in ("a.b", "a_b", "a__b", "a-b", "a---b", "x/y/z"):
        resp, url = ops.start_upload(ctx.client, ctx.repo("sep/" + leaf))
        ctx.client.request("DELETE", url)


@check("errors.unsupported-method")
def errors_unsupported_method(ctx):
    """A method a route does not have (POST on a manifest, PUT on a blob): 405 with an UNSUPPORTED
    error body.
    """
    repo = ctx.repo("methods")
    for method, path in (
        ("POST", "/v2/%s/manifests/latest" % repo),
        ("PUT", ops.blob_path(repo, content.digest(b"m"))),
    ):
        expect_error(ctx.client.request(method, path, body=b"{}"), 405, "UNSUPPORTED")


@check("errors.unauthorized")
def errors_unauthorized(ctx):
    """UNAUTHORIZED (401) needs a registry with authentication; checked when /v2/ asks for it."""
    resp = ctx.client.request("GET", "/v2/")
    if resp.status != 401:
        raise CheckSkipped(
            "the registry does not require authentication (GET /v2/ = %d)" % resp.status
        )
    expect_error(resp, 401, "UNAUTHORIZED")
