"""Runtime state with owners: a reconfiguration closes what it replaces, IdP providers are built
once per configuration (docs/architecture.md §5)."""

from __future__ import annotations

import asyncio
import time

import pytest
from mitmproxy.test import taddons

from addons import runtime as runtime_module
from addons.runtime import IdpProviders, Runtime
from addons.settings import Settings
from mcp_gateway.config import load_config


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def config_file(tmp_path):
    (tmp_path / "policies").mkdir()
    path = tmp_path / "gateway.toml"
    path.write_text(f'[auth]\nenabled = true\nprovider_type = "local"\nsecret_key = "{"k" * 40}"\n'
                    '[[servers]]\nname = "a"\nurl = "http://127.0.0.1:9"\n')
    return path


async def test_a_reconfiguration_closes_the_store_and_registry_it_replaces(config_file, monkeypatch):
    monkeypatch.setattr(runtime_module, "REPLACED_GRACE_SECONDS", 0.0)
    runtime = Runtime()
    settings = Settings(runtime)
    with taddons.context(settings) as tctx:
        tctx.configure(settings, gateway_config=str(config_file))
        first_store, first_registry = runtime.store, runtime.registry
        await first_store.ping()  # opened: it has a thread pool and a connection
        config_file.write_text(config_file.read_text() + '[[servers]]\nname = "b"\nurl = "http://127.0.0.1:9"\n')
        tctx.options.update(gateway_config=str(config_file.parent / "." / config_file.name))
        assert runtime.store is not first_store and runtime.registry is not first_registry
        await until(lambda: first_store._closed)
        assert first_registry._stop.is_set()
        await runtime.store.ping()  # the new one works
        assert runtime.registry.get("b") is not None
        settings.done()
    await asyncio.sleep(0)


async def test_the_store_waits_for_requests_still_using_it(config_file):
    runtime = Runtime()
    settings = Settings(runtime)
    with taddons.context(settings) as tctx:
        tctx.configure(settings, gateway_config=str(config_file))
        first = runtime.store
        tctx.options.update(gateway_config=str(config_file.parent / "." / config_file.name))
        await first.ping()  # a request that picked it up before the reconfiguration still works
        assert not first._closed
        settings.done()


class FakeProvider:
    """Stands in for an IdP client (Cognito, Okta): only its construction and closing are tested here."""

    def __init__(self):
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_providers_are_built_once_for_concurrent_first_requests_and_again_on_a_new_config(
        config_file, monkeypatch):
    monkeypatch.setattr(runtime_module, "REPLACED_GRACE_SECONDS", 0.0)
    builds: list[object] = []
    release = asyncio.Event()

    async def build(config):
        builds.append(config)
        await release.wait()  # both first requests arrive while the IdP's endpoints are looked up
        return {"okta": FakeProvider()}

    providers = IdpProviders(build)
    config = load_config(config_file, env={})
    first = [asyncio.create_task(providers.get(config)) for _ in range(5)]
    await until(lambda: len(builds) == 1)
    release.set()
    results = await asyncio.gather(*first)
    assert len(builds) == 1 and all(result is results[0] for result in results)
    assert await providers.get(config) is results[0] and len(builds) == 1

    changed = load_config(config_file, env={})  # a reconfiguration: a new config object
    rebuilt = await providers.get(changed)
    assert len(builds) == 2 and rebuilt is not results[0]
    await until(lambda: results[0]["okta"].closed)
    assert not rebuilt["okta"].closed


def test_the_services_view_reads_the_typed_fields_and_cannot_be_written():
    runtime = Runtime()
    runtime.builtin_servers["registry"] = object()
    assert runtime.services["builtin_servers"] is runtime.builtin_servers
    assert "store" not in runtime.services
    with pytest.raises(TypeError):
        runtime.services["store"] = object()
