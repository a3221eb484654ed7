import pytest
import sys
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
