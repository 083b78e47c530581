"""Prometheus metrics of a real gateway: scraped from the admin port after real traffic, the
counters move by exactly what was sent — and the metrics are not reachable through the proxy."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import DANA_PASSWORD, local_accounts, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.processes import free_port
from tests.support.waiting import wait_until

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "metrics-test", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def metered_gateway(tmp_path_factory, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("gw-metrics")
    metrics_port = free_port()
    with run_gateway(tmp, [server_entry("currenttime", upstream_sse_answers.url)],
                     auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                     gateway={"policy_dir": str(test_policy_dir(tmp)), "metrics_port": metrics_port}) as gw:
        wait_for_login_app(gw)
        gw.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield gw


def scrape(gw) -> Samples:
    text = httpx.get(gw.metrics_url, timeout=5).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_requests_decisions_logins_and_latency_are_counted(metered_gateway):
    gw = metered_gateway
    before = scrape(gw)

    dana = cookie_header(login_local(gw.url, "dana", DANA_PASSWORD))
    wrong = httpx.post(f"{gw.url}/oauth/login/local", data={"username": "dana", "password": "wrong"},
                       headers={"origin": gw.url}, timeout=15)
    assert wrong.status_code == 401
    for _ in range(2):  # allowed: dana may use currenttime
        answer = httpx.post(gw.streamable_url("currenttime"), json=INITIALIZE, headers={**MCP_HEADERS, **dana},
                            timeout=15)
        assert answer.status_code == 200, answer.text
    for _ in range(3):  # refused: no credentials
        assert httpx.post(gw.streamable_url("currenttime"), json=INITIALIZE, headers=MCP_HEADERS,
                          timeout=15).status_code == 401
    # unauthenticated: names are not told apart before sign-in (docs/data-plane.md)
    assert httpx.get(f"{gw.url}/api/streamable/nosuchserver", timeout=15).status_code == 401

    after = scrape(gw)
    requests = "mcp_gateway_requests_total"
    assert moved(before, after, requests, server="currenttime", route="streamable", decision="allowed",
                 status="200") == 2
    assert moved(before, after, requests, server="currenttime", route="streamable", decision="refused",
                 status="401") == 3
    # An unknown server name is not a label value: anyone could mint unbounded series.
    assert moved(before, after, requests, server="-", route="streamable", decision="refused", status="401") == 1
    assert not [key for key in after if ("server", "nosuchserver") in key[1]]
    assert moved(before, after, "mcp_gateway_logins_total", provider="local", outcome="success") == 1
    assert moved(before, after, "mcp_gateway_logins_total", provider="local", outcome="failure") == 1
    assert moved(before, after, "mcp_gateway_response_latency_seconds_count", server="currenttime",
                 route="streamable") == 5
    assert value(after, "mcp_gateway_sessions", kind="browser") >= 1
    assert value(after, "mcp_gateway_open_streams", server="currenttime") == 0


def test_open_event_streams_are_a_gauge(metered_gateway):
    gw = metered_gateway
    dana = cookie_header(login_local(gw.url, "dana", DANA_PASSWORD))
    with httpx.stream("GET", gw.sse_url("currenttime"), headers={"accept": "text/event-stream", **dana},
                      timeout=15) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: a discarded iterator closes the stream
        assert next(lines) == "event: endpoint"  # the stream is open end to end
        assert value(scrape(gw), "mcp_gateway_open_streams", server="currenttime") == 1
    wait_until(lambda: value(scrape(gw), "mcp_gateway_open_streams", server="currenttime") == 0, 10,
               "the closed stream is no longer counted as open")


def test_metrics_are_not_reachable_through_the_proxy(metered_gateway):
    gw = metered_gateway
    signed_in = cookie_header(login_local(gw.url, "dana", DANA_PASSWORD))
    answers = {path: httpx.get(f"{gw.url}{path}", headers=signed_in, timeout=15)
               for path in ("/metrics", "/api/metrics", "/oauth/metrics", "/healthz/%2e%2e/metrics")}
    assert {path: answer.status_code for path, answer in answers.items()} == \
        {"/metrics": 404, "/api/metrics": 404, "/oauth/metrics": 404, "/healthz/%2e%2e/metrics": 400}
    assert not any("mcp_gateway_requests" in answer.text for answer in answers.values())
    assert "metrics: Prometheus metrics on http://127.0.0.1:" in gw.log  # loopback unless configured


def test_healthz_answers_without_credentials_and_reveals_nothing(metered_gateway):
    answer = httpx.get(f"{metered_gateway.url}/healthz", timeout=15)
    assert answer.status_code == 200
    body = answer.json()
    # the policy version is a content hash of the policy files: it tells nothing of what they say
    assert body == {"status": "ok", "policy_version": body["policy_version"]}
    assert re.fullmatch(r"[0-9a-f]{16}", body["policy_version"])


def test_the_policy_version_in_force_is_a_metric_and_in_healthz(metered_gateway):
    version = httpx.get(f"{metered_gateway.url}/healthz", timeout=15).json()["policy_version"]
    assert value(scrape(metered_gateway), "mcp_gateway_policy_info", version=version) == 1
