"""The one page shell of every Nape HTML page (recording report, range-of-motion test, trends).

A page is one self-contained file: plotly.js inlined, no network request (a
Content-Security-Policy forbids any), laid out for a phone (390 CSS px) as well as a desktop.
Every text that comes from a file or a user goes through :func:`esc`.
"""

from __future__ import annotations

import html
import re

#: No network at all: scripts, styles, images and fonts only from the page itself.
#: ('unsafe-eval': plotly.js compiles some of its code at run time.)
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-src 'none'; object-src 'none'")

#: plotly's config for every chart: fits its box, no logo, no scroll-wheel zoom.
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False,
               "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}

#: Top margin of a chart, px: room for plotly's toolbar (shown on hover on a desktop, hidden on
#: a phone) above the plotting area, so it covers no label. Titles are HTML, above the chart.
TOOLBAR_PX = 36

CSS = """
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 16px; line-height: 1.45;
       max-width: 1000px; margin: 0 auto; padding: 12px; color: #222; overflow-wrap: break-word; }
h1 { font-size: 1.5em; margin: .2em 0; } h2 { font-size: 1.25em; margin: 1.4em 0 .4em; border-bottom: 2px solid #eee; }
h3 { font-size: 1.05em; margin: 1em 0 .3em; }
.wrap { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
td, th { border-bottom: 1px solid #ddd; padding: .35em .4em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; white-space: nowrap; }
td:first-child { white-space: nowrap; }
.g { color: #fff; padding: .05em .45em; border-radius: .3em; font-size: .85em; white-space: nowrap; }
.summary { padding-left: 1.2em; } .summary li { font-size: 1.08em; margin: .35em 0; }
.meta { color: #555; font-size: .88em; }
.plot { width: 100%; max-width: 100%; overflow: hidden; }
.plot > div { width: 100% !important; }
.plot-title { font-weight: 600; margin: .8em 0 .2em; }
.jolt { border: 1px solid #ddd; border-radius: .5em; padding: .2em .8em .6em; margin: .8em 0; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5em, 1fr)); gap: .3em .8em; margin: .4em 0; }
details summary { cursor: pointer; color: #1565c0; margin: .3em 0; }
.meaning { padding-left: 1.2em; font-size: .95em; } .meaning li { margin: .3em 0; }
.facts dt { color: #555; font-size: .85em; } .facts dd { margin: 0; font-weight: 600; }
.glossary div { margin: .35em 0; } .glossary dt { font-weight: 600; display: inline; } .glossary dt::after { content: ": "; }
.glossary dd { display: inline; margin: 0; }
@media (max-width: 600px) {
  body { padding: 8px; }
  .modebar-container { display: none; }
  table.long thead { display: none; }
  table.long tr { display: block; border-bottom: 1px solid #ddd; padding: .5em 0; }
  table.long td { display: block; border: 0; padding: .1em 0; white-space: normal; }
  table.long td:empty { display: none; }
  table.long td[data-label]:not([data-label=""])::before { content: attr(data-label) ": "; color: #555; font-size: .85em; }
}
"""


def esc(text: object) -> str:
    """``text`` as HTML text or attribute value (quotes escaped too)."""
    return html.escape(str(text), quote=True)


def plotly_js() -> str:
    """plotly.js, to inline (about 4.6 MB)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _axis_title(axis) -> str:
    t = getattr(getattr(axis, "title", None), "text", None) if axis is not None else None
    return html.unescape(re.sub(r"<[^>]+>", " ", str(t))).strip() if t else ""


def chart_label(fig, title: str = "") -> str:
    """A chart in words for a screen reader: its title (or 'Chart'), what its axes show."""
    axes = [t for t in (_axis_title(fig.layout.yaxis), _axis_title(fig.layout.xaxis)) if t]
    what = f"{axes[0]} against {axes[1]}" if len(axes) == 2 else (axes[0] if axes else "")
    head = title or "Chart"
    return f"{head}: {what}" if what else head


def plot(fig, div_id: str, title: str = "", alt: str = "") -> str:
    """One chart: its title as HTML above it (a plotly title would sit under the toolbar on a
    phone), the figure as a div filling the page width. The chart is a figure for screen readers,
    labelled ``alt`` (what it shows and where its numbers are in text) or, without one, its title
    and axis titles."""
    if fig is None:
        return ""
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG,
                      default_width="100%")
    head = f'<p class="plot-title">{esc(title)}</p>' if title else ""
    label = alt or chart_label(fig, title)
    return f'{head}<div class="plot" role="figure" aria-label="{esc(label)}">{div}</div>'


def table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table in its own scroll box; class "long" stacks each row as a card on a phone.
    Cells are HTML (escape them); headers are text."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    labels = [esc(h) for h in headers]
    body = "".join("<tr>" + "".join(f'<td data-label="{lab}">{c}</td>' for lab, c in zip(labels, r)) + "</tr>"
                   for r in rows)
    return f'<div class="wrap"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def glossary(body: str) -> str:
    """A short glossary of every term ``body`` (HTML) uses in its visible text
    (:data:`nape.plainwords.GLOSSARY`), as the page's last section; '' when none."""
    from ..plainwords import terms_used

    text = html.unescape(re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", body, flags=re.S))
    items = "".join(f"<div><dt>{esc(t)}</dt><dd>{esc(e)}</dd></div>" for t, e in terms_used(text))
    return f'<h2 id="glossary">Words used on this page</h2><dl class="glossary">{items}</dl>' if items else ""


def page(title: str, body: str, css: str = "") -> str:
    """A whole page: doctype, phone viewport, the CSP, the shared CSS (plus ``css``), plotly.js
    inlined, ``body`` (HTML) and, last, the glossary of the terms ``body`` uses."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<title>{esc(title)}</title>
<style>{CSS}{css}</style>
<script>{plotly_js()}</script>
</head><body>
{body}
{glossary(body)}
</body></html>
"""
