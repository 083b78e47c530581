"""One dispatch for the gateway's whole chain behaves as mitmproxy's own dispatch to each addon:
same calls in the same order, lifecycle hooks still sync, one addon's error logged without
skipping the next, AddonHalt still stops the event."""

import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import taddons, tflow

from addons.chain_dispatch import ChainDispatch


class Recording:
    def __init__(self, name: str, calls: list[str]):
        self.label, self.calls = name, calls

    def load(self, loader):
        self.calls.append(f"{self.label}.load")

    def configure(self, updated):
        self.calls.append(f"{self.label}.configure")


class SyncRequest(Recording):
    def request(self, flow):
        self.calls.append(f"{self.label}.request")


class AsyncRequest(Recording):
    async def request(self, flow):
        self.calls.append(f"{self.label}.request")

    async def response(self, flow):
        self.calls.append(f"{self.label}.response")


class Failing(Recording):
    def request(self, flow):
        raise ValueError("boom")


class Halting(Recording):
    def request(self, flow):
        raise exceptions.AddonHalt()


def test_only_the_hooks_someone_implements_exist_and_lifecycle_hooks_stay_sync():
    calls: list[str] = []
    dispatch = ChainDispatch([SyncRequest("a", calls), AsyncRequest("b", calls)])
    assert not hasattr(dispatch, "error") and not hasattr(dispatch, "responseheaders")
    with taddons.context(dispatch) as tctx:  # mitmproxy refuses an async `load` or `configure`
        tctx.configure(dispatch)
    assert calls[:2] == ["a.load", "b.load"] and "a.configure" in calls and "b.configure" in calls


async def test_flow_hooks_reach_each_implementing_addon_in_order():
    calls: list[str] = []
    dispatch = ChainDispatch([SyncRequest("a", calls), AsyncRequest("b", calls), SyncRequest("c", calls)])
    with taddons.context(dispatch) as tctx:
        calls.clear()
        flow = tflow.tflow(resp=True)
        await tctx.master.addons.invoke_addon(dispatch, HttpRequestHook(flow))
        await tctx.master.addons.invoke_addon(dispatch, HttpResponseHook(flow))
    assert calls == ["a.request", "b.request", "c.request", "b.response"]


async def test_an_error_in_one_addon_is_logged_and_the_next_still_runs(caplog):
    calls: list[str] = []
    dispatch = ChainDispatch([Failing("a", calls), SyncRequest("b", calls)])
    with taddons.context(dispatch) as tctx:
        caplog.set_level(logging.ERROR)
        await tctx.master.addons.invoke_addon(dispatch, HttpRequestHook(tflow.tflow()))
    assert "b.request" in calls
    assert any("Addon error: boom" in record.getMessage() for record in caplog.records)


async def test_addon_halt_stops_the_event():
    calls: list[str] = []
    dispatch = ChainDispatch([Halting("a", calls), SyncRequest("b", calls)])
    with taddons.context(dispatch) as tctx:
        with pytest.raises(exceptions.AddonHalt):
            await tctx.master.addons.invoke_addon(dispatch, HttpRequestHook(tflow.tflow()))
    assert "b.request" not in calls
