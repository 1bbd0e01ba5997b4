"""`python -m winnow.services.embedder [--flags]`: settings -> model -> core -> gRPC server."""

from __future__ import annotations

import sys

from winnow.rpc.server import Wiring, service_main, wire_model
from winnow.services.embedder.settings import EmbedderSettings

SERVICE = "embedder"


def build(settings: EmbedderSettings, encoder=None) -> Wiring:
    """Load the encoder (unless given) and wire core and service (also used by tests and benchmarks)."""
    from winnow.api.internal.embedder.v1 import embedder_pb2, embedder_pb2_grpc
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.loading import set_threads
    from winnow.services.embedder.core import EmbedderCore
    from winnow.services.embedder.server import EmbedderServicer

    set_threads(settings.threads)
    encoder = encoder or SentenceTransformerEncoder(settings.model_dir or None, settings.device,
                                                    settings.mrl_dimensions, settings.max_seq_length)
    core = EmbedderCore(encoder, max_texts=settings.max_texts, limits=settings.batcher_limits())
    return wire_model(SERVICE, settings, core, EmbedderServicer(core), embedder_pb2_grpc.add_EmbedderServicer_to_server,
                      embedder_pb2.DESCRIPTOR.services_by_name["Embedder"])


main = service_main(SERVICE, EmbedderSettings, build)

if __name__ == "__main__":
    sys.exit(main())
