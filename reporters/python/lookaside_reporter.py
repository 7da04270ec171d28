"""Report a Python gRPC backend's load to a lookaside balancer.

The balancer (lookaside-server) weights each backend of a service by the
load it reports on lookaside.v1.LoadReporter/Report and pushes the weights to
its clients; a backend that drains before it exits gets no new calls.

    from lookaside_reporter import Reporter

    rep = Reporter("lookaside.infra.svc:7411", service="web",
                   address="10.1.2.3:5000")        # what clients dial
    server = grpc.server(pool, interceptors=[rep.interceptor()])
    ...
    rep.start()
    ...
    rep.graceful_stop(server, timeout=10)  # drain, finish calls, leave

Messages come from lookaside_pb2, generated from the project's proto file:

    protoc --python_out=DIR -I proto proto/lookaside/v1/lookaside.proto

with DIR on sys.path (the module imports lookaside.v1.lookaside_pb2).
Needs grpcio with ServicerContext.code() (tested with 1.51) and protobuf
(Debian: python3-grpcio, python3-protobuf, protobuf-compiler).
docs/reporting-protocol.md describes the protocol.
"""

import logging
import os
import random
import threading
import time

import grpc

from lookaside.v1 import lookaside_pb2 as pb

REPORT_METHOD = "/lookaside.v1.LoadReporter/Report"
DEFAULT_INTERVAL = 1.0

# Codes that say the server failed, not the caller: counted as errors (eps).
SERVER_ERRORS = frozenset((
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS))

_log = logging.getLogger("lookaside_reporter")


class Info:
    """The reporter's state as the balancer last confirmed it."""

    def __init__(self):
        self.registered = False  # the current stream's registration was acked
        self.token = ""          # this backend's token in server lists
        self.interval = DEFAULT_INTERVAL  # seconds between load reports
        self.accepted = 0        # messages the balancer accepted on this stream
        self.draining = False    # the balancer acknowledged a Drain
        self.loads_sent = 0      # all streams
        self.streams = 0         # Report streams started
        self.last_error = None   # why the last stream ended

    def copy(self):
        c = Info()
        c.__dict__.update(self.__dict__)
        return c


class _Stream:
    """Per-stream state shared by the request generator and the ack loop."""

    def __init__(self):
        self.acked = False
        self.dead = False
        self.half_closed = False
        self.sent = 0            # messages sent; the registration is 1
        self.said_drain = False  # what this stream last said
        self.drain_ordinal = 0   # which message that was
        self.next_load = 0.0     # monotonic time the next load is due


class _Sampler:
    """Rates since the previous sample, and the process's CPU share."""

    def __init__(self, cores, counters):
        self.cores = cores
        self.at = time.monotonic()
        self.finished, self.errors = counters()[1:]
        self.cpu = _cpu_seconds()

    def sample(self, counters, app_util):
        now, cpu = time.monotonic(), _cpu_seconds()
        started, finished, errors = counters()
        load = pb.Load()
        dt = now - self.at
        if dt > 0:
            load.rps_fractional = (finished - self.finished) / dt
            load.eps = (errors - self.errors) / dt
            load.cpu_utilization = max(cpu - self.cpu, 0.0) / (dt * self.cores)
        load.in_flight = min(max(started - finished, 0), 2**32 - 1)
        load.mem_utilization = _mem_utilization()
        load.application_utilization = app_util
        self.at, self.cpu, self.finished, self.errors = now, cpu, finished, errors
        return load


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _mem_utilization():
    """Resident set over the cgroup v2 limit, else over the machine's memory."""
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            cg = f.read().strip()
        if cg.isdigit() and 0 < int(cg) < limit:
            limit = int(cg)
    except OSError:
        pass
    return min(rss / limit, 1.0) if limit > 0 else 0.0


