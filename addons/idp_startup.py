"""Stops start-up when the identity provider's sign-in endpoints cannot be known.

Runs in `running`, before the login app's supervisor starts the login app: it reads the IdP's
discovery document with async httpx (the event loop keeps serving) for at most
FIRST_CHECK_TIMEOUT seconds.

- The document (or the configuration) names no authorization/token endpoint: an error line
  saying what to set; mitmproxy's start-up check then exits (code 1) — never a 502 at login.
- The IdP cannot be reached: a warning, start-up goes on, the login app answers 503 to
  sign-ins until discovery succeeds, and this addon retries in the background with back-off.
  Should the IdP then answer without the endpoints, the gateway logs why and shuts down.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx

from mcp_gateway.providers.endpoints import EndpointsMissing, EndpointsUnavailable
from mcp_gateway.providers.readiness import (
    FIRST_CHECK_TIMEOUT,
    needs_sign_in_endpoints,
    retry_delay,
    sign_in_endpoints,
)

from .runtime import Runtime

log = logging.getLogger(__name__)


class IdpStartupCheck:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._task: asyncio.Task | None = None
        self._checked = False

    async def running(self) -> None:
        config = self.runtime.config
        if config is None or self._checked or not needs_sign_in_endpoints(config):
            return
        self._checked = True
        try:
            endpoints = await asyncio.wait_for(sign_in_endpoints(config), FIRST_CHECK_TIMEOUT)
        except EndpointsMissing as missing:
            # Logged as an error during start-up: mitmproxy's start-up check exits on it.
            log.error("gateway configuration error: %s", missing.reason)
            return
        except (EndpointsUnavailable, TimeoutError) as error:
            reason = getattr(error, "reason", f"no answer within {FIRST_CHECK_TIMEOUT:.0f}s")
            log.warning("auth: %s sign-in not available yet (%s); sign-ins answer 503 until the identity "
                        "provider answers; retrying in the background", config.auth.provider_type, reason)
            self._task = asyncio.get_running_loop().create_task(self._retry())
            return
        log.info("auth: %s sign-in at %s", config.auth.provider_type, endpoints.authorize_url)

    async def _retry(self) -> None:
        attempt = 0
        while (config := self.runtime.config) is not None:
            await asyncio.sleep(retry_delay(attempt))
            attempt += 1
            try:
                endpoints = await asyncio.wait_for(sign_in_endpoints(config), FIRST_CHECK_TIMEOUT)
            except EndpointsMissing as missing:
                log.error("gateway configuration error: %s; stopping", missing.reason)
                ctx.master.shutdown()
                return
            except (EndpointsUnavailable, TimeoutError) as error:
                log.warning("auth: %s sign-in still not available (attempt %d): %s", config.auth.provider_type,
                            attempt, getattr(error, "reason", "no answer"))
                continue
            log.info("auth: %s sign-in available now, at %s", config.auth.provider_type, endpoints.authorize_url)
            return

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
