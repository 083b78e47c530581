"""The MCP Gateway, as a mitmproxy script:

    mitmdump -s addons/gateway.py [--set gateway_config=gateway.toml]
    mitmweb  -s addons/gateway.py [--set gateway_config=gateway.toml]

This file stays thin: mitmproxy re-executes it on edit but never reloads the modules it
imports, and relative imports fail in it, so the code lives in the `addons` and
`mcp_gateway` packages. Restart the process after changing them.
"""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from addons.chain import build_chain  # noqa: E402
from addons.chain_dispatch import ChainDispatch  # noqa: E402
from addons.shed_builtins import ShedBuiltins  # noqa: E402

# One addon for mitmproxy to dispatch to; ShedBuiltins acts under mitmdump only.
addons = [ChainDispatch([*build_chain(), ShedBuiltins()])]
