#!/usr/bin/env bash
# Shared by scripts/demo and scripts/test: make .venv (Python >= 3.12) and install the project.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

find_python() {
    # .python-version makes pyenv's python3 resolve to 3.12 in this folder.
    for candidate in python3 python3.13 python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ]; then
    if ! PYTHON="$(find_python)"; then
        echo "error: the MCP Gateway needs Python 3.12 or newer (mitmproxy 12 does)." >&2
        echo "       python3 here is $(python3 --version 2>&1 || echo missing). Install 3.12 (e.g. 'pyenv install 3.12')" >&2
        echo "       — .python-version in the repository selects it for pyenv — and run this again." >&2
        exit 1
    fi
    echo "setup: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi

STAMP=.venv/.installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "setup: installing the gateway and its test dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    touch "$STAMP"
fi
