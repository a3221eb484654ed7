"""The demo's HTML report in headless Chromium: loads offline, no console errors, no network
requests, plots render, per-jolt panels with traces, and it reads on a phone (no sideways
scrolling of the page, plots as wide as the screen, readable text). Screenshots are saved in
build/test-artifacts/ (report.png: desktop, report-phone.png: 390×844 CSS px at 3×).

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
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}


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

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:60]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def load(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        # plotly draws after load; wait until every plot has its SVG
        for _ in range(100):
            if self.js("Array.from(document.querySelectorAll('.js-plotly-plot')).every(d => d.querySelector('.main-svg'))"):
                break
            time.sleep(0.1)
        time.sleep(0.5)

    def screenshot(self, name: str) -> bytes:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / name).write_bytes(png)
        return png


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--time-scale", "0.3"]) == 0
    return out / "report.html"


@pytest.fixture(scope="module")
def cdp():
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
            client = _Cdp(ws)
            for domain in ("Network", "Runtime", "Log", "Page"):
                client.call(f"{domain}.enable")
            yield client
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _errors_and_requests(cdp):
    cdp.js("1")  # flush pending events
    requests = [e["params"]["request"]["url"] for e in cdp.events if e.get("method") == "Network.requestWillBeSent"]
    errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    return errors, [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]


def test_report_renders_offline_in_headless_chromium(demo_report, cdp):
    cdp.call("Emulation.clearDeviceMetricsOverride")
    cdp.load(demo_report.as_uri())
    plots = cdp.js("Array.from(document.querySelectorAll('.js-plotly-plot')).map("
                   "d => [d.id, d.querySelectorAll('.main-svg path, .main-svg rect').length])")
    # per-jolt panels: a heading, a plain-words sentence, NIC and a trace plot with four curves
    panels = cdp.js("Array.from(document.querySelectorAll('section.jolt')).map(s => ({"
                    "h: s.querySelector('h3').textContent, text: s.textContent,"
                    "curves: s.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length}))")
    png = cdp.screenshot("report.png")
    errors, remote = _errors_and_requests(cdp)
    assert not errors, errors[:3]
    assert remote == [], f"the report made network requests: {remote[:5]}"
    ids = [p[0] for p in plots]
    assert {"timeline", "jolts"} <= set(ids) and any(i.startswith("bands-") for i in ids), ids
    assert all(n > 10 for _, n in plots), plots
    report = json.loads(demo_report.with_suffix(".json").read_text(encoding="utf-8"))
    assert len(report["jolts"]) >= 4  # the demo day's drive: braking, bump, cornering, rear push
    assert len(panels) == len(report["jolts"]) == report["jolt_panels"], [p["h"] for p in panels]
    for p, j in zip(panels, report["jolts"]):  # panel heading: clock time, cause, grade of that jolt
        assert p["h"].startswith(j["peak_local_time"]) and p["h"].endswith(j["grade"]), (p["h"], j)
    for p, j in zip(panels, report["jolts"]):
        assert "NIC" in p["text"] and "m²/s²" in p["text"], p["text"][:300]
        # the trace's source in words: the board's high-rate window, or the 100 Hz stream
        src = "the board's high-rate event window (500 Hz)" if j["source"] == "event window" else "100 Hz stream"
        assert src in p["text"], (j["source"], p["text"][:300])
        assert p["curves"] == 4, p  # trunk and head: acceleration and angular velocity
    # the virtual board runs the whole firmware: its jolt screen sends EVENT windows
    assert any(j["source"] == "event window" for j in report["jolts"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_report_reads_on_a_phone(demo_report, cdp):
    cdp.call("Emulation.setDeviceMetricsOverride", **PHONE)
    try:
        cdp.load(demo_report.as_uri())
        m = cdp.js("""(() => {
          const vw = window.innerWidth;
          const wide = Array.from(document.body.querySelectorAll('*')).filter(e => {
            if (e.closest('.wrap') && !e.classList.contains('wrap')) return false;  // scrolls in its own box
            if (e.closest('#js-plotly-tester')) return false;  // plotly's off-screen text-measuring svg
            const r = e.getBoundingClientRect();
            return r.width > 0 && (r.right > vw + 1 || r.left < -1);
          }).map(e => e.tagName + '.' + e.getAttribute('class') + '#' + e.id).slice(0, 5);
          const plots = Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
            const svg = d.querySelector('.main-svg');
            const box = d.closest('.plot').parentElement, cs = getComputedStyle(box);
            return [d.id, Math.round(svg.getBoundingClientRect().width),
                    Math.round(box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight))];
          });
          const wraps = Array.from(document.querySelectorAll('.wrap')).map(w =>
            [w.scrollWidth > w.clientWidth, getComputedStyle(w).overflowX, Math.round(w.getBoundingClientRect().right)]);
          const texts = Array.from(document.querySelectorAll('p, li, td, dd, h3'))
            .filter(e => e.textContent.trim()).map(e => parseFloat(getComputedStyle(e).fontSize));
          return {vw, scroll: document.scrollingElement.scrollWidth, wide, plots, wraps,
                  minFont: Math.min(...texts), bodyFont: parseFloat(getComputedStyle(document.body).fontSize)};
        })()""")
        png = cdp.screenshot("report-phone.png")
        errors, _ = _errors_and_requests(cdp)
    finally:
        cdp.call("Emulation.clearDeviceMetricsOverride")
    assert m["vw"] == PHONE["width"], m
    assert m["scroll"] <= m["vw"] + 1, f"the page scrolls sideways on a phone: {m['scroll']} > {m['vw']}; {m['wide']}"
    assert not m["wide"], m["wide"]
    for name, width, room in m["plots"]:  # plots resize to the width they have (a phone's, less padding)
        assert abs(width - room) <= 2 and m["vw"] - 60 <= width <= m["vw"], (name, width, room, m["vw"])
    for overflows, style, right in m["wraps"]:  # wide tables scroll inside their own box
        assert right <= m["vw"] + 1 and (not overflows or style in ("auto", "scroll")), m["wraps"]
    assert m["bodyFont"] >= 16 and m["minFont"] >= 12, m
    assert not errors, errors[:3]
    # a 3× phone screenshot of the whole page
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == PHONE["width"] * PHONE["deviceScaleFactor"], width
