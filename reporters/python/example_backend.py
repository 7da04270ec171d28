#!/usr/bin/python3
"""A Python gRPC backend that reports its load with lookaside_reporter.

Serves grpc.health.v1.Health/Check (decoded by hand: one string field) with
behaviours chosen by the request's service field, so a test can produce
every kind of load:
    ""        SERVING
    "fail"    ends with INTERNAL (a server error: counted in eps)
    "hold"    waits until a "release" call (a call in flight)
    "release" releases every held call
Prints "serving on ADDR", "registered token=T" once the balancer acked, and
on SIGTERM/SIGINT runs the graceful exit (drain, finish calls, leave) and
prints "stopped drained=True|False" before exiting 0.
"""

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

from lookaside_reporter import Reporter

SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def service_field(request):
    """HealthCheckRequest.service (field 1, length-delimited, short)."""
    if len(request) >= 2 and request[0] == 0x0A and request[1] < 0x80:
        return request[2:2 + request[1]].decode()
    return ""


class Health:
    def __init__(self):
        self._lock = threading.Lock()
        self._release = threading.Event()

    def check(self, request, context):
        what = service_field(request)
        if what == "fail":
            context.abort(grpc.StatusCode.INTERNAL, "asked to fail")
        elif what == "hold":
            with self._lock:
                ev = self._release
            if not ev.wait(30):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "never released")
        elif what == "release":
            with self._lock:
                self._release.set()
                self._release = threading.Event()
        return SERVING


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lb", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--zone", default="")
    args = ap.parse_args()

    host = args.listen.rsplit(":", 1)[0]
    health = Health()
    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(health.check)})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    # A Python server takes its interceptors when it is created but tells
    # its port only when it binds; the reporter needs the port, so a
    # forwarding interceptor is filled in once the reporter exists.
    fwd = _Forward()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         interceptors=[fwd])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(args.listen)
    address = "%s:%d" % (host, port)
    rep = Reporter(args.lb, service=args.service, address=address, zone=args.zone)
    fwd.target = rep.interceptor()
    server.start()
    rep.start()
    print("serving on %s" % address, flush=True)
    if rep.wait_registered(30):
        print("registered token=%s" % rep.info().token, flush=True)
    stop.wait()
    ok = rep.graceful_stop(server, 10)
    info = rep.info()
    print("stopped drained=%s loads_sent=%d" % (info.draining, info.loads_sent),
          flush=True)
    sys.exit(0 if ok else 1)


class _Forward(grpc.ServerInterceptor):
    """Delegates to target, set once the reporter exists."""
    target = None

    def intercept_service(self, continuation, handler_call_details):
        return self.target.intercept_service(continuation, handler_call_details)


if __name__ == "__main__":
    main()
