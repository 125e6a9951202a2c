"""calc-svc's gRPC twin in python3-grpcio, for the tests that need a real
gRPC server: raw-bytes messages (no protobuf), on 127.0.0.1, a port of its
own. Sum adds two bytes; Fail answers UNAVAILABLE with a message that needs
percent-encoding; Count streams back, for each message it is sent, that
message's length mod 256 (streaming both ways)."""
import contextlib
from concurrent import futures

import grpc


def _total(request, context):
    return bytes([request[0] + request[1]])


def _fail(request, context):
    context.abort(grpc.StatusCode.UNAVAILABLE, "down 100% for now")


def _count(requests, context):
    for r in requests:
        yield bytes([len(r) % 256])


@contextlib.contextmanager
def serve(workers=4):
    """The server, started; yields its port and stops it on the way out."""
    handler = grpc.method_handlers_generic_handler("calc.Calc", {
        "Sum": grpc.unary_unary_rpc_method_handler(_total),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "Count": grpc.stream_stream_rpc_method_handler(_count),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(5)
