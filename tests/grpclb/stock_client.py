#!/usr/bin/python3
"""An unmodified stock gRPC client balanced by lookaside-server over grpclb.

Debian's python3-grpcio is gRPC C core; its grpclb policy finds the balancer
through the DNS SRV record _grpclb._tcp.<host> (channel arg
grpc.dns_enable_srv_queries=1) and is selected by the service config
{"loadBalancingConfig":[{"grpclb":{}}]}. Nothing in the client knows about
lookaside.

Pieces, all on 127.0.0.0/8 with ephemeral ports, every process stopped by PID:
  - lookaside-server (the binary under test, temp database);
  - three (later four) tiny backends on 127.0.0.2.. serving a raw-bytes unary
    method /test.Echo/Who that answers "<name>|<lb-token it received>"; each
    registers and reports load through LoadReporter.Report (messages encoded
    by hand below, so no protoc/codegen is needed);
  - dnsmasq serving _grpclb._tcp.web.test SRV -> lb.test:<server port>, and
    web.test A -> 127.0.0.9 (nothing listens there: a call that reaches it,
    i.e. grpclb fallback, fails the test);
  - the stock client.

Checks: calls reach exactly the backends the server lists, with the tokens
it assigned; shares follow the published weights (within 3 points); after a
drain and after a new backend registers the client follows within a second;
when nothing can serve, calls are dropped by the client; ClientStats reach
the server (Admin.DescribeService grpclb totals). Prints what it measured.

With --tls GEN_CERTS (tests/security/gen_certs.sh) the same run goes over
TLS everywhere: the server with mTLS and a policy file, the backends serving
TLS, and the stock client with grpc.ssl_channel_credentials (a client
certificate allowed to watch web.test only) reaching balancer and backends
through the same SRV record.

Exit status: 0 pass, 1 fail, 77 skipped (missing python3-grpcio or dnsmasq:
install them with scripts/deps.sh).
"""

import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
DNSMASQ = "/usr/sbin/dnsmasq"
SERVICE = "web.test"
FALLBACK = ("127.0.0.9", 9)        # the A record; must never be reached
SETTLE_LIMIT_S = 40.0              # slow start is 10 s; weights settle soon after
CHANGE_LIMIT_S = 1.0               # the client must follow a change within this
SHARE_TOLERANCE = 0.03             # absolute share difference allowed
TLS = None                         # --tls: {"dir": certificate directory}
REPORT_MS = 200                    # report interval (longer over TLS: python's threads
                                   # share one core with TLS on every call)

try:
    import grpc  # noqa: E402  (Debian's python3-grpcio: C core underneath)
except ImportError:
    grpc = None


def log(msg):
    print("stock_client: " + msg, flush=True)


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


# ---------------------------------------------------------------- protobuf
# The few lookaside.v1 messages the test needs, encoded by hand.

def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def f_double(field, x):
    return varint(field << 3 | 1) + struct.pack("<d", x)


def parse(buf):
    """Decodes one message into {field: [values]} (ints, bytes or floats)."""
    out = {}
    i = 0
    while i < len(buf):
        k, i = read_varint(buf, i)
        field, wt = k >> 3, k & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 1:
            v = struct.unpack("<d", buf[i:i + 8])[0]
            i += 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            v = bytes(buf[i:i + n])
            i += n
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(field, []).append(v)
    return out


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def one(msg, field, default=None):
    v = msg.get(field)
    return v[0] if v else default


def register_msg(service, address):
    return f_bytes(1, f_bytes(1, service) + f_bytes(2, address))       # LoadReport.register


def load_msg(util, rps):
    return f_bytes(2, f_double(1, util) + f_double(4, rps))             # LoadReport.load


def describe(channel, service):
    """Admin.DescribeService -> (backends {address: (weight, token, state,
    slow_start_factor)}, grpclb totals dict)."""
    call = channel.unary_unary("/lookaside.v1.Admin/DescribeService")
    m = parse(call(f_bytes(1, service), timeout=5))
    backends = {}
    for raw in m.get(4, []):
        info = parse(raw)
        be = parse(one(info, 1, b""))
        why = parse(one(info, 3, b""))
        backends[one(be, 1, b"").decode()] = (one(be, 2, 0), one(be, 4, b"").decode(),
                                              one(be, 5, 0), one(why, 7, 0.0))
    lb = parse(one(m, 6, b""))
    totals = {name: one(lb, f, 0) for f, name in
              ((1, "started"), (2, "finished"), (3, "failed_to_send"),
               (4, "known_received"), (5, "dropped"))}
    return backends, totals


