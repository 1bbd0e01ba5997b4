"""Winnow as a peer: a client of a running gateway, over the public gRPC API only.

    python winnow_driver.py --workload DIR --target HOST:PORT [--fusion convex|rrf]

Engine only = the precomputed query vector in `query_vector` (plus the text, for BM25, in hybrid); end to end =
the text alone (the gateway's embedder encodes it). Rerank off and the result cache bypassed: this compares first
stages. One channel shared by every client thread, as an application would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import driverlib  # noqa: E402

from winnow.api.gateway.v1 import gateway_pb2 as pb  # noqa: E402
from winnow.api.gateway.v1 import gateway_pb2_grpc  # noqa: E402

_RETRIEVAL = {"hybrid": pb.RETRIEVAL_HYBRID, "dense": pb.RETRIEVAL_DENSE, "lexical": pb.RETRIEVAL_LEXICAL}
_FUSION = {"convex": pb.FUSION_CONVEX, "rrf": pb.FUSION_RRF, "": pb.FUSION_UNSPECIFIED}


class WinnowEngine:
    def __init__(self, w: driverlib.Workload, target: str, fusion: str) -> None:
        self.w, self.fusion = w, _FUSION[fusion]
        self.channel = grpc.insecure_channel(target)
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)
        self.vectors = [v.tolist() for v in w.query_vectors]

    def search(self, qi: int, mode: str, text: bool) -> list[str]:
        w = self.w
        req = pb.SearchRequest(
            query=w.query_texts[qi] if (text or mode != "dense") else "", k=w.k, candidate_window=w.window,
            rerank=False, retrieval=_RETRIEVAL[mode], no_cache=True, fusion=self.fusion,
        )
        if not text and mode != "lexical":
            req.query_vector.extend(self.vectors[qi])
        return [h.id for h in self.stub.Search(req, timeout=30).hits]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--fusion", default="")
    args = ap.parse_args()
    w = driverlib.Workload(args.workload)
    driverlib.serve(WinnowEngine(w, args.target, args.fusion), w, {})


if __name__ == "__main__":
    main()
