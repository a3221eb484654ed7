"""The live view's local web server: one page and one WebSocket (Starlette on uvicorn).

Safety: it listens on 127.0.0.1 only, on a free port; every request (page, script, style,
socket) must carry the session's random token (``secrets.token_urlsafe``) as ``?t=``, else
403; the Host header must name the loopback address (a page elsewhere that resolves its
own name to 127.0.0.1 — DNS rebinding — gets 403 too), and a socket's Origin must be this
server. The page is self-contained (no CDN) with a strict Content-Security-Policy: scripts,
styles and images from this server only, connections to this server's ``ws://`` only.

The socket sends a ``hello`` (the alert's limits) and then every frame of the
:class:`nape.live.feed.LiveFeed` as JSON; a slow page gets the newest frames (older ones
are dropped, never queued without bound). The page may send ``{"cmd": "neutral"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import webbrowser
from collections.abc import Callable
from importlib import resources

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .feed import LiveFeed

HOST = "127.0.0.1"
#: Frames held for a page that reads slowly; older ones are dropped.
QUEUE_FRAMES = 64
_STATIC = {"live.js": "text/javascript", "live.css": "text/css", "favicon.svg": "image/svg+xml"}


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C stays with the recording command."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class LiveServer:
    """Serves the live page of ``feed`` on 127.0.0.1 (see the module doc).

    Args:
        feed: the frames to show.
        title: page title (e.g. "recording today.nape").
        port: 0 for a free port.
    """

    def __init__(self, feed: LiveFeed, title: str = "Nape live", port: int = 0) -> None:
        self.feed = feed
        self.title = title
        self.token = secrets.token_urlsafe(24)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.port = self.sock.getsockname()[1]
        self.clients: set[asyncio.Queue] = set()
        self.app = Starlette(routes=[Route("/", self._page), Route("/{name}", self._static),
                                     WebSocketRoute("/ws", self._socket)])
        self._server: _QuietServer | None = None
        self._task: asyncio.Task | None = None
        feed.subscribe(self._publish)

    @property
    def url(self) -> str:
        """The page's address, token included."""
        return f"http://{HOST}:{self.port}/?t={self.token}"

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start serving in the running event loop."""
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", ws="websockets-sansio",
                                access_log=False)
        self._server = _QuietServer(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self.sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        """Close every socket and stop serving."""
        if self._server is not None:
            self._server.should_exit = True
            for q in list(self.clients):
                q.put_nowait(None)
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5.0)
        self.sock.close()

    async def __aenter__(self) -> LiveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------ requests

    def _allowed(self, conn) -> bool:
        host_ok = conn.headers.get("host", "") in (f"{HOST}:{self.port}", f"localhost:{self.port}")
        token = conn.query_params.get("t", "")
        return host_ok and secrets.compare_digest(token.encode(), self.token.encode())

    def _headers(self) -> dict:
        return {"Content-Security-Policy": (
                    f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                    f"connect-src ws://{HOST}:{self.port} ws://localhost:{self.port}; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
                "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff"}

    async def _page(self, request: Request) -> Response:
        if not self._allowed(request):
            return PlainTextResponse("forbidden: open the address nape printed (it holds the token)", 403)
        html = _read("live.html").replace("{{TITLE}}", _escape(self.title)).replace("{{TOKEN}}", self.token)
        return Response(html, media_type="text/html; charset=utf-8", headers=self._headers())

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not self._allowed(request):
            return PlainTextResponse("forbidden", 403)
        if name not in _STATIC:
            return PlainTextResponse("not found", 404)
        return Response(_read(name), media_type=_STATIC[name] + "; charset=utf-8", headers=self._headers())

    async def _socket(self, ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if not self._allowed(ws) or origin not in (None, f"http://{HOST}:{self.port}", f"http://localhost:{self.port}"):
            await ws.close(code=1008)  # refused before accepting: the handshake gets HTTP 403
            return
        await ws.accept()
        q: asyncio.Queue = asyncio.Queue(QUEUE_FRAMES)
        self.clients.add(q)
        reader = asyncio.get_running_loop().create_task(self._commands(ws))
        try:
            await ws.send_text(json.dumps(self.feed.hello()))
            if self.feed.latest is not None:
                await ws.send_text(json.dumps(self.feed.latest))
            while (frame := await q.get()) is not None:
                await ws.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.clients.discard(q)
            reader.cancel()

    async def _commands(self, ws: WebSocket) -> None:
        with contextlib.suppress(Exception):
            while True:
                msg = json.loads(await ws.receive_text())
                if isinstance(msg, dict) and msg.get("cmd") == "neutral":
                    self.feed.set_neutral()

    def _publish(self, frame: dict) -> None:
        text = json.dumps(frame)
        for q in list(self.clients):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(text)


def open_page(url: str, say: Callable[[str], None]) -> bool:
    """Open ``url`` in the default browser; ``say`` the address either way (the fallback
    when no browser opens, e.g. over SSH). Returns whether a browser was started."""
    try:
        opened = webbrowser.open(url, new=2)
    except Exception:  # webbrowser raises various errors on odd setups; the printed URL is the fallback
        opened = False
    say(f"live view: {url}" + ("" if opened else "  (open it in a browser on this computer)"))
    return opened


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
