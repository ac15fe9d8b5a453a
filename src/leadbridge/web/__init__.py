"""Server-rendered pages: the Website Visitor permalink now, the web UI later.

Pages sit on top of the read-side queries in `leadbridge.views`, like the API does.
"""

from __future__ import annotations
