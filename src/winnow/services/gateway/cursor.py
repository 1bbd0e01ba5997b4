"""BulkSearch resume cursors: where a bulk stream stopped, as an opaque string the caller sends back.

The stream is ordered by (score descending, id ascending), so a position is the last hit sent (its score and id)
plus how many hits and pages came before it. A cursor also carries a fingerprint of the request it belongs to:
one cannot resume a different query with it. Resuming is exact while the index is unchanged; writes in between
may add or remove documents on either side of the position.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from winnow.common.errors import InvalidArgument

VERSION = 1


@dataclass(frozen=True)
class Position:
    score: float  # last hit's score (similarity)
    id: str       # last hit's id
    sent: int     # hits sent so far, counted from the first page
    pages: int    # pages sent so far

    def after(self, score: float, doc_id: str) -> bool:
        """Whether a hit comes after this position in the stream's order."""
        return (-score, doc_id) > (-self.score, self.id)


def encode(pos: Position, fingerprint: str) -> str:
    raw = json.dumps({"v": VERSION, "s": pos.score, "i": pos.id, "n": pos.sent, "p": pos.pages, "f": fingerprint},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, fingerprint: str) -> Position | None:
    """The position in `cursor` ("" = None: from the start); InvalidArgument for junk or another request's."""
    if not cursor:
        return None
    try:
        d = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        pos = Position(float(d["s"]), str(d["i"]), int(d["n"]), int(d["p"]))
        version, owner = d["v"], d["f"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument("cursor is not one this gateway issued: send a BulkSearchPage.cursor unchanged",
                              field="cursor", reason="BAD_CURSOR") from None
    if version != VERSION:
        raise InvalidArgument(f"cursor version {version} is not supported (this gateway writes {VERSION})",
                              field="cursor", reason="BAD_CURSOR")
    if owner != fingerprint:
        raise InvalidArgument("cursor belongs to a different bulk search (query, threshold or filters differ)",
                              field="cursor", reason="BAD_CURSOR")
    return pos
