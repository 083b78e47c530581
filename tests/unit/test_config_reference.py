from pathlib import Path

from mcp_gateway.config_reference import render
from mcp_gateway.config_schema import SECTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_matches_the_schema():
    assert DOC.read_text() == render(), "docs/configuration.md is stale: run scripts/config-reference > docs/configuration.md"


def test_every_key_and_environment_variable_is_documented():
    text = DOC.read_text()
    for keys in SECTIONS.values():
        for key in keys:
            assert f"`{key.name}`" in text
            if key.env:
                assert f"`{key.env}`" in text
