"""`python -m winnow.services.embedder [--flags]`: settings -> model -> core -> gRPC server."""

from __future__ import annotations

import sys

from winnow.rpc.server import GrpcService, Wiring, serve
from winnow.services.embedder.settings import EmbedderSettings

SERVICE = "embedder"


def build(settings: EmbedderSettings, encoder=None) -> Wiring:
    """Load the encoder (unless given) and wire core and service (also used by tests and benchmarks)."""
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.loading import set_threads
    from winnow.services.embedder.core import EmbedderCore
    from winnow.services.embedder.server import register

    set_threads(settings.threads)
    encoder = encoder or SentenceTransformerEncoder(settings.model_dir or None, settings.device,
                                                    settings.mrl_dimensions, settings.max_seq_length)
    core = EmbedderCore(encoder, max_texts=settings.max_texts, **settings.batcher_limits())
    return Wiring(GrpcService(SERVICE, settings, register(core), probe=core.probe), core, core.warmup, core.close)


def main(argv: list[str] | None = None) -> int:
    return serve(SERVICE, EmbedderSettings, build, argv)


if __name__ == "__main__":
    sys.exit(main())
