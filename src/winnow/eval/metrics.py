"""Ranked-retrieval metrics: nDCG@k, MRR@k, recall@k, precision@k, and set recall/precision for bulk.

Conventions (the same as trec_eval / pytrec_eval, which BEIR reports, unless said otherwise):

* **Relevance.** ``qrels[qid][doc_id]`` is a graded judgement; a document is *relevant* when its grade is > 0.
  Grades <= 0 and unjudged documents count as non-relevant with gain 0.
* **nDCG@k** uses linear gain and the standard log2 discount: ``DCG@k = sum_{i=1..k} rel_i / log2(i + 1)``.
  The ideal DCG is computed from the query's *qrels* (all judged grades sorted descending, cut at k), not
  from the retrieved list, so missing a relevant document costs the same whether or not it was retrieved.
* **Ties.** A run given as ``{doc_id: score}`` is ordered by score descending, then by doc id ascending
  (plain string order). The rule makes results reproducible across runs and machines. trec_eval breaks ties
  by doc id in reverse order, so tie-heavy runs can differ from it slightly; runs given as an already
  ordered sequence are used as they are.
* **Queries with no relevant document** in the qrels are skipped (not averaged in), as BEIR/pytrec_eval do;
  a judged query that is missing from the run, or has an empty result, scores 0 and *is* averaged in.
* **precision@k** divides by k even when fewer than k documents came back (trec_eval's P@k).
* **MRR@k** is 1/rank of the first relevant document within the top k, 0 when there is none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
#: A query's result: either scores per doc id (ordered by the tie rule above) or an ordered list of doc ids.
Result = Mapping[str, float] | Sequence[str]

DEFAULT_KS = (10, 80, 100)


def ranked(result: Result) -> list[str]:
    """Doc ids in rank order: by score descending then doc id ascending; a sequence is kept as it is."""
    if isinstance(result, Mapping):
        return [doc for doc, _ in sorted(result.items(), key=lambda item: (-item[1], item[0]))]
    return list(result)


def _relevant(rels: Mapping[str, int]) -> set[str]:
    return {doc for doc, grade in rels.items() if grade > 0}


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain of gains in rank order (rank 1 first), log2(rank + 1) discount."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)


def ndcg_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list against one query's graded qrels (0 when nothing is relevant)."""
    ideal = dcg(sorted((g for g in rels.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(max(rels.get(doc, 0), 0) for doc in ranking[:k]) / ideal


def mrr_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k (0 if none)."""
    for i, doc in enumerate(ranking[:k]):
        if rels.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Fraction of the query's relevant documents found in the top k (0 if nothing is relevant)."""
    relevant = _relevant(rels)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def precision_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Relevant documents in the top k divided by k (trec_eval's P@k)."""
    return sum(1 for doc in ranking[:k] if rels.get(doc, 0) > 0) / k


def set_recall_precision(returned: Iterable[str], rels: Mapping[str, int]) -> tuple[float, float]:
    """(recall, precision) of an unranked returned set, for bulk/threshold search. Empty set → precision 0."""
    got = set(returned)
    relevant = _relevant(rels)
    hits = len(got & relevant)
    recall = hits / len(relevant) if relevant else 0.0
    precision = hits / len(got) if got else 0.0
    return recall, precision


def judged_queries(qrels: Qrels) -> list[str]:
    """Query ids that have at least one relevant document, in sorted order (the ones metrics average over)."""
    return sorted(qid for qid, rels in qrels.items() if _relevant(rels))


def per_query(run: Mapping[str, Result], qrels: Qrels, ks: Sequence[int] = DEFAULT_KS) -> dict[str, dict[str, float]]:
    """Metrics for every judged query: ``{qid: {"ndcg@10": .., "mrr@10": .., "recall@k": .., "precision@k": ..}}``.

    Keys are ``ndcg@k``, ``mrr@k``, ``recall@k`` and ``precision@k`` for every k in ``ks``.
    """
    out: dict[str, dict[str, float]] = {}
    for qid in judged_queries(qrels):
        rels = qrels[qid]
        ranking = ranked(run.get(qid, ()))
        row: dict[str, float] = {}
        for k in ks:
            row[f"ndcg@{k}"] = ndcg_at_k(ranking, rels, k)
            row[f"mrr@{k}"] = mrr_at_k(ranking, rels, k)
            row[f"recall@{k}"] = recall_at_k(ranking, rels, k)
            row[f"precision@{k}"] = precision_at_k(ranking, rels, k)
        out[qid] = row
    return out


def mean_metrics(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Average per-query metric rows key by key (empty input → empty dict)."""
    if not rows:
        return {}
    keys = next(iter(rows.values())).keys()
    return {key: sum(row[key] for row in rows.values()) / len(rows) for key in keys}


def evaluate(run: Mapping[str, Result], qrels: Qrels, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean of :func:`per_query` over the judged queries of ``qrels`` (queries with no relevant doc skipped)."""
    return mean_metrics(per_query(run, qrels, ks))
