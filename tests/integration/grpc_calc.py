"""calc-svc's gRPC twin in python3-grpcio, for the tests that need a real
gRPC server: raw-bytes messages (no protobuf), on 127.0.0.1, a port of its
own. Sum adds two bytes; Fail answers UNAVAILABLE with a message that needs
percent-encoding; Count streams back, for each message it is sent, that
message's length mod 256 (streaming both ways); Sleep waits its byte's
tenths of a second; Deadline answers the time the call has left, in ms, as
text (what grpc-timeout said); Flaky fails UNAVAILABLE on every second call
of a key (its byte), so a retry succeeds."""
import contextlib
import threading
import time
from concurrent import futures

import grpc


def _total(request, context):
    return bytes([request[0] + request[1]])


def _fail(request, context):
    context.abort(grpc.StatusCode.UNAVAILABLE, "down 100% for now")


def _count(requests, context):
    for r in requests:
        yield bytes([len(r) % 256])


def _sleep(request, context):
    time.sleep(request[0] / 10)
    return b"awake"


def _deadline(request, context):
    left = context.time_remaining()
    return b"none" if left is None else str(int(left * 1000)).encode()


class _Flaky:
    def __init__(self):
        self.calls = {}
        self.lock = threading.Lock()

    def __call__(self, request, context):
        with self.lock:
            n = self.calls[request] = self.calls.get(request, 0) + 1
        if n % 2 == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return b"ok"


@contextlib.contextmanager
def serve(workers=4):
    """The server, started; yields its port and stops it on the way out."""
    handler = grpc.method_handlers_generic_handler("calc.Calc", {
        "Sleep": grpc.unary_unary_rpc_method_handler(_sleep),
        "Deadline": grpc.unary_unary_rpc_method_handler(_deadline),
        "Flaky": grpc.unary_unary_rpc_method_handler(_Flaky()),
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
