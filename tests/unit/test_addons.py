"""Addons at the unit level, with mitmproxy's own test helpers (taddons, tflow)."""

from __future__ import annotations

import json

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

from addons.auditor import Auditor
from addons.failclosed import refuse_on_error
from addons.flow_state import Outcome, state_of
from addons.router import Router
from addons.runtime import Runtime
from addons.sentinel import Sentinel
from addons.settings import Settings
from mcp_gateway.config import load_config
from mcp_gateway.registry import Registry


@pytest.fixture
def runtime(tmp_path):
    (tmp_path / "policies").mkdir()
    path = tmp_path / "gateway.toml"
    path.write_text('[auth]\nenabled = false\n[[servers]]\nname = "a"\nurl = "http://127.0.0.1:9"\n'
                    '[[servers]]\nname = "off"\nurl = "http://127.0.0.1:9"\nenabled = false\n')
    config = load_config(path, env={})
    return Runtime(config=config, registry=Registry(config.servers, tmp_path / "var", tmp_path))


def flow_for(path: str, method: str = "GET", headers: dict | None = None):
    request = tutils.treq(method=method.encode(), path=path.encode(), authority=b"", content=b"")
    del request.headers["content-length"]  # treq's default head declares a 7-byte body
    for name, value in (headers or {}).items():
        request.headers[name] = value
    return tflow.tflow(req=request)


@pytest.mark.parametrize("path,status", [
    ("/api/execute/nope/sse", 404), ("/api/execute/off/sse", 503), ("/api/execute/a%2fb", 400), ("/x", 404),
])
def test_router_refuses_with_json(runtime, path, status):
    router = Router(runtime)
    with taddons.context(router):
        flow = flow_for(path)
        router.requestheaders(flow)
        assert flow.response.status_code == status
        assert json.loads(flow.response.content)["status"] == status
        assert state_of(flow).outcome.verdict == "refused" and state_of(flow).outcome.status == status


def test_router_refuses_everything_while_unconfigured():
    router = Router(Runtime())
    with taddons.context(router):
        flow = flow_for("/api/execute/a/sse")
        router.requestheaders(flow)
        assert flow.response.status_code == 503


def test_router_routes_a_known_server(runtime):
    router = Router(runtime)
    with taddons.context(router):
        flow = flow_for("/api/execute/a/sse")
        router.requestheaders(flow)
        assert flow.response is None and state_of(flow).route.server == "a"


def test_a_failing_hook_answers_500_and_is_not_approved():
    class Broken:
        @refuse_on_error
        def request(self, flow):
            state_of(flow).approved = True
            raise RuntimeError("boom")

    flow = flow_for("/api/execute/a/sse")
    Broken().request(flow)
    assert flow.response.status_code == 500 and not state_of(flow).approved
    assert state_of(flow).outcome.verdict == "error"
    assert b"boom" not in flow.response.content


def test_sentinel_refuses_unapproved_flows_and_passes_approved_ones():
    sentinel = Sentinel()
    unseen = flow_for("/api/execute/a/sse")
    sentinel.requestheaders(unseen)
    assert unseen.response.status_code == 503 and unseen.marked
    approved = flow_for("/api/execute/a/sse")
    state_of(approved).seen = state_of(approved).approved = True
    sentinel.requestheaders(approved)
    sentinel.request(approved)
    assert approved.response is None


def test_auditor_comments_and_marks_refusals_in_mitmweb(runtime):
    auditor = Auditor(runtime)
    with taddons.context(auditor):
        flow = flow_for("/api/execute/a/sse")
        state_of(flow).seen = True
        state_of(flow).decide(Outcome("refused", 403, "mcp:server:a:read", "connect needs read"))
        flow.response = tutils.tresp(status_code=403)
        auditor.response(flow)
        assert "refused" in flow.comment and "mcp:server:a:read" in flow.comment
        assert flow.marked
        allowed = flow_for("/api/execute/a/sse")
        state_of(allowed).seen = True
        state_of(allowed).decide(Outcome("allowed", scope="x"))
        allowed.response = tutils.tresp()
        auditor.response(allowed)
        assert allowed.comment.startswith("allowed") and not allowed.marked
        auditor.done()  # the file is written by a thread: done() flushes it
    records = [json.loads(line) for line in runtime.config.audit_log.read_text().splitlines()]
    assert [r["decision"] for r in records] == ["refused", "allowed"]


def test_a_bad_config_set_at_run_time_is_refused_and_the_good_one_stays(tmp_path, runtime):
    settings = Settings(runtime)
    good = str(runtime.config.source)
    with taddons.context(settings) as tctx:
        tctx.configure(settings, gateway_config=good)
        settings._is_running = True
        (tmp_path / "bad.toml").write_text("[gateway]\nlisten_port = 'x'\n")
        with pytest.raises(exceptions.OptionsError, match="listen_port"):
            tctx.options.update(gateway_config=str(tmp_path / "bad.toml"))
        assert tctx.options.gateway_config == good
        assert runtime.ready and str(runtime.config.source) == good
