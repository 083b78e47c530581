"""Local accounts: ADMIN_USER/ADMIN_PASSWORD and [[auth.local.accounts]] with scrypt hashes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from mcp_gateway.config import AuthConfig
from mcp_gateway.passwords import dummy_verify, hash_password, verify_password

ADMIN_GROUP = "mcp-admin"


@dataclass(frozen=True)
class LocalUser:
    username: str
    groups: tuple[str, ...]


class LocalAccounts:
    def __init__(self, entries: dict[str, tuple[str, tuple[str, ...]]]):
        self._entries = entries  # username -> (scrypt hash, groups)

    @classmethod
    def from_config(cls, auth: AuthConfig) -> LocalAccounts:
        entries = {a.username: (a.password_hash, a.groups) for a in auth.local_accounts}
        if auth.admin_user and auth.admin_password:
            # Hashed at start-up so the admin's check costs what every other check costs.
            entries[auth.admin_user] = (hash_password(auth.admin_password), (ADMIN_GROUP,))
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def verify(self, username: str, password: str) -> LocalUser | None:
        """The user if the password is right. Unknown names cost the same time as known ones."""
        match = None
        for name, entry in self._entries.items():
            if hmac.compare_digest(name.encode(), username.encode()):
                match = (name, entry)
        if match is None:
            dummy_verify()
            return None
        name, (encoded, groups) = match
        if not verify_password(password, encoded):
            return None
        return LocalUser(name, groups)
