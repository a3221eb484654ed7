"""Every HTML page in headless Chromium: the demo's recording report, a range-of-motion test's
page and the trends page. Each loads offline with no console errors and no network request,
and at a phone's 390 CSS px and a desktop's 1366 px: no sideways scrolling, no chart labels
overlapping one another or cut at the chart's edge, chart titles visible (not under plotly's
toolbar), times shown as local clock times (no raw ISO timestamps). The recording report is
checked in more depth (plots render, per-jolt panels with traces, plots as wide as the
screen, readable text). Screenshots are saved in build/test-artifacts/ (PAGE-phone.png at 3×,
PAGE-desktop.png; report.png and report-phone.png for the recording report).

Chromium is Debian's package (installed by .ci/run). Set NAPE_SKIP_BROWSER=1 to skip on a
machine without it; otherwise a missing browser fails the test.
"""

import base64
import json
import math
import os
import re
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
DESKTOP = {"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": False}  # the commonest laptop screen


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
def rom_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("rom")
    assert main(["rom", "--virtual", "--out", str(out), "--sim-max", "rotation_left=55"]) == 0
    return out / "rom.rom.html"


def _fake_session(d: Path, name: str, created: str, neck_s: float, trunk_s: float, grades=()) -> dict:
    """A JSON-report-like dict for a small real file (what trends.index_findings reads)."""
    p = d / name
    p.write_bytes(b"x" * 10)
    return {"path": str(p), "metadata": {"created": created}, "duration_s": 3 * 3600.0 + 7 * 60,
            "roles": ["trunk", "head"], "lying_s": 0.0, "episodes": [{"kind": "neck_flexion"}],
            "exposure_s": {"neck_over_threshold_s": neck_s, "trunk_over_threshold_s": trunk_s},
            "jolts": [{"grade": g} for g in grades]}


def _fake_rom(d: Path, name: str, created: str, **max_deg) -> dict:
    p = d / name
    p.write_bytes(b"x" * 10)
    base = {"flexion": 55.0, "extension": 65.0, "lateral_left": 42.0, "lateral_right": 41.0,
            "rotation_left": 75.0, "rotation_right": 73.0} | max_deg
    return {"path": str(p), "created": created, "duration_s": 74.0,
            "directions": [{"direction": k, "max_deg": v, "verdict": "typical"} for k, v in base.items()]}


