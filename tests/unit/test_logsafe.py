"""mcp_gateway.logsafe: every log record is one line, whatever the values it carries."""

from __future__ import annotations

import io
import logging

import pytest
from uvicorn.logging import AccessFormatter

from mcp_gateway import logsafe

HOSTILE = ["\n", "\r", "\r\n", "\t", "\x00", "\x0b", "\x0c", "\x1b[2J", "\x1c", "\x7f", "\x85", "\x9b",
           "\u2028", "\u2029", "\u202e", "\u2066", "\u200f"]


@pytest.fixture
def captured():
    logsafe.install()
    logsafe.install()  # twice: still one wrapper
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.logsafe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, handler, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize("control", HOSTILE, ids=[repr(c) for c in HOSTILE])
def test_every_way_of_carrying_a_control_ends_in_one_escaped_line(captured, control):
    logger, _, stream = captured
    value = f"eve{control}auth: local login user=admin"
    logger.info("user=%s", value)
    logger.info("user=%(user)s", {"user": value})
    logger.info(value)
    logger.info("path=%s", ValueError(value))  # an object whose str() carries it
    logger.info("count=%d user=%s", 3, value)

    lines = stream.getvalue().split("\n")[:-1]
    assert len(lines) == 5, lines
    assert all(control not in line and "auth: local login user=admin" in line for line in lines)
    assert lines[4].startswith("count=3 user=eve\\")


def test_plain_records_are_untouched_and_escapes_are_python_spelling():
    assert logsafe.escape_controls("a\nb\r\x1b[0m\u2028ok") == "a\\nb\\r\\x1b[0m\\u2028ok"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "n=%d %s", (5, "plain"), None)
    assert logsafe.make_safe(record).args == (5, "plain")


def test_uvicorn_access_lines_keep_their_arguments(captured):
    logger, handler, stream = captured
    handler.setFormatter(AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s', use_colors=False))
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/x\n200 forged", "1.1", 404)

    assert stream.getvalue() == '127.0.0.1:5 "GET /x\\n200 forged HTTP/1.1" 404 Not Found\n'


def test_a_traceback_stays_attached_to_its_escaped_line(captured):
    logger, _, stream = captured
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed for user=%s", "eve\nforged")

    first, *rest = stream.getvalue().splitlines()
    assert first == "failed for user=eve\\nforged"
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "RuntimeError: boom"
