"""Headless Chromium driven over the DevTools protocol, for bench.live and the live tests.

Chromium is Debian's package (``apt-get install chromium``; .ci/run installs it).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


class BrowserMissing(RuntimeError):
    """No chromium on PATH."""


class Chromium:
    """One headless Chromium with one page; ``js()`` evaluates in it (blocking calls).

    Raises:
        BrowserMissing: chromium is not installed.
    """

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise BrowserMissing("chromium not installed (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="nape-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(self.profile) / "DevToolsActivePort"
            for _ in range(300):
                if port_file.exists() and port_file.read_text().strip():
                    break
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            from websockets.sync.client import connect

            url = next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"]
            self._cm = connect(url, max_size=64 << 20, ping_interval=None, max_queue=None)
            self.ws = self._cm.__enter__()
        except BaseException:
            self.close()
            raise
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")

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

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:60]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def load(self, url: str, timeout: float = 30.0) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        end = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(url)
            self.events.append(json.loads(self.ws.recv(timeout=end - time.monotonic())))

    def viewport(self, width: int, height: int, mobile: bool = False, scale: float = 1.0) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=scale, mobile=mobile)

    def screenshot(self, path: Path) -> None:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)

    def errors(self) -> list[dict]:
        """Exceptions, console errors and CSP violations seen so far."""
        self.js("1")
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]

    def close(self) -> None:
        if getattr(self, "_cm", None) is not None:
            self._cm.__exit__(None, None, None)
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
