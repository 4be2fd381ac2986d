"""loxo's own paths: every /_loxo/ answer is JSON, unknown paths and wrong
methods included (the control API's error shape and codes); the health
check; who may read /_loxo/metrics (--metrics-auth)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway import config as cfgmod
from gateway.loxo_paths import LoxoPaths
from gateway.metrics import Metrics
from tests.conftest import LoxoServer


@pytest.mark.parametrize(
    "path",
    [
        "/_loxo/",
        "/_loxo/nope",
        "/_loxo/healthz",
        "/_loxo/health/",
        "/_loxo/api",
        "/_loxo/api/v2/repos",
        "/_loxo/api/v1/no-such-thing",
    ],
)
def test_unknown_loxo_paths_answer_a_json_404(server: LoxoServer, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        answer = httpx.request(method, server.endpoint + path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]["code"] == "not_found"
        assert answer.headers["x-amz-request-id"]


@pytest.mark.parametrize("path", ["/_loxo/health", "/_loxo/metrics", "/_loxo/api/v1/repos"])
def test_wrong_methods_answer_a_json_405(server: LoxoServer, path: str) -> None:
    answer = httpx.request("PATCH", server.endpoint + path)
    assert answer.status_code == 405, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_health_answers_get_and_head(server: LoxoServer) -> None:
    answer = httpx.get(f"{server.endpoint}/_loxo/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    assert httpx.head(f"{server.endpoint}/_loxo/health").status_code == 200
    assert httpx.request("PUT", f"{server.endpoint}/_loxo/health").headers["allow"] == "GET, HEAD"


async def _ping() -> None:
    return None


async def _down() -> None:
    raise OSError("connection refused")


def _get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://loxo") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def test_metrics_are_public_by_default_and_negotiate_openmetrics() -> None:
    paths = LoxoPaths(_ping, Metrics())
    answer = _get(paths, "/_loxo/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "loxo_requests_total" in answer.text or "# HELP loxo_requests" in answer.text
    openmetrics = _get(
        paths, "/_loxo/metrics", {"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_metrics_token_is_required_under_metrics_auth_token() -> None:
    paths = LoxoPaths(_ping, Metrics(), metrics_token="s3cret-token")
    missing = _get(paths, "/_loxo/metrics")
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "unauthenticated")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = _get(paths, "/_loxo/metrics", {"authorization": "Bearer guess"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "access_denied")
    basic = _get(paths, "/_loxo/metrics", {"authorization": "Basic czNjcmV0LXRva2Vu"})
    assert basic.status_code == 401
    right = _get(paths, "/_loxo/metrics", {"authorization": "Bearer s3cret-token"})
    assert right.status_code == 200 and "loxo_build_info" in right.text
    # The health check stays open: load balancers probe it.
    assert _get(paths, "/_loxo/health").status_code == 200


def test_health_says_503_in_json_when_the_database_is_down() -> None:
    answer = _get(LoxoPaths(_down, Metrics()), "/_loxo/health")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"


def test_metrics_auth_token_needs_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOXO_METRICS_TOKEN", raising=False)
    monkeypatch.delenv("LOXO_ACCESS_KEY", raising=False)
    monkeypatch.delenv("LOXO_SECRET_KEY", raising=False)
    base = ("127.0.0.1:0", "./loxo-data", None, None, "us-east-1")
    assert cfgmod.build(*base).metrics_token is None
    with pytest.raises(cfgmod.ConfigError, match="LOXO_METRICS_TOKEN"):
        cfgmod.build(*base, metrics_auth="token")
    monkeypatch.setenv("LOXO_METRICS_TOKEN", "t0ken")
    cfg = cfgmod.build(*base, metrics_auth="token")
    assert (cfg.metrics_auth, cfg.metrics_token) == ("token", "t0ken")
    # Without --metrics-auth token the variable opens nothing up nor locks anything.
    assert cfgmod.build(*base).metrics_token is None
    with pytest.raises(cfgmod.ConfigError, match="--log-format"):
        cfgmod.build(*base, log_format="xml")
    with pytest.raises(cfgmod.ConfigError, match="--log-level"):
        cfgmod.build(*base, log_level="loud")
