"""Masking secret tool-call arguments in the copy of a request the gateway keeps for display.

The direct-parameter approach passes service tokens as tool arguments (docs/end-to-end-tokens.md).
The upstream needs them; mitmweb's stored flows do not. Only `params.arguments` of `tools/call`
requests is touched (single messages and batches), at any depth; names are matched against
glob patterns case-insensitively.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any, Iterable

MASK = "***"


def is_secret_name(name: str, patterns: Iterable[str]) -> bool:
    lowered = name.lower()
    return any(fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _mask(value: Any, patterns: tuple[str, ...]) -> tuple[Any, bool]:
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_name(key, patterns):
                out[key], changed = MASK, True
            else:
                out[key], inner = _mask(item, patterns)
                changed = changed or inner
        return out, changed
    if isinstance(value, list):
        results = [_mask(item, patterns) for item in value]
        return [item for item, _ in results], any(changed for _, changed in results)
    return value, False


def _mask_message(message: Any, patterns: tuple[str, ...]) -> bool:
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return False
    params = message.get("params")
    if not isinstance(params, dict) or "arguments" not in params:
        return False
    params["arguments"], changed = _mask(params["arguments"], patterns)
    return changed


def masked_body(body: bytes, patterns: Iterable[str]) -> bytes | None:
    """The body with secret argument values replaced by "***", or None when nothing matched."""
    patterns = tuple(patterns)
    if not patterns or not body or body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    messages = document if isinstance(document, list) else [document]
    changed = [_mask_message(message, patterns) for message in messages]
    if not any(changed):
        return None
    return json.dumps(document, ensure_ascii=False).encode()
