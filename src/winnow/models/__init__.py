"""Model loading, the bi-encoder core and the reranker scorers. Never imports grpc.

Importing this package pins the Hugging Face libraries offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) before
they are imported, so a missing model directory fails with a clear error instead of trying a hub.
"""

from winnow.models.loading import force_offline

force_offline()
