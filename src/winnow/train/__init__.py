"""Training Winnow's second stage on the user's own data: `winnow train reranker` (cross-encoder) and friends.

Pure cores (pairs, first-stage mining, the training loop); the CLI in `cli.py` is the only edge. Never imports grpc.
"""
