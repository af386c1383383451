"""Checks of tag listing (spec "Listing Tags", end-8a/8b) and the catalog
(/v2/_catalog, distribution's extension with the same n/last/Link rules)."""

import urllib.parse

from . import content, ops, wire
from .runner import (
    check,
    expect,
    expect_error,
    expect_header,
    expect_json,
    expect_no_header,
    expect_status,
    fail,
)

# Pushed out of order; byte order and the spec's case-insensitive order agree
# on these (no upper case, separators sort before digits and letters).
TAGS = ["v2", "latest", "v10", "1.0", "alpha_1", "alpha-1", "alpha.1", "beta", "v1.0.0", "0"]
SORTED = sorted(TAGS)


def _repo(ctx):
    return ctx.repo("tags")


def _tagged(ctx):
    """Fixture: the repository 'tags' with TAGS on one manifest."""

    def build(ctx):
        m = ops.push_image(
            ctx.client, _repo(ctx), TAGS[0], "tags/" + ctx.run_id, layers=1, layer_size=64
        )
        for t in TAGS[1:]:
            ops.push_manifest(ctx.client, _repo(ctx), t, m)
        return m

    return ctx.fixture("tags", build)


def _list(ctx, path):
    """GET a tag list page: 200 JSON {"name","tags"}. Returns (resp, tags)."""
    resp = ctx.client.request("GET", path)
    expect_status(resp, 200)
    doc = expect_json(resp)
    expect(
        doc.get("name") == _repo(ctx),
        "%s: name %r, expected %r" % (resp.describe(), doc.get("name"), _repo(ctx)),
    )
    tags = doc.get("tags")
    if tags is None:
        tags = []
    expect(
        isinstance(tags, list), "%s: tags is not a list: %s" % (resp.describe(), resp.body[:200])
    )
    return resp, tags


def _tags_path(ctx, **query):
    path = "/v2/%s/tags/list" % _repo(ctx)
    return ops.with_query(path, **query) if query else path


@check("tags.list")
def tags_list(ctx):
    """GET tags/list: every tag, in lexical order."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx))
    if tags != SORTED:
        fail(resp, "tags %s" % SORTED, "%s" % tags)


@check("tags.n")
def tags_n(ctx):
    """?n=3: the first 3 tags in order, with Link rel="next" (more remain).

    The spec makes Link a MAY when exactly n tags come back; clients that paginate (containerd,
    crane, regclient) follow it, and speedy sends it."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx, n=3))
    if tags != SORTED[:3]:
        fail(resp, "tags %s" % SORTED[:3], "%s" % tags)
    link = expect_header(resp, "Link")
    expect(
        wire.next_link(link) is not None, '%s: Link %r has no rel="next"' % (resp.describe(), link)
    )


@check("tags.n-last")
def tags_n_last(ctx):
    """?n=2&last=<tag>: the 2 tags after <tag> (exclusive)."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx, n=2, last=SORTED[3]))
    if tags != SORTED[4:6]:
        fail(resp, "tags %s" % SORTED[4:6], "%s" % tags)


@check("tags.last")
def tags_last(ctx):
    """?last=<tag> without n: every tag after <tag>."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx, last=SORTED[5]))
    if tags != SORTED[6:]:
        fail(resp, "tags %s" % SORTED[6:], "%s" % tags)


@check("tags.last-not-a-tag")
def tags_last_not_a_tag(ctx):
    """?last= a value that is not a tag: the tags sorting after it."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx, last="alpha_0"))
    want = [t for t in SORTED if t > "alpha_0"]
    if tags != want:
        fail(resp, "tags %s" % want, "%s" % tags)


@check("tags.n-zero")
def tags_n_zero(ctx):
    """?n=0: an empty list and no Link."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx, n=0))
    expect(tags == [], "%s: expected no tags, got %s" % (resp.describe(), tags))
    expect_no_header(resp, "Link")


@check("tags.n-past-end")
def tags_n_past_end(ctx):
    """?n larger than the number of tags: all of them and no Link."""
    _tagged(ctx)
    resp, tags = _list(ctx, _tags_path(ctx, n=len(TAGS) + 5))
    if tags != SORTED:
        fail(resp, "tags %s" % SORTED, "%s" % tags)
    expect_no_header(resp, "Link")


@check("tags.link-follow")
def tags_link_follow(ctx):
    """Following Link rel="next" from ?n=3 visits every tag once, in order, then no Link."""
    _tagged(ctx)
    got, pages = _follow(ctx, _tags_path(ctx, n=3), lambda resp: _tags_of(ctx, resp))
    if got != SORTED:
        fail(
            ctx.client.request("GET", _tags_path(ctx, n=3)),
            "pages concatenating to %s" % SORTED,
            "%s over %d pages" % (got, pages),
        )


def _tags_of(ctx, resp):
    doc = expect_json(resp)
    return doc.get("tags") or []


