"""``--live`` for ``nape record`` and ``nape rom``: serve the live page (:mod:`nape.live`)
for the session and open it in the default browser (the address is printed too)."""

from __future__ import annotations

import argparse

from ..errors import NapeError
from .common import err_console


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    """``--live`` / ``--no-browser``."""
    p.add_argument("--live", action="store_true",
                   help="show what the sensors see in a local web page (127.0.0.1 only, a random token in "
                        "its address): head and upper back, neck angles, the posture alert, jolts, link")
    p.add_argument("--no-browser", action="store_true",
                   help="with --live: only print the page's address, do not open a browser")


async def start_live_view(args, title: str, transport):
    """The running :class:`nape.live.LiveServer` with ``--live``, else None.

    Raises:
        NapeError: no page can be served on 127.0.0.1.
    """
    if not getattr(args, "live", False):
        return None
    from ..live import LiveFeed, start_live

    feed = LiveFeed()
    feed.link = transport.stats
    err = err_console()
    try:
        return await start_live(feed, title, lambda text: err.print(text, markup=False, soft_wrap=True),
                                open_browser=not args.no_browser)
    except OSError as e:
        raise NapeError(f"live view: cannot serve a page on 127.0.0.1 ({e}); run without --live") from None


def both_progress(progress, view):
    """``on_progress`` for the terminal status and, with ``--live``, the live feed."""
    if view is None:
        return progress

    def both(stats) -> None:
        progress(stats)
        view.feed.on_progress(stats)
    return both
