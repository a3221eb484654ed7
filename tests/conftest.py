import os
import sys

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Let tests import the harness (tests.mpy) and the package from a plain checkout too.
for p in (ROOT, ROOT / "host"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


@pytest.fixture(autouse=True)
def _trends_db(tmp_path, monkeypatch):
    """Tests never touch the user's real trends database."""
    monkeypatch.setenv("NAPE_DB", str(tmp_path / "nape.db"))
    # ... nor the user's owner key (nape flash creates one; transports read it)
    monkeypatch.setenv("NAPE_OWNER_KEY", str(tmp_path / "owner.key"))


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium over DevTools (bench._chromium), shared by the live-view and report-words tests."""
    from bench._chromium import BrowserMissing, Chromium

    try:
        b = Chromium()
    except BrowserMissing:
        if os.environ.get("NAPE_SKIP_BROWSER") == "1":
            pytest.skip("NAPE_SKIP_BROWSER=1 and no chromium")
        raise
    yield b
    b.close()
