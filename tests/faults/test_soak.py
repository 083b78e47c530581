"""The short form of the soak (scripts/soak --quick): every answer as intended, and the gateway's
descriptors and memory back within their bounds afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.processes import REPO

pytestmark = pytest.mark.timeout(150)


def test_the_quick_soak_passes():
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "soak"), "--quick", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=140)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "unexpected responses: 0" in run.stdout and "result: PASS" in run.stdout
    figures = json.loads(run.stdout[run.stdout.index("{"):])
    assert figures["unexpected"] == {} and figures["pass"] is True
    assert sum(figures["as_intended"].values()) == figures["plan"]["requests"] + figures["plan"]["streams"]
