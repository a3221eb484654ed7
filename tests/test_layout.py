"""The package layout rules of docs/ARCHITECTURE.md, checked on the source:

* argparse and rich are imported only under ``nape/cli/`` (the library stays usable without
  a terminal, and one place owns the command line);
* no runtime module imports the ``tests`` package;
* HTML is written only under ``nape/report/`` (analysis stays pure), and every page uses the
  one shell (:mod:`nape.report.page`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "host" / "nape"
CLI_ONLY = ("argparse", "rich")


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (anywhere in the file, lazy ones too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_the_walk_sees_the_package():
    names = {str(p.relative_to(PKG)) for p in _modules()}
    assert {"cli/__init__.py", "cli/common.py", "report/page.py", "analysis/rom.py"} <= names
    # and the check below would catch an offender: the CLI itself imports both
    assert set(CLI_ONLY) <= _imports(PKG / "cli" / "common.py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_argparse_and_rich_only_under_cli(path):
    if path.relative_to(PKG).parts[0] == "cli":
        return
    bad = _imports(path) & set(CLI_ONLY)
    assert not bad, f"{path.relative_to(PKG)} imports {', '.join(sorted(bad))}: that belongs under nape/cli/"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_runtime_module_imports_tests(path):
    assert "tests" not in _imports(path), f"{path.relative_to(PKG)} imports the tests package"


def test_html_only_in_report_and_one_shell():
    writers = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        if "<!DOCTYPE html>" in text or "get_plotlyjs" in text:
            writers.append(str(path.relative_to(PKG)))
    assert writers == ["report/page.py"], writers
    for page in ("recording.py", "rom.py", "trends.py"):
        assert "from .page import" in (PKG / "report" / page).read_text(encoding="utf-8")
    analysis = "".join(p.read_text(encoding="utf-8") for p in (PKG / "analysis").rglob("*.py"))
    assert "<html" not in analysis and "plotly" not in analysis
