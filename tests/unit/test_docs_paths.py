"""The docs name only files and tests that exist: README.md, SECURITY.md and docs/*.md.

Checked, precisely and nothing else:
- a backticked path whose first segment is a top-level entry of the repository
  (`addons/chain.py`, `tests/e2e/`, `docs/*.md`), and a bare backticked file name such as
  `settings.py` (docs/architecture.md's tables), which must be a Python file of the repository;
- a relative Markdown link target, resolved from the page's own folder, and its `#anchor` when
  it points into a Markdown page (GitHub's heading slugs);
- a backticked test reference `tests/x.py::test_name`; `…::test_name` (or `::test_name`) names
  a test of the last file named before it — the same cell, or the row above.
Runtime paths (`registry/servers/`, `var/…`, `<state_dir>/…`) and URLs are not repository paths
and are left alone."""

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "SECURITY.md", *sorted((REPO / "docs").glob("*.md"))]
# Files the reader writes in docs/policies.md's worked example (tests/unit/test_policy_docs_example.py).
EXAMPLE_FILES = {"policies/60-notes.toml", "policies/tests/notes.toml"}
NOT_IN_GIT = {".git", ".venv", "var", "node_modules", "__pycache__", ".pytest_cache"}
TOP_LEVEL = {entry.name for entry in REPO.iterdir() if entry.name not in NOT_IN_GIT}

BACKTICKED = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FILE_NAME = re.compile(r"\w+\.py")
TEST_FILE = re.compile(r"tests/[\w/]+\.py")
TEST_REFERENCE = re.compile(r"`…?(tests/[\w/]+\.py)?((?:::[A-Za-z_]\w*)+)")


def repository_files() -> set[str]:
    names = set()
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if name not in NOT_IN_GIT]
        names.update(files)
    return names


FILE_NAMES = repository_files()


def named_paths(text: str) -> list[str]:
    """Backticked repository paths and bare file names, without a test or line suffix."""
    found = []
    for quoted in BACKTICKED.findall(text):
        path = re.split(r"::|:\d", quoted.strip())[0].rstrip(",.;")
        if " " in path or path.startswith(("/", "~", ".venv")) or "<" in path or "{" in path:
            continue
        first = path.split("/")[0]
        if "/" in path and first in TOP_LEVEL and path not in EXAMPLE_FILES:
            found.append(path)
        elif "/" not in path and FILE_NAME.fullmatch(path) and first not in TOP_LEVEL:
            found.append(path)
    return found


def linked_targets(text: str) -> list[str]:
    """Relative link targets, with their #anchor if any."""
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z+.-]*:|#|<", target) and target.split("#")[0]]


def linked_paths(text: str) -> list[str]:
    return [target.split("#")[0] for target in linked_targets(text)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading slugs: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"(?m)^#+ (.+)$", text)}


def referenced_tests(text: str) -> list[tuple[str, str]]:
    """(file, test name) for every test reference, `…::name` resolved to the last file named."""
    references, last_file = [], None
    position = 0
    for match in TEST_REFERENCE.finditer(text):
        for named in TEST_FILE.findall(text, position, match.start()):
            last_file = named
        position = match.end()
        file = last_file = match.group(1) or last_file
        for name in match.group(2).split("::")[1:]:
            references.append((file, name))
    return references


def exists(path: str) -> bool:
    if any(char in path for char in "*?["):
        return any(REPO.glob(path))
    return (REPO / path).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(REPO)))
def test_every_path_a_doc_names_exists(doc):
    text = doc.read_text()
    missing = [path for path in named_paths(text)
               if not (exists(path) if "/" in path else path in FILE_NAMES)]
    missing += [target for target in linked_paths(text) if not (doc.parent / target).exists()]
    for target in linked_targets(text):
        path, _, anchor = target.partition("#")
        page = doc.parent / path
        if anchor and page.suffix == ".md" and page.is_file() and anchor not in anchors(page):
            missing.append(target)
    assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(REPO)))
def test_every_test_a_doc_names_exists(doc):
    missing = []
    for file, name in referenced_tests(doc.read_text()):
        source = (REPO / file).read_text() if file and (REPO / file).is_file() else ""
        if not re.search(rf"^\s*(?:async\s+def|def|class)\s+{name}\b", source, re.M):
            missing.append(f"{file}::{name}")
    missing += re.findall(r"`(…[_a-z]\w*)`", doc.read_text())  # an abbreviated name resolves to nothing
    assert not missing, f"{doc.relative_to(REPO)} names tests that do not exist: {missing}"


def test_the_checks_catch_what_they_are_for():
    text = ("`addons/nope.py` `registry/servers/` `gone.py` [x](missing.md) `<state_dir>/a.toml`\n"
            "| a | `tests/unit/test_a.py::test_one`, `…::test_two` |\n| b | `…::test_three` |\n"
            "`tests/unit/test_b.py::test_four` (note), `::test_five` `[::1]` `a.toml`")
    assert named_paths(text) == ["addons/nope.py", "gone.py", "tests/unit/test_a.py", "tests/unit/test_b.py"]
    assert linked_paths(text) == ["missing.md"]
    assert referenced_tests(text) == [("tests/unit/test_a.py", "test_one"), ("tests/unit/test_a.py", "test_two"),
                                     ("tests/unit/test_a.py", "test_three"), ("tests/unit/test_b.py", "test_four"),
                                     ("tests/unit/test_b.py", "test_five")]


def test_anchors_are_githubs_heading_slugs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n## `[servers.upstream_oauth]`\n### 401 or 403?\n```sh\n# not a heading\n```\n")
    assert anchors(page) == {"title", "serversupstream_oauth", "401-or-403"}


def test_the_readmes_docs_table_lists_every_page_once():
    table = (REPO / "README.md").read_text().split("## Documentation")[1].split("\n## ")[0]
    listed = re.findall(r"(?m)^\| \[docs/([\w-]+\.md)\]", table)
    assert sorted(listed) == sorted(page.name for page in (REPO / "docs").glob("*.md"))
