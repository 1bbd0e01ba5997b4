"""The document log: NATS JetStream as the source of truth for every document (see docs/log.md).

`names` says where a partition lives, `codec` what one message holds, `client` writes and reads it. None of these
modules knows gRPC.
"""
