"""Reading documents from JSON-lines files (BEIR corpus layout or Winnow's own) and upserting them in batches."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class CorpusError(ValueError):
    """A corpus file is unreadable; the message names the file and line."""


def document_text(title: str, text: str) -> str:
    """What Winnow embeds and BM25-indexes for a titled document: ``title + " " + text`` (BEIR's convention)."""
    return f"{title.strip()} {text.strip()}".strip()


def document_from_record(rec: dict[str, Any]) -> dict[str, Any]:
    """BEIR (`_id`, `title`, `text`, `metadata`) or Winnow (`id`, `text`, `metadata`) -> an upsert dict.

    The title is prepended to the text (what is embedded and BM25-indexed) and kept in metadata.
    """
    doc_id = rec.get("_id", rec.get("id"))
    if doc_id is None or str(doc_id).strip() == "":
        raise KeyError("no `_id` or `id`")
    title = (rec.get("title") or "").strip()
    text = (rec.get("text") or "").strip()
    meta = dict(rec.get("metadata") or {})
    if title:
        meta.setdefault("title", title)
    full = document_text(title, text)
    if not full:
        raise KeyError("no `text` (or `title`)")
    doc = {"id": str(doc_id), "text": full, "metadata": meta}
    if rec.get("vector") is not None:  # the caller's own embedding; the gateway checks it
        doc["vector"] = [float(x) for x in rec["vector"]]
    return doc


def read_documents(path: str | Path) -> Iterator[dict[str, Any]]:
    """Documents of a .jsonl or .jsonl.gz file; bad lines raise CorpusError naming file and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        fh = opener(path, "rt", encoding="utf-8")
    except OSError as exc:
        raise CorpusError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield document_from_record(json.loads(line))
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
                raise CorpusError(f"{path}:{lineno}: not a document ({exc})") from None


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest(client, documents: Iterable[dict[str, Any]], batch_size: int = 64, total: int | None = None,
           progress: bool = True, desc: str = "ingest", vector_model: str = "") -> int:
    """Upsert documents through a WinnowClient in batches, with a progress bar. Returns documents written."""
    from tqdm import tqdm

    written = 0
    with tqdm(total=total, desc=desc, unit="doc", disable=not progress, dynamic_ncols=True) as bar:
        for batch in batched(documents, batch_size):
            kw = {"vector_model": vector_model} if vector_model else {}
            written += client.upsert(batch, timeout=max(60.0, 2.0 * len(batch)), **kw).upserted
            bar.update(len(batch))
    return written


def count_lines(path: str | Path) -> int:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())
