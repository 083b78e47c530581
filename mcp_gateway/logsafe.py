"""One log record is one line: control characters in logged values are escaped.

Usernames, paths, header values, client names and reasons are chosen by whoever sends the
request; logged raw, a newline in one of them writes a second, forged line ("admin signed
in"), and an ESC sequence rewrites what a terminal shows. `install()` wraps the process's
log-record factory, so every record of every logger (the gateway's, the login app's,
mitmproxy's, uvicorn's) is escaped when it is made and no call site can forget. Escaping
follows Python's own spelling: `\\n`, `\\r`, `\\t`, `\\x1b`, `\\u2028`.

Tracebacks attached to a record (`exc_info`) keep their line breaks: they are the program's
own text, indented under the line that announced them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

# C0 and DEL, C1, and the characters that end a line or reorder text on screen: U+2028/2029
# (line/paragraph separator), bidirectional overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN = (int, float, type(None))

_installed_lock = threading.Lock()
_installed = False


def _spell(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    """`text` with every control, line-separator and bidi character spelled out as an escape."""
    return _UNSAFE.sub(_spell, text)


def _safe_arg(value: Any) -> Any:
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, _PLAIN):
        return value  # numbers keep their type: "%d" and formatters that unpack args need them
    text = str(value)
    return escape_controls(text) if _UNSAFE.search(text) else value


def make_safe(record: logging.LogRecord) -> logging.LogRecord:
    """Escape the record's message in place; args stay args where formatters read them (uvicorn's access log)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: let logging report it as it always does
        return record
    if not _UNSAFE.search(message):
        return record
    if isinstance(record.msg, str):
        record.msg = escape_controls(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_safe_arg(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _safe_arg(value) for key, value in record.args.items()}
    try:
        still_unsafe = _UNSAFE.search(record.getMessage()) is not None
    except Exception:
        still_unsafe = True
    if still_unsafe:  # a %r of an odd object, a message that is not a string: fall back to the text
        record.msg, record.args = escape_controls(message), None
    return record


def install() -> None:
    """Escape every log record this process makes from now on. Safe to call more than once."""
    global _installed
    with _installed_lock:
        if _installed:
            return
        make_record: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def safe_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return make_safe(make_record(*args, **kwargs))

        logging.setLogRecordFactory(safe_record)
        _installed = True
