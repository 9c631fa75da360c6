"""Serving settings: the API reads the one settings object of StreamRec once, in the app factory.

The fields, their defaults, bounds and environment variables are declared in `streamrec.core.settings`
(`streamrec config` prints the effective values and where each came from); this module names the object
for the serving code.
"""

from __future__ import annotations

from streamrec.core.settings import StreamRecSettings as ApiSettings

__all__ = ["ApiSettings"]
