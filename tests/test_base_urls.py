"""A base URL the SDK would mangle is refused at start-up, saying why and never showing it: a query
string or fragment (it ends up in the middle of every request's path) or a `user:pass@` part (sent as
Basic auth in place of the key), in a `distill_endpoints` line or in OPENAI_BASE_URL."""

from __future__ import annotations

import pytest

from pytest_distill.sim import SimServer

PASSWORD = "hunter2-7f3a9c"
BAD_URLS = {
    "password": (f"http://admin:{PASSWORD}@127.0.0.1:1/v1", "it holds a user name or password (user:pass@host)"),
    "user": ("http://admin@127.0.0.1:1/v1", "it holds a user name or password (user:pass@host)"),
    "query": (f"http://127.0.0.1:1/v1?api-version=2024&token={PASSWORD}", "it has a query string or fragment"),
    "empty-query": ("http://127.0.0.1:1/v1?", "it has a query string or fragment"),
    "fragment": ("http://127.0.0.1:1/v1#x", "it has a query string or fragment"),
}
SUITE = "def test_x(model):\n    model.complete('hi')\n"


@pytest.mark.parametrize("url, said", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_an_endpoint_line_with_a_url_the_sdk_would_mangle_stops_the_run(
        pytester: pytest.Pytester, sim: SimServer, url: str, said: str) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeini(f"[pytest]\ndistill_endpoints =\n    local {url}\n")
    result = pytester.runpytest("--model", "local:gpt-4o")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ini distill_endpoints: line 1: the base URL is not usable: {said}" in result.stderr.str()
    assert PASSWORD not in result.stdout.str() + result.stderr.str()
    assert sim.requests == []


@pytest.mark.parametrize("url, said", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_openai_base_url_the_sdk_would_mangle_stops_the_run(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, url: str, said: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--model", "gpt-4o")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"OPENAI_BASE_URL is not a usable base URL: {said}" in result.stderr.str()
    assert PASSWORD not in result.stdout.str() + result.stderr.str()
