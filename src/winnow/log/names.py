"""Where a partition lives in JetStream: one stream per (layout, partition), one subject per document.

    stream   WINNOW_<layout>_P<partition>
    subject  winnow.<layout>.<partition>.<key>     key = blake2b-128 of the document id, hex

A stream keeps at most one message per subject (`max_msgs_per_subject=1`), so each document's latest version (or
its tombstone) is all the log holds: it grows with the corpus, not with the write history. The id is hashed
because subjects cannot hold dots, spaces or wildcards; 128 bits make a collision as likely as a disk flipping the
same bit twice, and the id itself travels in the message body.
"""

from __future__ import annotations

import hashlib
import re

_LAYOUT = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_layout(layout: str) -> str:
    """A layout id usable in stream names and write tokens."""
    if not _LAYOUT.fullmatch(layout):
        raise ValueError(f"layout id {layout!r} must be 1-64 characters of [A-Za-z0-9_-]")
    return layout


def stream(layout: str, partition: int) -> str:
    return f"WINNOW_{check_layout(layout)}_P{partition}"


def prefix(layout: str, partition: int) -> str:
    return f"winnow.{check_layout(layout)}.{partition}"


def doc_key(doc_id: str) -> str:
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=16).hexdigest()


def subject(layout: str, partition: int, doc_id: str) -> str:
    return f"{prefix(layout, partition)}.{doc_key(doc_id)}"
