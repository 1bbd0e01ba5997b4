"""Retrieval-quality evaluation: IR metrics, a BEIR loader, and the `winnow eval` runner."""
