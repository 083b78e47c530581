"""Human durations in configuration: "90s", "5m", "8h", "1d", or plain seconds."""

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds for `value`; raises ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"30s\", \"5m\" or \"8h\"")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    raise ValueError(f"expected a duration such as \"30s\", \"5m\" or \"8h\", got {value!r}")