@pytest.fixture(scope="module")
def trends_page(tmp_path_factory):
    """Three weeks of recordings with empty days between them, and ROM tests on some days."""
    from nape import trends

    d = tmp_path_factory.mktemp("trends")
    db = d / "nape.db"
    for i, day in enumerate((1, 2, 3, 5, 8, 9, 12, 15, 16, 19, 22)):
        created = f"2026-11-{day:02d}T{7 + i % 3:02d}:30:00Z"
        trends.index_findings(db, _fake_session(d, f"day{day}.nape", created, 600.0 + 97 * i, 300.0 + 41 * i,
                                                ("mild",) * (i % 3) + ("severe",) * (i % 5 == 0)))
    for day, rot in ((2, 70.0), (9, 64.0), (16, 60.0), (22, 71.0)):
        trends.index_rom(db, _fake_rom(d, f"rom{day}.nape", f"2026-11-{day:02d}T18:00:00Z", rotation_left=rot))
    out = d / "trends.html"
    assert main(["trends", "--db", str(db), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def trends_one_day(tmp_path_factory):
    """A first-time user's trends page: two recordings on one day (plotly has no gap between
    days to size the bars by)."""
    from nape import trends

    d = tmp_path_factory.mktemp("one-day-trends")
    db = d / "nape.db"
    for i, hour in enumerate((8, 14)):
        trends.index_findings(db, _fake_session(d, f"rec{i}.nape", f"2026-11-03T{hour:02d}:30:00Z", 900.0 + 300 * i,
                                                400.0, ("mild", "moderate")))
    out = d / "trends.html"
    assert main(["trends", "--db", str(db), "--out", str(out)]) == 0
    return out


def test_one_day_of_trends_draws_its_bars(trends_one_day, cdp):
    """With one day the day charts' bars are drawn (were a hair wide: an empty-looking chart),
    side by side, and the axis names that day once."""
    cdp.call("Emulation.setDeviceMetricsOverride", **PHONE)
    try:
        cdp.load(trends_one_day.as_uri())
        for _ in range(50):  # plotly redraws once the phone width is applied: measure when it has settled
            m = cdp.js("""(() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
                id: d.id,
                bars: Array.from(d.querySelectorAll('.barlayer .point path')).map(p => {
                  const r = p.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.width), Math.round(r.height)]; }),
                ticks: Array.from(d.querySelectorAll('.xtick text')).map(t => t.textContent)})))()""")
            if all(any(b[2] > 0 for b in chart["bars"]) for chart in m) and any("Nov" in t for c in m for t in c["ticks"]):
                break
            time.sleep(0.2)
    finally:
        cdp.call("Emulation.clearDeviceMetricsOverride")
    for chart in m:
        drawn = [b for b in chart["bars"] if b[2] > 0]
        assert drawn, chart
        assert all(w >= 30 for _x, w, _h in drawn), chart  # a phone: at least 30 px wide
        if len(chart["ticks"]) and chart["ticks"][0][0].isdigit():  # the day axis (not the week's label)
            assert len(chart["ticks"]) == len(set(chart["ticks"])), chart["ticks"]
        lefts = [x for x, _w, h in drawn]
        if chart["id"] in ("trend0", "trend2"):  # poor posture: neck and upper back side by side, not on top of one another
            assert len(set(lefts)) == len(lefts), chart


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
        # (500 Hz at full rate; 200 Hz in the offline day log, where the demo's drive is recorded)
        rate = (j.get("trace") or {}).get("rate_hz") if j["source"] == "event window" else None
        assert rate in (None, 200, 500), rate
        src = "the board's high-rate event window (%d Hz)" % rate if rate else (
            "the board's high-rate event window" if j["source"] == "event window" else "100 Hz stream")
        # a stream jolt at the edge of the day log (the stream stops or starts within seconds of
        # it) may have no stream around it to draw: the panel says so plainly
        edges = [sp[k] for sp in report["rates"]["spans"] if sp["rate"] == "reduced" for k in ("start_s", "end_s")]
        if j["source"] == "stream" and any(j["start_s"] - 3 <= e <= j["end_s"] + 3 for e in edges):
            src = src if src in p["text"] else "No traces: the data around this jolt is not available."
        assert src in p["text"], (j["source"], p["text"][:300])
        assert p["curves"] == 4, p  # trunk and head: acceleration and angular velocity
    # the virtual board runs the whole firmware: its jolt screen sends EVENT windows
    assert any(j["source"] == "event window" for j in report["jolts"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    # the grade reads without colour: the jolt chart's legend names each grade present, the
    # caption says which colour and pattern is which
    grades = {j["grade"] for j in report["jolts"]}
    legend = set(cdp.js("Array.from(document.querySelectorAll('#jolts .legendtext')).map(t => t.textContent)"))
    assert legend == grades, (legend, grades)
    patterns = cdp.js("document.querySelectorAll('#jolts pattern').length")
    assert patterns >= len(grades - {"mild"}), patterns
    caption = cdp.js("document.querySelector('#jolts').closest('.plot').previousElementSibling.textContent")
    assert all(g in caption for g in grades) and "1 g is the pull of gravity" in caption, caption
    # what to do comes right after the summary, in the summary's grade words
    h2 = cdp.js("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert h2[:3] == ["Summary", "What to do next", "Posture over time"], h2
    todo = cdp.js("document.querySelector('h2 + ol').textContent")
    assert "strong jolt" not in todo
    if any(j["grade"] == "severe" for j in report["jolts"]):
        assert "severe jolt" in todo, todo


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


# ------------------------------------------------------------------ every page, phone and desktop

LAYOUT_JS = r"""(() => {
  const vw = window.innerWidth;
  const wide = Array.from(document.body.querySelectorAll('*')).filter(e => {
    if (e.closest('.wrap') && !e.classList.contains('wrap')) return false;  // scrolls in its own box
    if (e.closest('#js-plotly-tester')) return false;  // plotly's off-screen text-measuring svg
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > vw + 1 || r.left < -1);
  }).map(e => e.tagName + '.' + e.getAttribute('class') + '#' + e.id).slice(0, 5);
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const hit = (a, b) => Math.min(a[2], b[2]) - Math.max(a[0], b[0]) > 1 && Math.min(a[3], b[3]) - Math.max(a[1], b[1]) > 1;
  const overlaps = [], clipped = [], buried = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const svg = box(plot.querySelector('.main-svg'));
    const labels = Array.from(plot.querySelectorAll(
        '.xtick text, .ytick text, .y2tick text, .annotation-text, .legendtext, .g-xtitle text, .g-ytitle text, '
        + '.g-y2title text, .gtitle')).filter(e => e.textContent.trim() && e.getBoundingClientRect().width > 0);
    const boxes = labels.map(e => [e.textContent.trim(), box(e)]);
    for (let i = 0; i < boxes.length; i++) {
      const [t, b] = boxes[i];
      if (b[0] < svg[0] - 1 || b[2] > svg[2] + 1 || b[1] < svg[1] - 1 || b[3] > svg[3] + 1) clipped.push([plot.id, t]);
      for (let j = i + 1; j < boxes.length; j++)
        if (hit(b, boxes[j][1])) overlaps.push([plot.id, t, boxes[j][0]]);
    }
    // plotly's toolbar (shown on hover; hidden on a phone) must not cover a title or a label
    const bar = plot.querySelector('.modebar');
    if (bar && getComputedStyle(bar.parentElement).display !== 'none')
      for (const [t, b] of boxes) if (hit(b, box(bar))) buried.push([plot.id, t]);
  }
  const titles = Array.from(document.querySelectorAll('.plot-title')).map(e =>
      [e.textContent, e.getBoundingClientRect().height > 0 && box(e)[2] <= vw + 1]);
  // every chart is a labelled figure for a screen reader
  const unlabelled = Array.from(document.querySelectorAll('.js-plotly-plot')).filter(d => {
    const box = d.closest('.plot');
    return !box || box.getAttribute('role') !== 'figure' || (box.getAttribute('aria-label') || '').trim().length < 8;
  }).map(d => d.id);
  const iso = document.body.innerText.match(/\d{4}-\d\d-\d\dT\d\d:\d\d[^\s]*/g) || [];
  const ticks = [];  // the labels of every y axis, to check their steps
  for (const plot of document.querySelectorAll('.js-plotly-plot'))
    for (const sel of ['.yaxislayer-above .ytick text', '.yaxislayer-above .y2tick text'])
      ticks.push([plot.id + ' ' + sel, Array.from(plot.querySelectorAll(sel)).map(e => e.textContent.trim())]);
  return {vw, scroll: document.scrollingElement.scrollWidth, wide, overlaps: overlaps.slice(0, 8), ticks, unlabelled,
          clipped: clipped.slice(0, 8), buried, titles, iso: iso.slice(0, 3),
          plots: document.querySelectorAll('.js-plotly-plot .main-svg').length};
})()"""


@pytest.mark.parametrize("screen", ["phone", "desktop"])
@pytest.mark.parametrize("page", ["report", "rom", "trends", "trends_one_day"])
def test_every_page_on_a_phone_and_a_desktop(page, screen, cdp, request):
    path = request.getfixturevalue({"report": "demo_report", "rom": "rom_page", "trends": "trends_page",
                                    "trends_one_day": "trends_one_day"}[page])
    metrics = PHONE if screen == "phone" else DESKTOP
    cdp.call("Emulation.setDeviceMetricsOverride", **metrics)
    try:
        cdp.load(path.as_uri())
        m = cdp.js(LAYOUT_JS)
        cdp.screenshot(f"{page}-{screen}.png")
        errors, remote = _errors_and_requests(cdp)
    finally:
        cdp.call("Emulation.clearDeviceMetricsOverride")
    assert not errors, errors[:3]
    assert remote == [], remote[:5]
    assert m["vw"] == metrics["width"] and m["plots"] >= 2, m
    assert m["scroll"] <= m["vw"] + 1, f"{page} scrolls sideways at {m['vw']} px: {m['scroll']}; {m['wide']}"
    assert not m["wide"], m["wide"]
    assert not m["overlaps"], f"overlapping chart labels: {m['overlaps']}"
    assert not m["clipped"], f"chart labels cut at the chart's edge: {m['clipped']}"
    assert not m["buried"], f"chart titles or labels under the toolbar: {m['buried']}"
    assert all(visible for _t, visible in m["titles"]), m["titles"]
    assert not m["iso"], f"raw timestamps on the page: {m['iso']}"
    assert not m["unlabelled"], f"charts without a label for screen readers: {m['unlabelled']}"
    odd = [(axis, labels) for axis, labels in m["ticks"] if not _round_steps(labels)]
    assert not odd, f"axis ticks not in round steps: {odd[:3]}"


def _round_steps(labels: list[str]) -> bool:
    """Numeric axis labels step by 1, 2, 2.5 or 5 times a power of ten (what an axis should
    read: 0 / 50 / 100, not 8.5 / 17.1 / 25.6). Labels that are not numbers pass."""
    try:
        v = [float(t.replace("−", "-").replace("°", "").replace(",", "")) for t in labels]
    except ValueError:
        return True
    for a, b in zip(v, v[1:]):
        step = abs(b - a)
        if step == 0:
            return False
        mant = step / 10 ** math.floor(math.log10(step))
        if not any(abs(mant - r) < 1e-6 for r in (1, 2, 2.5, 5, 10)):
            return False
    return True


def test_pages_forbid_network_access_and_use_one_shell(demo_report, rom_page, trends_page):
    """One shell: the same Content-Security-Policy (no connections, no remote anything) and CSS."""
    from nape.report.page import CSP, CSS

    for path in (demo_report, rom_page, trends_page):
        html = path.read_text(encoding="utf-8")
        meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
        assert meta and meta.group(1).replace("&#x27;", "'") == CSP, path.name
        assert "connect-src 'none'" in CSP and "default-src 'none'" in CSP
        assert CSS in html and html.count("<style>") == 1, path.name


def test_rom_chart_says_below_typical_without_colour(rom_page):
    """The end-range chart marked a direction below typical only by an orange dot: it says so
    beside the value, and the marker's shape differs."""
    html = rom_page.read_text(encoding="utf-8")
    assert re.search(r'"\d+(°|\\u00b0) below"', html), "the below-typical value is not labelled in words"
    assert '"triangle-left"' in html and '"circle"' in html