def set_drain(channel, service, address, draining):
    call = channel.unary_unary("/lookaside.v1.Admin/SetDrain")
    call(f_bytes(1, service) + f_bytes(2, address) + f_varint(3, 1 if draining else 0),
         timeout=5)


# ----------------------------------------------------------------- processes

def free_port(kind, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_log(path, pattern, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def stop(proc, name):
    """SIGTERM by PID, wait up to 10 s, then SIGKILL. Returns the exit code."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log("%s (pid %d) ignored SIGTERM; killing" % (name, proc.pid))
        proc.kill()
        return proc.wait(timeout=10)


def dns_query_srv(port, name, timeout=1.0):
    """Number of answers dnsmasq gives for an SRV query (readiness probe)."""
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 33, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
        return struct.unpack(">H", data[6:8])[0]
    except OSError:
        return -1
    finally:
        s.close()


def start_dnsmasq(tmp, lb_port):
    """dnsmasq on 127.0.0.1:<ephemeral>; retries when the port was taken."""
    for attempt in range(8):
        port = free_port(socket.SOCK_DGRAM)
        logf = os.path.join(tmp, "dnsmasq.log")
        args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", "--pid-file", "--bind-interfaces",
                "--listen-address=127.0.0.1", "--port=%d" % port, "--log-facility=-",
                "--log-queries", "--local=/test/",
                "--host-record=lb.test,127.0.0.1",
                "--host-record=%s,%s" % (SERVICE, FALLBACK[0]),
                "--srv-host=_grpclb._tcp.%s,lb.test,%d" % (SERVICE, lb_port)]
        with open(logf, "w") as out:
            p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and p.poll() is None:
            if dns_query_srv(port, "_grpclb._tcp." + SERVICE) > 0:
                return p, port, logf
            time.sleep(0.05)
        stop(p, "dnsmasq")
        with open(logf, errors="replace") as f:
            log("dnsmasq attempt %d on port %d failed: %s" % (attempt + 1, port, f.read()[-300:]))
    raise Fail("could not start dnsmasq")


class Backend:
    """A grpcio server answering /test.Echo/Who, plus its Report stream."""

    def __init__(self, name, ip, util, lb_channel):
        from concurrent import futures
        self.name, self.ip, self.util = name, ip, util
        self.hits = 0
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(
            "test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(self.who)})
        self.server.add_generic_rpc_handlers((handler,))
        if TLS:
            self.port = self.server.add_secure_port(
                "%s:0" % ip, grpc.ssl_server_credentials([(pem("server.key"), pem("server.crt"))]))
        else:
            self.port = self.server.add_insecure_port("%s:0" % ip)
        check(self.port > 0, "backend %s cannot bind %s" % (name, ip))
        self.address = "%s:%d" % (ip, self.port)
        self.server.start()
        self.lb_channel = lb_channel
        self.stop_ev = threading.Event()
        self.token = None
        self.acked = threading.Event()
        self.thread = threading.Thread(target=self.report, daemon=True)
        self.thread.start()

    def who(self, request, context):
        md = dict(context.invocation_metadata())
        with self.lock:
            self.hits += 1
        return ("%s|%s" % (self.name, md.get("lb-token", ""))).encode()

    def requests(self):
        yield register_msg(SERVICE, self.address)
        while not self.stop_ev.wait(REPORT_MS / 1000.0):
            # A fixed synthetic load: weights then depend only on util.
            yield load_msg(self.util, 100.0)

    def report(self):
        call = self.lb_channel.stream_stream("/lookaside.v1.LoadReporter/Report")
        try:
            for ack in call(self.requests()):
                tok = one(parse(ack), 2)
                if tok and self.token is None:
                    self.token = tok.decode()
                    self.acked.set()
        except grpc.RpcError as e:
            if not self.stop_ev.is_set():
                log("report stream of %s ended: %s" % (self.name, e))

    def close(self):
        self.stop_ev.set()
        self.server.stop(0)
        self.thread.join(timeout=5)


# ------------------------------------------------------------------- the test

class Client:
    """The stock client: a plain grpcio channel, configured only by target,
    channel args and service config."""

    def __init__(self, dns_port):
        target = "dns://127.0.0.1:%d/%s:%d" % (dns_port, SERVICE, FALLBACK[1])
        opts = [("grpc.dns_enable_srv_queries", 1),
                ("grpc.service_config",
                 json.dumps({"loadBalancingConfig": [{"grpclb": {}}]}))]
        if TLS:
            # Verifies the balancer as lb.test (its SRV name) and the
            # backends as web.test (the target's host): no overrides.
            creds = grpc.ssl_channel_credentials(pem("ca.crt"), pem("client.key"), pem("client.crt"))
            self.channel = grpc.secure_channel(target, creds, options=opts)
        else:
            self.channel = grpc.insecure_channel(target, options=opts)
        self.who = self.channel.unary_unary("/test.Echo/Who")
        log("client target %s" % target)

    def call(self):
        """(backend name, token) or (None, status) for a failed call."""
        try:
            name, tok = self.who(b"", timeout=5).decode().split("|", 1)
            return name, tok
        except grpc.RpcError as e:
            return None, "%s: %s" % (e.code(), e.details())


def wait_settled(admin, backends, limit):
    """Waits until every serving backend is past slow start and its published
    weight held still for a second; returns {address: (weight, token)}."""
    deadline = time.monotonic() + limit
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        listed, _ = describe(admin, SERVICE)
        cur = {a: (w, t) for a, (w, t, st, ss) in listed.items() if w > 0}
        done = all(listed.get(b.address, (0, "", 0, 0.0))[3] >= 0.999 for b in backends)
        if cur != last:
            last, since = cur, time.monotonic()
        elif done and len(cur) == len(backends) and time.monotonic() - since >= 1.0:
            return cur
        time.sleep(0.1)
    raise Fail("weights did not settle within %.0f s: %s" % (limit, last))


def measure(client, n, allowed):
    counts, tokens = {}, {}
    for _ in range(n):
        name, tok = client.call()
        check(name is not None, "call failed: %s" % tok)
        check(name in allowed, "call reached %s, not a listed backend %s" % (name, sorted(allowed)))
        counts[name] = counts.get(name, 0) + 1
        tokens.setdefault(name, set()).add(tok)
    return counts, tokens


def pem(name):
    with open(os.path.join(TLS["dir"], name), "rb") as f:
        return f.read()


def lb_channel(lb_port, who):
    """A channel to the balancer: plaintext, or mTLS as certificate `who`."""
    if not TLS:
        return grpc.insecure_channel("127.0.0.1:%d" % lb_port)
    creds = grpc.ssl_channel_credentials(pem("ca.crt"), pem(who + ".key"), pem(who + ".crt"))
    return grpc.secure_channel("127.0.0.1:%d" % lb_port, creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def tls_server_args(tmp):
    """Server flags for mTLS and a least-privilege policy."""
    d = TLS["dir"]
    policy = os.path.join(tmp, "policy")
    with open(policy, "w") as f:
        f.write("id spiffe://test/client-web watch:web.test\n"
                "id spiffe://test/admin admin\n"
                # the backends report from 127.0.0.1 for 127.0.0.2.. addresses
                "id spiffe://test/reporter-web report:web.test register-any\n")
    return ["--tls-cert", os.path.join(d, "server.crt"), "--tls-key", os.path.join(d, "server.key"),
            "--tls-client-ca", os.path.join(d, "ca.crt"), "--policy-file", policy]


def run(server_bin, tmp):
    procs = []
    backends = []
    client = None
    admin = None
    server = dns = None
    server_log = os.path.join(tmp, "server.log")
    try:
        with open(server_log, "w") as out:
            server = subprocess.Popen(
                [server_bin, "--listen", "127.0.0.1:0", "--db", os.path.join(tmp, "lb.db"),
                 "--report-interval-ms", str(REPORT_MS), "--weight-period-ms", "200",
                 "--grpclb-stats-ms", "1000", "--log-level", "debug"]
                + (tls_server_args(tmp) if TLS else []),
                stdout=out, stderr=subprocess.STDOUT)
        procs.append(("lookaside-server", server))
        m = wait_for_log(server_log, r"listening on 127\.0\.0\.1:(\d+)", server, 20)
        check(m is not None, "lookaside-server did not start")
        lb_port = int(m.group(1))
        log("lookaside-server pid %d on 127.0.0.1:%d" % (server.pid, lb_port))
        admin = lb_channel(lb_port, "admin")
        reporter = lb_channel(lb_port, "reporter") if TLS else admin

        dns, dns_port, dns_log = start_dnsmasq(tmp, lb_port)
        procs.append(("dnsmasq", dns))
        log("dnsmasq pid %d on 127.0.0.1:%d" % (dns.pid, dns_port))

        # Same rps, different utilisation: A58 weights rps/util = 500, 333,
        # 200, i.e. shares of about 48/32/19 per cent.
        for name, ip, util in (("b1", "127.0.0.2", 0.2), ("b2", "127.0.0.3", 0.3),
                               ("b3", "127.0.0.4", 0.5)):
            backends.append(Backend(name, ip, util, reporter))
        for b in backends:
            check(b.acked.wait(10), "backend %s was not registered" % b.name)
        by_addr = {b.address: b for b in backends}

        client = Client(dns_port)
        # First contact: wait (bounded) until the client's calls succeed.
        t0 = time.monotonic()
        while True:
            name, tok = client.call()
            if name is not None:
                break
            check(time.monotonic() - t0 < 15, "client never reached a backend: %s" % tok)
            time.sleep(0.1)
        log("first call answered by %s after %.2f s" % (name, time.monotonic() - t0))
        check(name in ("b1", "b2", "b3"), "first call reached %s" % name)

        if TLS:
            # Over TLS the point is the path (SRV -> balancer over mTLS ->
            # backends over TLS, lb tokens intact); the dynamics are the same
            # code as the plaintext run checks.
            listed, _ = describe(admin, SERVICE)
            toks = {by_addr[a].name: t for a, (w, t, st, ss) in listed.items() if w > 0}
            counts, tokens = measure(client, 300, set(toks))
            for n, seen in sorted(tokens.items()):
                check(seen == {toks[n]}, "%s received lb-tokens %s, the server lists %s"
                      % (n, seen, toks[n]))
            log("TLS: %d calls over TLS reached %s with the tokens the server listed"
                % (sum(counts.values()), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
            log("PASS")
            return 0

        # Shares against the published weights, once slow start is over.
        for attempt in range(3):
            pub = wait_settled(admin, backends, SETTLE_LIMIT_S)
            log("weights settled (slow start over) %.1f s after the first call"
                % (time.monotonic() - t0))
            counts, tokens = measure(client, 3000, {by_addr[a].name for a in pub})
            again, _ = describe(admin, SERVICE)
            if {a: (w, t) for a, (w, t, _, _) in again.items() if w > 0} == pub:
                break
            log("weights moved during the measurement; measuring again")
        else:
            raise Fail("weights never held still for a measurement")
        total_w = sum(w for w, _ in pub.values())
        total_n = sum(counts.values())
        worst = 0.0
        for addr, (w, tok) in sorted(pub.items()):
            b = by_addr[addr]
            want, got = w / total_w, counts.get(b.name, 0) / total_n
            worst = max(worst, abs(got - want))
            log("share %s %-16s weight %4d: expected %5.1f%%, measured %5.1f%% (%d calls)"
                % (b.name, addr, w, 100 * want, 100 * got, counts.get(b.name, 0)))
            check(tokens.get(b.name) == {tok},
                  "%s received lb-tokens %s, the server lists %s" % (b.name, tokens.get(b.name), tok))
        check(worst <= SHARE_TOLERANCE, "a share is %.1f points off its weight" % (100 * worst))
        log("shares follow weights: worst difference %.2f points" % (100 * worst))

        # Change 1: drain b1; the client must stop sending it new calls.
        b1 = backends[0]
        t0 = time.monotonic()
        set_drain(admin, SERVICE, b1.address, True)
        last_b1 = None
        streak = 0
        deadline = time.monotonic() + 10
        while streak < 500 or time.monotonic() - t0 < 1.5:
            check(time.monotonic() < deadline, "drain: client still calls b1 after 10 s")
            name, tok = client.call()
            check(name is not None, "call failed during drain: %s" % tok)
            if name == "b1":
                last_b1, streak = time.monotonic(), 0
            else:
                streak += 1
        drain_s = (last_b1 - t0) if last_b1 else 0.0
        log("drain: last call to b1 %.0f ms after SetDrain" % (1000 * drain_s))
        check(drain_s < CHANGE_LIMIT_S, "drain took %.2f s to reach the client" % drain_s)

        # Change 2: a new backend registers; the client must start using it.
        t0 = time.monotonic()
        b4 = Backend("b4", "127.0.0.5", 0.4, reporter)
        backends.append(b4)
        first_b4 = None
        deadline = time.monotonic() + 10
        while first_b4 is None:
            check(time.monotonic() < deadline, "new backend: no call reached b4 in 10 s")
            name, tok = client.call()
            check(name is not None, "call failed after b4 registered: %s" % tok)
            check(name in ("b2", "b3", "b4"), "call reached %s after the drain" % name)
            if name == "b4":
                first_b4 = time.monotonic()
                check(b4.token is not None and tok == b4.token,
                      "b4 got lb-token %r, the server gave it %r" % (tok, b4.token))
        new_s = first_b4 - t0
        log("new backend: first call to b4 %.0f ms after it registered" % (1000 * new_s))
        check(new_s < CHANGE_LIMIT_S, "a new backend took %.2f s to get traffic" % new_s)

        # Change 3: nothing can serve -> drop entry -> the client fails calls
        # itself, at once.
        t0 = time.monotonic()
        for b in backends[1:]:
            set_drain(admin, SERVICE, b.address, True)
        deadline = time.monotonic() + 10
        while True:
            check(time.monotonic() < deadline, "no drop after draining everything")
            name, status = client.call()
            if name is None:
                break
        drop_s = time.monotonic() - t0
        log("all drained: calls dropped after %.0f ms (%s)" % (1000 * drop_s, status))
        check("drop" in status.lower(), "expected a grpclb drop, got %s" % status)
        for _ in range(20):
            name, status = client.call()
            check(name is None and "drop" in status.lower(), "call not dropped: %s" % status)

        # ClientStats arrive (every second): calls and drops.
        deadline = time.monotonic() + 6
        while True:
            _, totals = describe(admin, SERVICE)
            if totals["dropped"] >= 21 and totals["known_received"] > 0:
                break
            check(time.monotonic() < deadline, "client stats did not arrive: %s" % totals)
            time.sleep(0.2)
        log("client stats at the server: %s" % totals)
        check(totals["started"] >= totals["finished"] > 0, "odd totals %s" % totals)

        # Undrain: traffic returns.
        for b in backends:
            set_drain(admin, SERVICE, b.address, False)
        deadline = time.monotonic() + 5
        while True:
            name, _ = client.call()
            if name is not None:
                break
            check(time.monotonic() < deadline, "traffic did not return after undrain")
            time.sleep(0.02)
        m = wait_for_log(server_log, r"grpclb: %s:%d from .* serving %s"
                         % (re.escape(SERVICE), FALLBACK[1], re.escape(SERVICE)), server, 1)
        check(m is not None, "the server log does not show the client's initial_request")
        check(sum(b.hits for b in backends) > 0, "backends saw no calls")
        log("PASS")
        return 0
    finally:
        if client:
            client.channel.close()
        for b in backends:
            b.close()
        if admin:
            admin.close()
        rc = stop(server, "lookaside-server")
        if rc not in (None, 0):
            log("lookaside-server exit status %s" % rc)
        stop(dns, "dnsmasq")
        if rc not in (None, 0):
            with open(server_log, errors="replace") as f:
                sys.stderr.write(f.read()[-8000:])
            raise Fail("lookaside-server did not exit cleanly (status %s)" % rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="path to lookaside-server")
    ap.add_argument("--tls", metavar="GEN_CERTS", help="run over TLS with certificates from "
                    "this script (tests/security/gen_certs.sh)")
    args = ap.parse_args()
    if grpc is None:
        log("SKIP: python3-grpcio is not installed (scripts/deps.sh installs it)")
        return SKIP
    if not os.access(DNSMASQ, os.X_OK):
        log("SKIP: %s is missing (dnsmasq-base; scripts/deps.sh installs it)" % DNSMASQ)
        return SKIP
    try:
        free_port(socket.SOCK_STREAM, "127.0.0.2")
    except OSError:
        log("SKIP: cannot bind 127.0.0.2 (needs the whole 127.0.0.0/8 on lo)")
        return SKIP
    log("grpcio %s" % grpc.__version__)
    tmp = tempfile.mkdtemp(prefix="lookaside-grpclb-")
    try:
        if args.tls:
            global TLS, REPORT_MS
            TLS = {"dir": os.path.join(tmp, "certs")}
            REPORT_MS = 1000
            if subprocess.run(["sh", args.tls, TLS["dir"]]).returncode != 0:
                raise Fail("gen_certs.sh failed (openssl CLI missing? scripts/deps.sh)")
            log("TLS: mTLS balancer, TLS backends, certificates in %s" % TLS["dir"])
        return run(args.server, tmp)
    except Fail as e:
        log("FAIL: %s" % e)
        for name in ("server.log", "dnsmasq.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    sys.stderr.write("---- %s (tail)\n%s\n" % (name, f.read()[-4000:]))
        return 1
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
