"""`python -m winnow.services.embedder [--flags]`: settings -> model -> core -> gRPC server."""

from __future__ import annotations

import asyncio
import sys

from winnow.core.server import GrpcService, run_service, serve_forever
from winnow.services.embedder.settings import EmbedderSettings


def build(settings: EmbedderSettings, encoder=None):
    """Load the encoder (unless given) and wire core and service (also used by tests and benchmarks)."""
    from winnow.models.encoder import SentenceTransformerEncoder
    from winnow.models.loading import set_threads
    from winnow.services.embedder.core import EmbedderCore
    from winnow.services.embedder.server import register

    set_threads(settings.threads)
    encoder = encoder or SentenceTransformerEncoder(settings.model_dir or None, settings.device,
                                                    settings.mrl_dimensions, settings.max_seq_length)
    core = EmbedderCore(encoder, max_texts=settings.max_texts, max_batch_size=settings.max_batch_size,
                        max_wait_ms=settings.max_wait_ms, max_batch_tokens=settings.max_batch_tokens,
                        max_queue=settings.max_queue,
                        sub_batch_tokens=settings.sub_batch_tokens, stall_s=settings.stall_s)
    return core, GrpcService("embedder", settings, register(core), probe=core.probe)


async def _main(settings: EmbedderSettings) -> None:
    core, svc = build(settings)
    try:
        await serve_forever(svc, warmup=core.warmup)
    finally:
        await core.close()


def main(argv: list[str] | None = None) -> int:
    settings = EmbedderSettings.from_args(sys.argv[1:] if argv is None else argv)
    return run_service("embedder", settings, _main)


if __name__ == "__main__":
    sys.exit(main())
