"""Suite-wide collection order: the longest test files first.

scripts/test runs pytest-xdist with `--dist loadfile`, which hands out whole files in collection
order; a long file handed out last keeps one process busy after the others have finished. Tests
within a file keep their order. The list is by measured duration (`--durations`); a file missing
from it only runs in its usual place."""

from __future__ import annotations

import pytest

LONGEST_FIRST = [
    "tests/clients/test_sdk_clients.py",
    "tests/e2e/test_upstream_oauth.py",
    "tests/e2e/test_sessions.py",
    "tests/e2e/test_drain.py",
    "tests/e2e/test_launcher.py",
    "tests/security/test_registry_surfaces.py",
    "tests/e2e/test_haproxy.py",
    "tests/security/test_facade_attacks.py",
    "tests/e2e/test_fail_closed.py",
    "tests/faults/test_registry_lock.py",
    "tests/faults/test_sse_store_faults.py",
    "tests/browser/test_registry_pages.py",
    "tests/security/test_bodies.py",
    "tests/faults/test_store_faults.py",
    "tests/security/test_registry_edits.py",
    "tests/clients/test_inspector_cli.py",
    "tests/faults/test_soak.py",
    "tests/security/test_acceptance_probes.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))
