"""`/docs` and `/redoc` work without internet access: the pages name no other host, and every asset they load
is served by the observer itself, on both ports."""

from __future__ import annotations

import re

import httpx
import pytest

from observer.app import create_internal_app

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.fixture
async def internal():
    transport = httpx.ASGITransport(create_internal_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        yield client


def references(html: str) -> list[str]:
    return [first or second for first, second in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_everything_from_the_observer(client, internal, page):
    for port in (client, internal):
        response = await port.get(page)
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
        html = response.text
        assert not re.search(r"https?://", html), "the page names another host"
        urls = references(html)
        assert any(url.endswith(".js") for url in urls), urls
        for url in urls:
            asset = await port.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 100, url


async def test_assets_are_served_with_their_content_types(client):
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert b"SwaggerUIBundle" in bundle.content
    css = await client.get("/docs/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")


async def test_a_missing_asset_is_the_contract_404(client):
    response = await client.get("/docs/assets/nothing.js")
    assert response.status_code == 404
    assert response.json()["errorCode"] == "OBS-V1-ROUTE-NOT-FOUND"