def _follow(ctx, path, items_of, stop=None, max_pages=200):
    """Follows Link rel="next" from path; returns (items, pages). Each page
    must be 200; stop(items) may end the walk early."""
    items, url, pages = [], path, 0
    while url is not None:
        pages += 1
        expect(pages <= max_pages, "Link chain from %s longer than %d pages" % (path, max_pages))
        resp = ctx.client.request("GET", url)
        expect_status(resp, 200)
        items.extend(items_of(resp))
        link = resp.header("Link")
        nxt = wire.next_link(link) if link else None
        if link and nxt is None:
            fail(resp, 'Link with rel="next"', link)
        url = urllib.parse.urljoin(resp.url, nxt) if nxt else None
        if stop is not None and stop(items):
            break
    return items, pages


@check("tags.unknown-repo")
def tags_unknown_repo(ctx):
    """Tag list of a repository that does not exist: 404 NAME_UNKNOWN."""
    expect_error(
        ctx.client.request("GET", "/v2/%s/tags/list" % ctx.repo("no-such-repo")),
        404,
        "NAME_UNKNOWN",
    )


@check("tags.n-invalid")
def tags_n_invalid(ctx):
    """?n= not a non-negative integer: 400 PAGINATION_NUMBER_INVALID."""
    _tagged(ctx)
    for n in ("-1", "abc"):
        expect_error(
            ctx.client.request("GET", _tags_path(ctx, n=n)), 400, "PAGINATION_NUMBER_INVALID"
        )


# ---- catalog ----------------------------------------------------------------

CATALOG_REPOS = ["b", "a", "a/c", "a-b", "c.d", "a_b"]


def _catalog_repos(ctx):
    """Fixture: repositories under <namespace>/catalog/, each with one
    image. Returns their full names, sorted."""

    def build(ctx):
        names = [ctx.repo("catalog/" + r) for r in CATALOG_REPOS]
        for name in names:
            ops.push_image(ctx.client, name, "t", "catalog/" + ctx.run_id, layers=1, layer_size=16)
        return sorted(names)

    return ctx.fixture("catalog", build)


def _repos_of(resp):
    doc = expect_json(resp)
    repos = doc.get("repositories")
    expect(
        isinstance(repos, list),
        "%s: repositories is not a list: %s" % (resp.describe(), resp.body[:200]),
    )
    return repos


def _catalog_prefix(ctx):
    return ctx.repo("catalog/")


@check("catalog.list")
def catalog_list(ctx):
    """GET /v2/_catalog?n=<k>&last=<just before ours>: our repositories, in lexical order, nothing
    of
    ours missing.
    """
    names = _catalog_repos(ctx)
    prefix = _catalog_prefix(ctx)
    resp = ctx.client.request("GET", ops.with_query("/v2/_catalog", n=len(names), last=prefix[:-1]))
    expect_status(resp, 200)
    repos = _repos_of(resp)
    expect(repos == sorted(repos), "%s: not sorted: %s" % (resp.describe(), repos))
    ours = [r for r in repos if r.startswith(prefix)]
    if ours != names:
        fail(resp, "repositories %s" % names, "%s" % repos)


@check("catalog.paginate")
def catalog_paginate(ctx):
    """_catalog with n=2 from just before our repositories: Link rel="next" walks them in order,
    each
    once.
    """
    names = _catalog_repos(ctx)
    prefix = _catalog_prefix(ctx)
    start = ops.with_query("/v2/_catalog", n=2, last=prefix[:-1])
    past = lambda items: bool(items) and items[-1] > prefix + "\uffff"
    items, _ = _follow(ctx, start, _repos_of, stop=past)
    expect(items == sorted(items), "%s: pages not in order: %s" % (start, items))
    expect(len(items) == len(set(items)), "%s: a repository listed twice: %s" % (start, items))
    ours = [r for r in items if r.startswith(prefix)]
    expect(ours == names, "%s: walked %s, expected %s" % (start, ours, names))


@check("catalog.n-zero")
def catalog_n_zero(ctx):
    """_catalog?n=0: an empty list and no Link."""
    _catalog_repos(ctx)
    resp = ctx.client.request("GET", "/v2/_catalog?n=0")
    expect_status(resp, 200)
    expect(
        _repos_of(resp) == [],
        "%s: expected no repositories, got %s" % (resp.describe(), resp.body[:200]),
    )
    expect_no_header(resp, "Link")


@check("catalog.n-invalid")
def catalog_n_invalid(ctx):
    """_catalog?n= negative, not a number, or above the maximum: 400 PAGINATION_NUMBER_INVALID."""
    for n in ("-1", "abc", "100000"):
        resp = ctx.client.request("GET", ops.with_query("/v2/_catalog", n=n))
        expect_error(resp, 400, "PAGINATION_NUMBER_INVALID")
