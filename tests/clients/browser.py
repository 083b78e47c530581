"""A headless "browser" that third-party MCP clients open for OAuth: `python -m tests.clients.browser URL`.

Clients (mcp-remote through the `open` package and `$BROWSER`, the TypeScript SDK driver through
its redirect handler) start it with the gateway's authorization URL. It signs the person in on the
gateway's login page and answers the consent page as a person would — Allow when it is offered,
otherwise Deny — then delivers the redirect to the client's own redirect URI (a loopback listener
of the client), exactly where a real browser would land.

Environment: BROWSER_USER, BROWSER_PASSWORD, and BROWSER_LOG: a file that gets a JSON line with the
outcome when it is done (the tests' launcher script adds one when it is opened: what they count).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx

from tests.support.headless import HeadlessLoginError, headless_authorize

TIMEOUT = 15.0


async def walk(authorize_url: str, username: str, password: str) -> tuple[str, httpx.URL]:
    """The consent decision taken and where the browser was sent with it."""
    redirect_uri = httpx.URL(authorize_url).params["redirect_uri"]
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        try:
            landed = await headless_authorize(browser, authorize_url, username, password,
                                              stop_at_prefix=redirect_uri, consent_action="allow")
            return "allow", landed
        except HeadlessLoginError:
            # No Allow on the consent page (the person has no access): a person presses Deny.
            landed = await headless_authorize(browser, authorize_url, username, password,
                                              stop_at_prefix=redirect_uri, consent_action="deny")
            return "deny", landed


async def deliver(landed: httpx.URL, attempts: int = 100) -> int:
    """Request the redirect URI; the client's listener may still be starting (bounded retries)."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        for _ in range(attempts - 1):
            try:
                return (await browser.get(landed)).status_code
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
        return (await browser.get(landed)).status_code


async def main(authorize_url: str) -> int:
    record: dict[str, object] = {"authorize_url": authorize_url}
    try:
        decision, landed = await walk(authorize_url, os.environ["BROWSER_USER"], os.environ["BROWSER_PASSWORD"])
        record.update(decision=decision, error=landed.params.get("error"), has_code="code" in landed.params)
        record["delivered"] = await deliver(landed)
    except (HeadlessLoginError, httpx.HTTPError, KeyError) as problem:
        record["failure"] = f"{type(problem).__name__}: {problem}"[:1000]
    with open(os.environ["BROWSER_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    return 0 if "failure" not in record else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
