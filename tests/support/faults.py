"""A mitmproxy script loaded beside addons/gateway.py in fault tests: it makes the
gateway's forwarding step raise for requests whose query is `fault=1`, to prove that an
exception in a gateway hook refuses the request instead of forwarding it."""

import addons.forwarder as forwarder

_original = forwarder.upstream_target


def _faulty_upstream_target(server, route):
    if route.query == "fault=1":
        raise RuntimeError("fault injected by tests/support/faults.py")
    return _original(server, route)


forwarder.upstream_target = _faulty_upstream_target
addons = []
