"""Nape's HTML pages and JSON reports, one module per page on one shared shell.

* :mod:`nape.report.page` — the shell: CSS, plotly.js inlined, phone layout, escaping, CSP;
* :mod:`nape.report.recording` — a recording's report (HTML + ``protocol/report.schema.json``);
* :mod:`nape.report.rom` — a range-of-motion test (HTML + ``protocol/rom.schema.json``);
* :mod:`nape.report.trends` — days and weeks across recordings (HTML);
* :mod:`nape.report.words` — words, colours and times they share.

Terminal summaries are the CLI's (:mod:`nape.cli.summaries`): rich stays under ``nape/cli/``.
"""

from .recording import (MAX_JOLT_PANELS, REPORT_VERSION, clock, headlines, panel_jolts, quality_notes, render_html,
                        start_time, to_json, write_reports)
from .words import GRADE_COLOUR, fmt_clock, fmt_duration

__all__ = ["GRADE_COLOUR", "MAX_JOLT_PANELS", "REPORT_VERSION", "clock", "fmt_clock", "fmt_duration", "headlines",
           "panel_jolts", "quality_notes", "render_html", "start_time", "to_json", "write_reports"]
