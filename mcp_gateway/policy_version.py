"""The version of a policy folder: a short content hash, so that a rollout to many
instances can be checked (`/healthz` and the `mcp_gateway_policy_info` metric report it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .policy_loader import policy_files


def policy_version(policy_dir: Path | str) -> str:
    """sha256 over the policy files' names and contents, in the order they are read; the
    first 16 hex digits. Two instances with the same files report the same version."""
    digest = hashlib.sha256()
    for path in policy_files(Path(policy_dir)):
        try:
            content = path.read_bytes()
        except OSError:
            content = b"\0unreadable"
        digest.update(path.name.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return digest.hexdigest()[:16]
