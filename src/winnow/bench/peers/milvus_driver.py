"""Milvus Lite as a peer: run with the peers venv's python (pymilvus + milvus-lite), never Winnow's.

    .peers-venv/bin/python milvus_driver.py --workload DIR --db PATH [--extra-site DIR]

One collection: id (primary), text (English analyzer: stemming + stopwords, like Winnow's BM25), dense (FLOAT_VECTOR,
FLAT index, inner product: exact, as Milvus Lite 2.5 offers FLAT/IVF only) and sparse (filled by Milvus's built-in
BM25 function). Hybrid = `hybrid_search` over both with RRF (k=60), each list `window` long, top k returned with
the text (a search engine returns documents; Winnow's hits carry their text too). --extra-site appends Winnow's
venv site-packages *after* this venv's, only to import sentence-transformers for the end-to-end (text) runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import driverlib  # noqa: E402

COLLECTION = "scifact"


class MilvusEngine:
    def __init__(self, w: driverlib.Workload, db: str, encode) -> None:
        from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, RRFRanker

        self.w, self.encode = w, encode
        self.Ann, self.ranker = AnnSearchRequest, RRFRanker(60)
        self.client = c = MilvusClient(db)
        if c.has_collection(COLLECTION):
            c.drop_collection(COLLECTION)
        s = c.create_schema(auto_id=False)
        s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        s.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                    analyzer_params={"type": "english"})
        s.add_field("dense", DataType.FLOAT_VECTOR, dim=int(w.doc_vectors.shape[1]))
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", input_field_names=["text"], output_field_names=["sparse"],
                                function_type=FunctionType.BM25))
        ip = c.prepare_index_params()
        ip.add_index("dense", index_type="FLAT", metric_type="IP")
        ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        c.create_collection(COLLECTION, schema=s, index_params=ip)
        rows = [{"id": i, "text": t, "dense": v.tolist()}
                for i, t, v in zip(w.doc_ids, w.doc_texts, w.doc_vectors)]
        for start in range(0, len(rows), 500):
            c.insert(COLLECTION, rows[start:start + 500])
        c.flush(COLLECTION)
        c.load_collection(COLLECTION)

    def search(self, qi: int, mode: str, text: bool) -> list[str]:
        w, q = self.w, self.w.query_texts[qi]
        vec = (self.encode(q) if text else w.query_vectors[qi]).tolist() if mode != "lexical" else None
        fields = ["text"]
        if mode == "dense":
            res = self.client.search(COLLECTION, [vec], anns_field="dense", limit=w.k, output_fields=fields,
                                     search_params={"metric_type": "IP"})
        elif mode == "lexical":
            res = self.client.search(COLLECTION, [q], anns_field="sparse", limit=w.k, output_fields=fields,
                                     search_params={"metric_type": "BM25"})
        else:
            reqs = [self.Ann([vec], "dense", {"metric_type": "IP"}, limit=w.window),
                    self.Ann([q], "sparse", {"metric_type": "BM25"}, limit=w.window)]
            res = self.client.hybrid_search(COLLECTION, reqs, self.ranker, limit=w.k, output_fields=fields)
        return [h["id"] for h in res[0]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--extra-site", default="")
    args = ap.parse_args()
    if args.extra_site:
        sys.path.append(args.extra_site)
    w = driverlib.Workload(args.workload)
    try:
        encode = w.encoder()
    except ImportError as exc:
        print(f"no encoder ({exc}); text runs will fail", file=sys.stderr)
        encode = None
    t = time.perf_counter()
    engine = MilvusEngine(w, args.db, encode)
    from importlib.metadata import version

    driverlib.serve(engine, w, {"build_s": round(time.perf_counter() - t, 1), "version": version("milvus-lite")})


if __name__ == "__main__":
    main()
