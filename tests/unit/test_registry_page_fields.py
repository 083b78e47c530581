"""Which fields the registry page's edit form offers (login_app/registry/views.py): the same
field-by-scope rule as the registry API (docs/registry.md)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from login_app.registry.views import editable_fields


def viewer(scopes: set[str], editor_hosts: tuple[str, ...] = ()) -> SimpleNamespace:
    ctx = SimpleNamespace(config=SimpleNamespace(editor_upstream_hosts=editor_hosts))
    return SimpleNamespace(scopes=frozenset(scopes), ctx=ctx)


@pytest.mark.parametrize("scopes, editor_hosts, expected", [
    (set(), (), ()),
    ({"mcp:server:s:toggle"}, ("up.example",), ()),
    ({"mcp:server:s:edit"}, (), ("description", "sse_path", "streamable_path")),
    ({"mcp:server:s:edit"}, ("up.example",), ("description", "sse_path", "streamable_path", "url")),
    ({"mcp:server:other:edit"}, ("up.example",), ()),
    ({"mcp:registry:admin"}, (), ("description", "sse_path", "streamable_path", "url")),
])
def test_the_url_is_offered_to_the_admin_and_to_editors_where_hosts_are_allow_listed(scopes, editor_hosts, expected):
    assert editable_fields(viewer(scopes, editor_hosts), "s") == expected
