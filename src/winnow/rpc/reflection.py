"""gRPC server reflection under both names clients use: `grpc.reflection.v1` (grpcurl >= 1.8.8, Postman) and
`grpc.reflection.v1alpha` (older tools).

grpcio-reflection ships only v1alpha; the v1 protocol is the same messages with the same field numbers under a
new package, so the v1alpha servicer answers both, its messages (de)serialising v1 bytes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import _async, reflection_pb2, reflection_pb2_grpc

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
V1 = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1, V1ALPHA)


def enable(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha for `service_names` (the two reflection names are added)."""
    servicer = _async.ReflectionServicer([*service_names, *SERVICE_NAMES])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": handler}),))
