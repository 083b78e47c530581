"""Under `mitmdump -s addons/gateway.py`: remove the built-in addons the gateway does not use.

mitmdump loads some thirty built-ins and hands every hook event of every request to each of
them, though most do nothing unless their option is set (map_remote, client_replay, save, …).
At `running` this addon removes every built-in in `SHEDDABLE` whose options are all still at
their defaults, so mitmdump's chain is close to the launcher's (docs/benchmarks.md measures the
difference). A built-in an operator turned on with `--set` stays, and so does everything the
gateway, mitmdump's own output and `-s` need: `core`, `block`, `proxyserver`, `nextlayer`,
`tlsconfig`, `disableh2c`, `scriptloader`, `termlog`, `keepserving`, `errorcheck`.

`dumper` (one line per flow) goes too while `flow_detail` is 0 or 1, the gateway's access log
has that line; `--set flow_detail=2` (or more) keeps it for debugging with bodies. Under mitmweb
nothing is removed: its UI calls commands of these addons (export, cut, comment, replay).
Options changed after start-up no longer reach a removed addon: set them on the command line.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, hooks
from mitmproxy.addonmanager import AddonManager, traverse
from mitmproxy.tools.dump import DumpMaster

log = logging.getLogger(__name__)

# Built-in addon name -> the options that turn it on (it is kept when any differs from its default).
SHEDDABLE: dict[str, tuple[str, ...]] = {
    "browser": (), "commandhistory": (), "comment": (), "cut": (), "export": (),  # commands for consoles
    "stripdnshttpsrecords": (), "dnsresolver": (),  # DNS modes; the gateway is a reverse HTTP proxy
    "onboarding": (), "updatealtsvc": (),  # the mitm.it app and Alt-Svc rewriting: the launcher has neither
    "blocklist": ("block_list",),
    "anticache": ("anticache",),
    "anticomp": ("anticomp",),
    "clientplayback": ("client_replay",),
    "serverplayback": ("server_replay",),
    "proxyauth": ("proxyauth",),
    "mapremote": ("map_remote",),
    "maplocal": ("map_local",),
    "modifybody": ("modify_body",),
    "modifyheaders": ("modify_headers",),
    "stickyauth": ("stickyauth",),
    "stickycookie": ("stickycookie",),
    "save": ("save_stream_file",),
    "savehar": ("hardump",),
    "upstreamauth": ("upstream_auth",),
    "readfilestdin": ("rfile",),
}


def _in_use(options: tuple[str, ...]) -> bool:
    return any(name in ctx.options and ctx.options.has_changed(name) for name in options)


async def _remove(addons: AddonManager, name: str) -> None:
    """`AddonManager.remove`, whose sync `done` call fails on addons with an async `done` (clientplayback)."""
    addon = addons.lookup[name]
    for part in traverse([addon]):
        addons.chain = [a for a in addons.chain if a is not part]
        addons.lookup = {key: a for key, a in addons.lookup.items() if a is not part}
    await addons.invoke_addon(addon, hooks.DoneHook())


class ShedBuiltins:
    async def running(self) -> None:
        master = ctx.master
        if not isinstance(master, DumpMaster):  # mitmweb, the launcher's lean master, tests
            return
        shed = [name for name, options in SHEDDABLE.items() if name in master.addons.lookup and not _in_use(options)]
        if "dumper" in master.addons.lookup and ctx.options.flow_detail <= 1:
            shed.append("dumper")
        for name in shed:
            await _remove(master.addons, name)
        log.info("mitmdump built-ins the gateway does not use, removed: %s", ", ".join(shed) or "none")