class Reporter:
    """One backend's Report stream, run by a background thread.

    target: the balancer, a gRPC target ("host:port"); channel: a grpc.Channel
    to it instead (e.g. with TLS credentials), then target is only for logs.
    service, address ("ip:port" clients dial), zone and credential go into
    the registration. cores: CPU utilisation is relative to this many cores
    (default: the CPUs this process may run on). Every method is thread-safe.
    """

    def __init__(self, target, service, address, zone="", credential="",
                 channel=None, cores=None, backoff_initial=1.0,
                 backoff_max=30.0):
        if not target or not service or not address:
            raise ValueError("target, service and address are required")
        self._target = target
        self._register = pb.LoadReport(register=pb.Register(
            service=service, address=address, zone=zone or "",
            credential=credential or ""))
        self._name = "%s %s" % (service, address)
        self._own_channel = channel is None
        self._channel = channel or grpc.insecure_channel(target)
        self._rpc = self._channel.stream_stream(
            REPORT_METHOD,
            request_serializer=pb.LoadReport.SerializeToString,
            response_deserializer=pb.ReportAck.FromString)
        self._backoff = (backoff_initial, max(backoff_max, backoff_initial))
        self._counts = [0, 0, 0]  # started, finished, errors
        self._counts_lock = threading.Lock()
        # Rates since the previous Load, across streams (so the first Load
        # of a stream does not cover a few milliseconds only).
        self._sampler = _Sampler(cores or len(os.sched_getaffinity(0)) or 1,
                                 self._counters)
        self._app_util = 0.0
        self._cond = threading.Condition()
        self._info = Info()
        self._want_drain = False
        self._stopping = False
        self._call = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="lookaside-reporter")

    def start(self):
        """Starts the Report stream in a background thread."""
        self._thread.start()
        return self

    # ------------------------------------------------------ call counting

    def call_started(self):
        with self._counts_lock:
            self._counts[0] += 1

    def call_finished(self, code):
        """Counts a call that ended with code (a grpc.StatusCode)."""
        with self._counts_lock:
            self._counts[1] += 1
            if code in SERVER_ERRORS:
                self._counts[2] += 1

    def _counters(self):
        with self._counts_lock:
            return tuple(self._counts)

    def interceptor(self):
        """A grpc.ServerInterceptor that counts every call of the server."""
        return _CountingInterceptor(self)

    def set_application_utilization(self, u):
        """Application-defined utilisation (0..1); > 0 replaces CPU."""
        with self._cond:
            self._app_util = u if u == u and 0 <= u < float("inf") else 0.0

    # ------------------------------------------------- state, drain, stop

    def info(self):
        with self._cond:
            return self._info.copy()

    def _wait_for(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self._info):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def wait_registered(self, timeout):
        """True once the balancer acked the registration (within timeout s)."""
        return self._wait_for(lambda i: i.registered, timeout)

    def set_draining(self, draining):
        """Asks the balancer to stop (True) or resume (False) new traffic."""
        with self._cond:
            draining = draining or self._stopping
            if draining != self._want_drain:
                self._want_drain = draining
                self._info.draining = False
            self._cond.notify_all()

    def drain(self, timeout):
        """Drains and waits for the balancer's acknowledgement; True if it came."""
        self.set_draining(True)
        return self._wait_for(lambda i: i.draining, timeout)

    def stop(self, timeout):
        """Drains, closes the stream (the balancer removes this backend at
        once) and the channel. After timeout seconds the stream is cancelled
        instead, which also removes the backend, and False is returned."""
        with self._cond:
            self._stopping = True
            if not self._want_drain:
                self._want_drain = True
                self._info.draining = False
            self._cond.notify_all()
        clean = True
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                clean = False
                with self._cond:
                    call = self._call
                if call is not None:
                    call.cancel()
                self._thread.join()
        if self._own_channel:
            self._channel.close()
        return clean

    def graceful_stop(self, server, timeout):
        """The exit sequence for a backend: drain (clients stop picking it),
        server.stop(grace) (calls in flight finish), then stop(). Without a
        registered stream (balancer unreachable) there is no drain to wait
        for. True when the drain was acknowledged and the stream closed."""
        deadline = time.monotonic() + timeout
        if self.info().registered:
            drained = self.drain(timeout)
        else:
            self.set_draining(True)
            drained = False
        server.stop(max(deadline - time.monotonic(), 0)).wait()
        return self.stop(max(deadline - time.monotonic(), 0.1)) and drained

    # ------------------------------------------------------------ stream

    def _run(self):
        delay = self._backoff[0]
        while True:
            acked, err = self._stream()
            with self._cond:
                self._info.registered = False
                self._info.accepted = 0
                self._info.last_error = err
                self._cond.notify_all()
                if self._stopping:
                    return
            if acked:
                delay = self._backoff[0]
                _log.warning("%s: report stream ended (%s); reconnecting",
                             self._name, err)
            elif getattr(err, "code", lambda: None)() != grpc.StatusCode.UNAVAILABLE:
                _log.warning("%s: balancer %s refused the report stream: %s",
                             self._name, self._target, err)
            wait = delay / 2 + random.uniform(0, delay / 2)
            delay = min(delay * 2, self._backoff[1])
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, wait)
                if self._stopping:
                    return

    def _stream(self):
        """Runs one stream; returns (acked, error), error None after stop()."""
        st = _Stream()
        call = self._rpc(self._requests(st))
        with self._cond:
            self._call = call
            self._info.streams += 1
        err = None
        try:
            for ack in call:
                with self._cond:
                    if ack.report_interval_ms > 0:
                        self._info.interval = ack.report_interval_ms / 1000.0
                    st.acked = True
                    self._info.registered = True
                    self._info.token = ack.token
                    self._info.accepted = ack.accepted
                    if st.drain_ordinal and ack.accepted >= st.drain_ordinal:
                        self._info.draining = st.said_drain
                    self._cond.notify_all()
            if not st.half_closed:
                err = RuntimeError("the balancer closed the report stream")
        except grpc.RpcError as e:
            err = e
        finally:
            with self._cond:
                st.dead = True
                self._call = None
                self._cond.notify_all()
        return st.acked, err

    def _requests(self, st):
        """The stream's messages; grpc consumes it on its own thread. Ending
        the generator half-closes the stream."""
        st.sent = 1
        yield self._register
        while True:
            with self._cond:
                msg = self._next_message(st)
                if msg is None:
                    st.half_closed = not st.dead
                    return
                st.sent += 1
            yield msg

    def _next_message(self, st):
        """Waits (holding _cond) until something is due: a Drain when the
        wish changed, a Load at the interval; None to end the stream."""
        while not st.dead:
            if not st.acked:
                self._cond.wait()
                continue
            if self._want_drain != st.said_drain:
                st.said_drain = self._want_drain
                st.drain_ordinal = st.sent + 1
                return pb.LoadReport(drain=pb.Drain(draining=st.said_drain))
            if self._stopping:
                if self._info.draining:
                    return None  # drain acknowledged: leave
                self._cond.wait()
                continue
            now = time.monotonic()
            if now >= st.next_load:
                st.next_load = now + self._info.interval
                self._info.loads_sent += 1
                return pb.LoadReport(load=self._sampler.sample(
                    self._counters, self._app_util))
            self._cond.wait(st.next_load - now)
        return None


class _CountingInterceptor(grpc.ServerInterceptor):
    """Wraps every method handler so each call is counted once, when it
    ends (for response streams: when the stream is exhausted)."""

    def __init__(self, rep):
        self._rep = rep

    def intercept_service(self, continuation, handler_call_details):
        h = continuation(handler_call_details)
        if h is None:
            return None
        if h.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(h.unary_unary), h.request_deserializer,
                h.response_serializer)
        if h.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(h.stream_unary), h.request_deserializer,
                h.response_serializer)
        if h.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(h.unary_stream), h.request_deserializer,
                h.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(h.stream_stream), h.request_deserializer,
            h.response_serializer)

    @staticmethod
    def _code(context, failed):
        code = context.code()
        if code is None:
            code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
        return code

    def _unary(self, behavior):
        rep = self._rep

        def counted(request, context):
            rep.call_started()
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                rep.call_finished(self._code(context, failed))
        return counted

    def _streaming(self, behavior):
        rep = self._rep

        def counted(request, context):
            rep.call_started()
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                rep.call_finished(self._code(context, failed))
        return counted
