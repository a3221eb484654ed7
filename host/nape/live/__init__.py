"""The live view: what the sensors see, in a local web page, while recording.

``nape record --live`` and ``nape rom --live`` feed every packet the recorder accepts to a
:class:`LiveFeed` (angles, posture alert, jolts, link quality) and serve it with a
:class:`LiveServer` (Starlette on uvicorn, 127.0.0.1 only, a random token in the URL) to a
self-contained page that updates over a WebSocket and reconnects by itself.
"""

from .alert import AlertView, PostureAlertMirror
from .feed import LiveFeed
from .server import LiveServer, open_page


async def start_live(feed: LiveFeed, title: str, say, open_browser: bool = True) -> LiveServer:
    """Serve ``feed`` and open (or print, via ``say(text)``) the page's address.

    Raises:
        OSError: no loopback port could be bound.
    """
    server = LiveServer(feed, title=title)
    await server.start()
    if open_browser:
        open_page(server.url, say)
    else:
        say(f"live view: {server.url}")
    return server


__all__ = ["AlertView", "LiveFeed", "LiveServer", "PostureAlertMirror", "open_page", "start_live"]
