"""Secret tool-call arguments masked in the stored flow once forwarded (docs/end-to-end-tokens.md):
the pure masking at the core and the addon with mitmproxy's taddons/tflow."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import taddons, tflow, tutils

from addons.mask_arguments import MaskArguments
from addons.runtime import Runtime
from mcp_gateway.argument_masking import MASK, masked_body
from mcp_gateway.config import load_config
from mcp_gateway.config_schema import GATEWAY_KEYS

DEFAULTS = next(k.default for k in GATEWAY_KEYS if k.name == "masked_argument_names")
TOKEN = "ghp_0123456789abcdefSECRET"


def call(arguments, id_=1) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": "t", "arguments": arguments}}


# Secret-looking names in every spelling and position the defaults must catch.
SECRET_ARGUMENTS = [
    {"github_token": TOKEN},
    {"GitHub_Token": TOKEN},
    {"TOKEN": TOKEN},
    {"accessToken": TOKEN},
    {"password": TOKEN},
    {"db_Password": TOKEN},
    {"client_secret": TOKEN},
    {"aws_secret_access_key": TOKEN},
    {"api_key": TOKEN},
    {"apiKey": TOKEN},
    {"AWS_ACCESS_KEY_ID": TOKEN},
    {"credentials": TOKEN},
    {"auth": {"token": TOKEN}},                        # nested object
    {"accounts": [{"name": "a", "password": TOKEN}]},  # inside a list
    {"token": {"value": TOKEN, "kind": "pat"}},        # a secret name holding an object
    {"token": [TOKEN]},                                # ... or a list
    {"token": 12345678},                               # ... or a number
]


@pytest.mark.parametrize("arguments", SECRET_ARGUMENTS)
def test_secret_arguments_are_masked_at_any_depth(arguments):
    out = masked_body(json.dumps(call(arguments)).encode(), DEFAULTS)
    assert out is not None and TOKEN not in out.decode() and "12345678" not in out.decode()
    assert MASK in out.decode()


def test_other_arguments_and_the_envelope_stay():
    body = call({"username": "bob", "repo": "x", "github_token": TOKEN})
    out = json.loads(masked_body(json.dumps(body).encode(), DEFAULTS))
    assert out == call({"username": "bob", "repo": "x", "github_token": MASK})


def test_every_call_of_a_batch_is_masked():
    batch = [call({"token": TOKEN}, 1), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
             call({"nested": {"password": TOKEN}}, 3)]
    out = json.loads(masked_body(json.dumps(batch).encode(), DEFAULTS))
    assert out[0]["params"]["arguments"] == {"token": MASK}
    assert out[1] == batch[1]
    assert out[2]["params"]["arguments"] == {"nested": {"password": MASK}}


@pytest.mark.parametrize("body", [
    b"", b"not json", b"{", b"[]", b'"token"',
    json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"token": TOKEN}}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"arguments": {"token": TOKEN}}}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"token": TOKEN}}).encode(),
    json.dumps(call({"timezone": "UTC"})).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "x"}).encode(),
    b"[" * 5000 + b"]" * 5000,
])
def test_bodies_without_secret_call_arguments_are_left_alone(body):
    assert masked_body(body, DEFAULTS) is None


def test_patterns_are_configurable_and_an_empty_list_turns_masking_off():
    body = json.dumps(call({"github_token": TOKEN, "otp": "123"})).encode()
    assert json.loads(masked_body(body, ("otp",)))["params"]["arguments"] == {"github_token": TOKEN, "otp": MASK}
    assert masked_body(body, ()) is None


# -- the addon, with mitmproxy's test helpers ---------------------------------------------------

@pytest.fixture
def runtime(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[auth]\nenabled = false\n')
    return Runtime(config=load_config(path, env={}))


def post(body: bytes):
    request = tutils.treq(method=b"POST", path=b"/api/streamable/s", content=body)
    request.headers["content-type"] = "application/json"
    return tflow.tflow(req=request, resp=True)


@pytest.mark.parametrize("hook", ["responseheaders", "response", "error"])
def test_the_addon_masks_the_stored_body_once_the_request_has_gone(runtime, hook):
    addon = MaskArguments(runtime)
    flow = post(json.dumps(call({"github_token": TOKEN, "repo": "x"})).encode())
    with taddons.context(addon):
        getattr(addon, hook)(flow)
    stored = json.loads(flow.request.content)
    assert stored["params"]["arguments"] == {"github_token": MASK, "repo": "x"}
    assert flow.request.headers["content-length"] == str(len(flow.request.content))


def test_the_addon_never_touches_the_request_before_it_is_sent(runtime):
    # mitmproxy sends the request after the `request` hook: the addon has none, so the
    # upstream always receives the original bytes (proved end to end in test_end_to_end_tokens).
    assert not hasattr(MaskArguments(runtime), "request") and not hasattr(MaskArguments(runtime), "requestheaders")


def test_the_addon_leaves_other_bodies_byte_for_byte(runtime):
    addon = MaskArguments(runtime)
    original = b'{"jsonrpc": "2.0",   "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"a": 1}}}'
    flow = post(original)
    with taddons.context(addon):
        addon.response(flow)
    assert flow.request.content == original


def test_an_undecodable_body_is_left_alone(runtime):
    addon = MaskArguments(runtime)
    flow = post(b"\x00garbage")
    flow.request.headers["content-encoding"] = "gzip"
    with taddons.context(addon):
        addon.response(flow)
    assert flow.request.raw_content == b"\x00garbage"


def test_the_upstream_credential_header_is_masked_in_the_stored_flow(runtime):
    from addons.flow_state import state_of
    from mcp_gateway.config import ServerConfig
    addon = MaskArguments(runtime)
    flow = post(b"{}")
    state_of(flow).server = ServerConfig("s", "http://127.0.0.1:1", upstream_header="X-Api-Key",
                                         upstream_value_env="MCP_UPSTREAM_S")
    flow.request.headers["x-api-key"] = TOKEN
    with taddons.context(addon):
        addon.responseheaders(flow)
    assert flow.request.headers["x-api-key"] == MASK
