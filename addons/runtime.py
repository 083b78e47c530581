"""What the gateway's addons share: the loaded configuration and the live registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_gateway.config import GatewayConfig
from mcp_gateway.registry import Registry


@dataclass
class Runtime:
    config: GatewayConfig | None = None
    registry: Registry | None = None
    login_app_url: str | None = None  # where /oauth/* is forwarded (the supervised child or an external app)
    services: dict[str, Any] = field(default_factory=dict)  # session store, policies, token validator, ...

    @property
    def ready(self) -> bool:
        return self.config is not None and self.registry is not None
