"""Metadata equality filters: an inverted index from (field, value) to slots, turned into a mask for the search.

Only top-level scalar fields (string, number, bool) are indexed. JSON numbers compare as floats (1 == 1.0);
bools never equal numbers (true != 1), as in JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from winnow.services.index.model import FilterTerm, Scalar


def _key(field: str, value: Scalar) -> tuple[str, str, Scalar]:
    if isinstance(value, bool):
        return (field, "b", value)
    if isinstance(value, (int, float)):
        return (field, "n", float(value))
    return (field, "s", value)


class MetadataIndex:
    """(field, value) -> set of slots, for documents whose metadata has that scalar at the top level."""

    def __init__(self) -> None:
        self._postings: dict[tuple[str, str, Scalar], set[int]] = defaultdict(set)

    @staticmethod
    def _terms(metadata_json: str) -> list[tuple[str, str, Scalar]]:
        meta = json.loads(metadata_json) if metadata_json else {}
        return [_key(f, v) for f, v in meta.items() if isinstance(v, (str, int, float, bool)) and v is not None]

    def add(self, slot: int, metadata_json: str) -> None:
        for key in self._terms(metadata_json):
            self._postings[key].add(slot)

    def remove(self, slot: int, metadata_json: str) -> None:
        for key in self._terms(metadata_json):
            posting = self._postings.get(key)
            if posting is not None:
                posting.discard(slot)
                if not posting:
                    del self._postings[key]

    def mask(self, filters: list[FilterTerm], n: int) -> np.ndarray | None:
        """Slots matching every filter (AND) as a bool mask of length n; None when there are no filters."""
        if not filters:
            return None
        out: np.ndarray | None = None
        for term in filters:
            posting = self._postings.get(_key(term.field, term.value), ())
            m = np.zeros(n, bool)
            if posting:
                idx = np.fromiter(posting, np.int64, len(posting))
                m[idx[idx < n]] = True
            out = m if out is None else (out & m)
        return out
