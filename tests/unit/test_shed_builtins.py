"""mitmdump's unused built-ins leave the chain at start-up; any the operator turned on stay,
and so does everything the gateway and mitmdump's own output need. Other masters keep all."""

import pytest
from mitmproxy import options
from mitmproxy.master import Master
from mitmproxy.tools.dump import DumpMaster

from addons.shed_builtins import SHEDDABLE, ShedBuiltins

NEEDED = {"core", "block", "proxyserver", "nextlayer", "tlsconfig", "disableh2c", "scriptloader", "termlog",
          "keepserving", "errorcheck"}


async def started(**settings) -> set[str]:
    master = DumpMaster(options.Options())
    master.options.update(**settings)
    await ShedBuiltins().running()
    return set(master.addons.lookup)


async def test_mitmdump_keeps_only_what_the_gateway_uses():
    kept = await started()
    assert NEEDED <= kept
    assert not (set(SHEDDABLE) | {"dumper"}) & kept


@pytest.mark.parametrize(("addon", "settings"), [
    ("mapremote", {"map_remote": ["|example.com|example.org"]}),
    ("modifyheaders", {"modify_headers": ["/~q/Host/example.org"]}),
    ("save", {"save_stream_file": "/dev/null"}),
    ("blocklist", {"block_list": ["|~d evil.example|404"]}),
    ("stickycookie", {"stickycookie": ".*"}),
    ("dumper", {"flow_detail": 3}),
])
async def test_a_builtin_the_operator_turned_on_stays(addon, settings):
    kept = await started(**settings)
    assert addon in kept
    assert NEEDED <= kept


async def test_other_masters_are_left_alone():
    master = Master(options.Options())
    before = set(master.addons.lookup)
    await ShedBuiltins().running()
    assert set(master.addons.lookup) == before
