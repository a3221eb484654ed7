"""What every HTML page Nape writes may do: nothing over the network.

Reports open from disk and hold what people would rather keep private (posture, jolts, times), so
the pages carry a Content-Security-Policy that allows their own inline script and style (plotly.js
is inlined) and images drawn in the page, and nothing else: no fetch, no image or font from a
server, no form posting anywhere, no base URL change. Every text from a recording (header fields,
notes, file names) is escaped with :func:`html.escape` where it is written into a page; the policy
is the second line of defence if one escape is missed.
"""

from __future__ import annotations

CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'; "
       "frame-src 'none'; object-src 'none'")
#: The ``<meta>`` element; it must come before any script in ``<head>``.
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
