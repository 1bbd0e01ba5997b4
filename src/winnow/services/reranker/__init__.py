"""Reranker service: (query, candidate) pairs -> scores, sorted, dynamically batched across requests."""
