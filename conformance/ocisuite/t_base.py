"""Checks of the API version endpoint, GET /v2/ (spec end-1)."""

from .runner import check, expect_header, expect_status


@check("base.version")
def base_version(ctx):
    """GET /v2/ answers 200 (or 401 with a challenge) and Docker-Distribution-API-Version:
    registry/2.0.
    """
    resp = ctx.client.request("GET", "/v2/")
    expect_status(resp, 200, 401)
    expect_header(resp, "Docker-Distribution-API-Version", "registry/2.0")
    if resp.status == 401:
        expect_header(resp, "WWW-Authenticate")


@check("base.head")
def base_head(ctx):
    """HEAD /v2/ answers like GET, without a body (clients probe with either)."""
    resp = ctx.client.request("HEAD", "/v2/")
    expect_status(resp, 200, 401)
    expect_header(resp, "Docker-Distribution-API-Version", "registry/2.0")
