"""Embedder service: texts -> unit-length vectors, dynamically batched, MRL-truncatable."""
