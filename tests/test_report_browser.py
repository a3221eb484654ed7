"""The demo's HTML report in headless Chromium: loads offline, no console errors, no network
requests, plots render, screenshot saved (build/test-artifacts/report.png).

Chromium is Debian's package (installed by .ci/run). Set NAPE_SKIP_BROWSER=1 to skip on a
machine without it; otherwise a missing browser fails the test.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from nape.cli import main

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("NAPE_SKIP_BROWSER") == "1":
            pytest.skip("NAPE_SKIP_BROWSER=1 and no chromium")
        pytest.fail("chromium not installed (apt-get install chromium); .ci/run installs it")
    return exe


class _Cdp:
    """A minimal Chrome DevTools Protocol client over the page's websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(e.get("method") == method for e in self.events):
                return
            msg = json.loads(self.ws.recv(timeout=end - time.monotonic()))
            self.events.append(msg)
        raise TimeoutError(method)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--time-scale", "0.3"]) == 0
    return out / "report.html"


def test_report_renders_offline_in_headless_chromium(demo_report):
    exe = _chromium()
    profile = tempfile.mkdtemp(prefix="nape-chromium-")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1000,2400", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        from websockets.sync.client import connect

        ws_url = next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"]
        with connect(ws_url, max_size=64 << 20) as ws:
            cdp = _Cdp(ws)
            for domain in ("Network", "Runtime", "Log", "Page"):
                cdp.call(f"{domain}.enable")
            cdp.call("Page.navigate", url=demo_report.as_uri())
            cdp.wait_for("Page.loadEventFired")
            time.sleep(1.0)
            plots = cdp.call("Runtime.evaluate", returnByValue=True, expression=(
                "Array.from(document.querySelectorAll('.js-plotly-plot')).map("
                "d => d.querySelectorAll('.main-svg path, .main-svg rect').length)"))["result"]["value"]
            shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            png = base64.b64decode(shot)
            (ARTIFACTS / "report.png").write_bytes(png)
            cdp.call("Runtime.evaluate", expression="1")  # flush pending events
            requests = [e["params"]["request"]["url"] for e in cdp.events if e.get("method") == "Network.requestWillBeSent"]
            errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
                      or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                      or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    assert not errors, errors[:3]
    remote = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == [], f"the report made network requests: {remote[:5]}"
    assert len(plots) >= 2 and all(n > 10 for n in plots), plots
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
