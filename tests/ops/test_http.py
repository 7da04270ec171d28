#!/usr/bin/python3
"""The HTTP endpoint against the real things, all on 127.0.0.1:

  access      the same authorization rules as the gRPC port: /healthz and
              /readyz public, everything else needs watch:* (or admin);
              401 without a credential, 403 with one that lacks it; only GET.
  prometheus  `promtool check metrics` accepts /metrics; Debian's prometheus
              scrapes the endpoint every second and its HTTP API returns the
              series with the values the server holds (a weight override of
              777 set through lookasidectl, one registration, one backend).
  readyz      readiness across a restart: lists restored from the database
              but not yet confirmed by their backends are ready for /readyz,
              not for /readyz?confirmed=1 (and say RESTORED everywhere).
  chromium    headless Debian chromium (DevTools protocol over a pipe) opens
              the status page; a backend registered shows up SERVING, then
              after `lookasidectl drain` turns DRAINING in the same page
              (same load id, one navigation: no reload).

usage: test_http.py MODE SERVER BACKEND CTL
Exit 0 passed, 1 failed, 77 skipped (a package missing: scripts/deps.sh
installs prometheus and chromium). Every process started here is stopped by
its PID; every wait is bounded.
"""
import base64
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from opscheck import check, failures, log_match, stop, wait_for

MODE, SERVER, BACKEND, CTL = sys.argv[1:5]
procs = []


def clean_env():
    # Sanitizer settings are for our binaries, not for chromium/prometheus.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("LOOKASIDE_", "ASAN_", "LSAN_", "UBSAN_"))}


def spawn(argv, log, env=None):
    f = open(log, "w")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env or clean_env(),
                         stdin=subprocess.DEVNULL)
    f.close()
    procs.append((p, log))
    return p


def start_server(tmp, extra=(), log_name="server.log"):
    log = os.path.join(tmp, log_name)
    p = spawn([SERVER, "--listen", "127.0.0.1:0", "--db", os.path.join(tmp, "la.db"),
               "--http-listen", "127.0.0.1:0", "--report-interval-ms", "200"] + list(extra),
              log, env={**clean_env(), **{k: v for k, v in os.environ.items()
                                           if k.startswith(("ASAN_", "LSAN_", "UBSAN_"))}})
    m = wait_for(lambda: log_match(log, r"http listening on 127\.0\.0\.1:(\d+)"), 15,
                 "the server's HTTP port")
    g = log_match(log, r"main: listening on [^ ]*:(\d+)")
    if not m or not g:
        with open(log) as f:
            print(f.read())
        raise SystemExit(1)
    return p, int(g.group(1)), int(m.group(1))


def http_get(port, path, token=None, method="GET", timeout=5, tls=None, basic=False):
    """tls: an ssl.SSLContext for https (None: plain http); basic: send the
    token as a browser would, as a Basic credential's password."""
    req = urllib.request.Request(f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}",
                                 method=method)
    if token and basic:
        cred = base64.b64encode(("operator:" + token).encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
    elif token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def start_backend(tmp, grpc_port, name="b1"):
    return spawn([BACKEND, "--listen", "127.0.0.1:0", "--lb", f"127.0.0.1:{grpc_port}",
                  "--service", "web", "--name", name], os.path.join(tmp, name + ".log"),
                 env={**clean_env(), **{k: v for k, v in os.environ.items()
                                          if k.startswith(("ASAN_", "LSAN_", "UBSAN_"))}})


def backend_address(http_port):
    def get():
        st, body, _ = http_get(http_port, "/api/status")
        d = json.loads(body)
        for s in d["services"]:
            if s["name"] == "web" and s["backends"]:
                return s["backends"][0]["address"]
        return None
    return wait_for(get, 20, "the backend in /api/status")


def server_with_backend(tmp):
    """A server with the HTTP endpoint and one demo backend of "web":
    (grpc port, http port, the backend's address or None)."""
    _, gp, hp = start_server(tmp)
    start_backend(tmp, gp)
    addr = backend_address(hp)
    check(addr, "backend registered")
    return gp, hp, addr


def ctl(grpc_port, *args):
    r = subprocess.run([CTL, "--lb", f"127.0.0.1:{grpc_port}"] + list(args), capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, f"lookasidectl {' '.join(args)} (rc {r.returncode}: {r.stderr.strip()})")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- access
def test_access(tmp):
    ops, web = "ops-secret-1", "web-secret-2"
    pol = os.path.join(tmp, "policy")
    with open(pol, "w") as f:
        f.write(f"token ops sha256:{hashlib.sha256(ops.encode()).hexdigest()} watch:*\n")
        f.write(f"token web sha256:{hashlib.sha256(web.encode()).hexdigest()} watch:web\n")
        f.write("anonymous report:*\n")
    p, _, hp = start_server(tmp, ["--insecure", "--policy-file", pol])
    for path in ("/healthz", "/readyz"):
        st, body, _ = http_get(hp, path)
        check(st == 200, f"{path} is public ({st} {body.strip()})")
    for path in ("/metrics", "/api/status", "/"):
        st, _, hdr = http_get(hp, path)
        check(st == 401 and "Bearer" in hdr.get("WWW-Authenticate", ""),
              f"{path} without a token: 401 with WWW-Authenticate ({st})")
        st, _, _ = http_get(hp, path, token="wrong")
        check(st == 401, f"{path} with an unknown token: 401 ({st})")
        st, _, _ = http_get(hp, path, token=web)
        check(st == 403, f"{path} with watch:web only: 403 ({st})")
        st, body, hdr = http_get(hp, path, token=ops)
        check(st == 200 and body, f"{path} with watch:*: 200 ({st})")
    st, _, hdr = http_get(hp, "/", token=ops, basic=True)
    check(st == 200, f"a browser's Basic credential with the token as password: 200 ({st})")
    st, _, hdr = http_get(hp, "/", token=web, basic=True)
    check(st == 403, f"Basic credential with watch:web only: 403 ({st})")
    st, _, hdr = http_get(hp, "/")
    check("Basic" in hdr.get("WWW-Authenticate", ""), "401 invites browsers to prompt (Basic)")
    st, body, _ = http_get(hp, "/metrics", token=ops)
    check('lookaside_build_info{version="' in body, "lookaside_build_info")
    st, _, hdr = http_get(hp, "/metrics", token=ops, method="POST")
    check(st == 405 and "GET" in hdr.get("Allow", ""), f"POST refused with 405 ({st})")
    st, _, _ = http_get(hp, "/nope", token=ops)
    check(st == 404, f"unknown path: 404 ({st})")
    st, body, hdr = http_get(hp, "/", token=ops)
    check("default-src 'none'" in hdr.get("Content-Security-Policy", ""),
          "the page is served with a strict Content-Security-Policy")
    check(not re.search(r"<(script|link|img)[^>]+(src|href)=", body),
          "the page loads no external assets")
    st, body, _ = http_get(hp, "/metrics", token=ops)
    m = re.search(r"^lookaside_http_refused_total (\d+)$", body, re.M)
    check(m and int(m.group(1)) >= 9, "refusals are counted in lookaside_http_refused_total")
    check(stop(p) == 0, "server exits 0")
    for pat in (r"refused: needs watch:\* or admin", r"refused: no credential",
                r"POST /metrics refused: only GET and HEAD", r"GET /nope: not found"):
        check(log_match(os.path.join(tmp, "server.log"), pat), f"logged: {pat}")
    # With TLS the endpoint speaks HTTPS with the server's certificate, and
    # the same permissions apply.
    openssl = shutil.which("openssl")
    if not openssl:
        print("note: openssl missing; HTTPS part skipped (scripts/deps.sh installs it)")
        return 0
    crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", crt, "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True,
                       timeout=60)
    if not check(r.returncode == 0, "test certificate made"):
        return 1
    os.remove(os.path.join(tmp, "server.log"))
    p, _, hp = start_server(tmp, ["--tls-cert", crt, "--tls-key", key, "--policy-file", pol])
    ctx = ssl.create_default_context(cafile=crt)
    st, body, _ = http_get(hp, "/metrics", token=ops, tls=ctx)
    check(st == 200 and "lookaside_up 1" in body, f"HTTPS /metrics with watch:*: 200 ({st})")
    st, _, _ = http_get(hp, "/metrics", tls=ctx)
    check(st == 401, f"HTTPS /metrics without a token: 401 ({st})")
    st, _, _ = http_get(hp, "/healthz", tls=ctx)
    check(st == 200, f"HTTPS /healthz public ({st})")
    try:
        http_get(hp, "/healthz")
        plain = True
    except Exception:
        plain = False
    check(not plain, "plain HTTP is not served on the TLS port")
    check(stop(p) == 0, "TLS server exits 0")
    return test_mtls(tmp, openssl, crt, key, pol)


def make_client_cert(tmp, openssl, name, san, ca=None):
    """A client certificate with a URI SAN, signed by ca (a (pem, key) pair)
    or self-signed. Returns (pem, key)."""
    pem, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    ext = os.path.join(tmp, name + ".ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=clientAuth\n")
    if ca is None:
        args = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", pem, "-days", "1", "-subj", f"/CN={name}", "-addext", "subjectAltName=" +
                san.split("=", 1)[-1]]
        return (pem, key) if subprocess.run(args, capture_output=True).returncode == 0 else None
    csr = os.path.join(tmp, name + ".csr")
    ok = subprocess.run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                         csr, "-subj", f"/CN={name}"], capture_output=True).returncode == 0
    ok = ok and subprocess.run([openssl, "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                                "-CAcreateserial", "-out", pem, "-days", "1", "-extfile", ext],
                               capture_output=True).returncode == 0
    return (pem, key) if ok else None


def test_mtls(tmp, openssl, crt, key, pol):
    """With --tls-client-ca a verified client certificate is an identity on
    the HTTP port too (the policy's "id" lines)."""
    ca = make_client_cert(tmp, openssl, "ca", "URI:spiffe://test/ca")
    ops = ca and make_client_cert(tmp, openssl, "ops", "URI:spiffe://test/ops", ca)
    other = ca and make_client_cert(tmp, openssl, "other", "URI:spiffe://test/other", ca)
    rogue = make_client_cert(tmp, openssl, "rogue", "URI:spiffe://test/ops")  # not from the CA
    if not check(ca and ops and other and rogue, "client certificates made"):
        return 1
    with open(pol, "a") as f:
        f.write("id spiffe://test/ops watch:*\nid spiffe://test/other watch:web\n")
    os.remove(os.path.join(tmp, "server.log"))
    p, _, hp = start_server(tmp, ["--tls-cert", crt, "--tls-key", key, "--policy-file", pol,
                                  "--tls-client-ca", ca[0]])

    def ctx(cert):
        c = ssl.create_default_context(cafile=crt)
        if cert:
            c.load_cert_chain(cert[0], cert[1])
        return c
    st, body, _ = http_get(hp, "/metrics", tls=ctx(ops))
    check(st == 200 and "lookaside_up 1" in body,
          f"mTLS: a CA-signed certificate naming spiffe://test/ops (watch:*): 200 ({st})")
    st, _, _ = http_get(hp, "/metrics", tls=ctx(other))
    check(st == 403, f"mTLS: spiffe://test/other (watch:web only): 403 ({st})")
    st, _, _ = http_get(hp, "/metrics", tls=ctx(rogue))
    check(st == 401, f"mTLS: the same name, not signed by the CA: 401 ({st})")
    st, _, _ = http_get(hp, "/metrics", tls=ctx(None))
    check(st == 401, f"mTLS: no certificate, no token: 401 ({st})")
    st, _, _ = http_get(hp, "/healthz", tls=ctx(None))
    check(st == 200, f"mTLS: /healthz without a certificate (probes): 200 ({st})")
    check(stop(p) == 0, "mTLS server exits 0")


# ---------------------------------------------------------------- readyz
def test_readyz(tmp):
    p, gp, hp = start_server(tmp)
    st, body, _ = http_get(hp, "/readyz?confirmed=1")
    check(st == 200, f"fresh server: /readyz?confirmed=1 200 ({st} {body.strip()})")
    b = start_backend(tmp, gp)
    addr = backend_address(hp)
    if not check(addr, "backend registered"):
        return 1
    # Stop the server first: a shutdown keeps the stored rows (a restart
    # restores them); then the backend, which cannot reach the next server.
    check(stop(p) == 0, "server exits 0")
    b.kill()
    b.wait()
    p2, _, hp2 = start_server(tmp, log_name="server2.log")
    st, body, _ = http_get(hp2, "/readyz")
    check(st == 200, f"restored lists are served: /readyz 200 ({st} {body.strip()})")
    st, body, _ = http_get(hp2, "/readyz?confirmed=1")
    check(st == 503 and "restored" in body,
          f"restored, unconfirmed: /readyz?confirmed=1 503 ({st} {body.strip()})")
    st, body, _ = http_get(hp2, "/api/status")
    svc = [s for s in json.loads(body)["services"] if s["name"] == "web"]
    check(svc and svc[0]["list_state"] == "RESTORED"
          and [x["state"] for x in svc[0]["backends"]] == ["RESTORED"],
          f"/api/status says RESTORED ({svc})")
    st, body, _ = http_get(hp2, "/metrics")
    check('lookaside_list_state{service="web",state="RESTORED"} 1' in body,
          "lookaside_list_state says RESTORED")
    check(stop(p2) == 0, "restarted server exits 0")
    return 0


# ------------------------------------------------------------ prometheus
def prom_query(pport, q):
    u = f"http://127.0.0.1:{pport}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(u, timeout=5) as r:
        d = json.loads(r.read().decode())
    if d.get("status") != "success":
        return None
    return d["data"]["result"]


def prom_value(pport, q, want):
    """The query's single value once it equals want (None if it never did)."""
    def get():
        res = prom_query(pport, q)
        if res and len(res) == 1 and float(res[0]["value"][1]) == want:
            return res
        return None
    return wait_for(get, 30, f"{q} == {want} in prometheus", interval=0.5)


def test_prometheus(tmp):
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not promtool:
        print("SKIP: prometheus/promtool not installed (scripts/deps.sh installs prometheus)")
        return 77
    gp, hp, addr = server_with_backend(tmp)
    if not addr:
        return 1
    ctl(gp, "weight", "web", addr, "777")
    st, text, hdr = http_get(hp, "/metrics")
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          "/metrics is the Prometheus text format 0.0.4")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, f"promtool check metrics passes ({(r.stdout + r.stderr).strip()})")
    for fam in ("lookaside_reports_received_total", "lookaside_reports_rejected_total",
                "lookaside_registrations_total", "lookaside_evictions_total",
                "lookaside_drains_total", "lookaside_pushes_total",
                "lookaside_push_latency_seconds_bucket", "lookaside_watchers",
                "lookaside_grpclb_streams", "lookaside_grpclb_client_calls_started_total",
                "lookaside_list_version", "lookaside_storage_flush_latency_seconds_bucket",
                "lookaside_storage_errors_total", "lookaside_dns_refreshes_total",
                "lookaside_dns_failures_total", "process_cpu_seconds_total",
                "process_resident_memory_bytes", "process_open_fds", "lookaside_backend_weight",
                "lookaside_backend_cpu_utilization", "lookaside_metrics_backends_omitted"):
        check(re.search(r"^" + fam + r"[{ ]", text, re.M), f"/metrics has {fam}")
    # Prometheus scraping the endpoint every second.
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: lookaside\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{hp}']\n")
    pport = None
    for _attempt in range(3):   # a free port may be taken between probe and bind
        pport = free_port()
        pp = spawn([prom, "--config.file", cfg, "--storage.tsdb.path", os.path.join(tmp, "tsdb"),
                    f"--web.listen-address=127.0.0.1:{pport}", "--log.level=warn"],
                   os.path.join(tmp, "prometheus.log"))
        if wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{pport}/-/ready",
                                                   timeout=2).status == 200, 30,
                    "prometheus ready"):
            break
        stop(pp)
    else:
        return 1
    check(prom_value(pport, 'up{job="lookaside"}', 1), "prometheus scrapes the endpoint (up == 1)")
    sel = f'{{service="web",address="{addr}"}}'
    check(prom_value(pport, "lookaside_backend_weight_override" + sel, 777),
          "lookaside_backend_weight_override == 777 (set with lookasidectl) in prometheus")
    check(prom_value(pport, "lookaside_backend_weight" + sel, 777),
          "lookaside_backend_weight == 777 (the override is published) in prometheus")
    check(prom_value(pport, "lookaside_registrations_total", 1),
          "lookaside_registrations_total == 1 in prometheus")
    check(prom_value(pport, 'lookaside_service_backends{service="web"}', 1),
          "lookaside_service_backends{service=web} == 1 in prometheus")
    # A value that moves: reports received increase between scrapes.
    res = wait_for(lambda: (lambda r: r if r and float(r[0]["value"][1]) > 0 else None)(
        prom_query(pport, "increase(lookaside_reports_received_total[5s])")), 30,
        "reports received increasing")
    check(res, "lookaside_reports_received_total increases in prometheus")
    ctl(gp, "drain", "web", addr)
    check(prom_value(pport, "lookaside_drains_total", 1), "lookaside_drains_total == 1")
    check(prom_value(pport, f'lookaside_backend_state{{service="web",address="{addr}",'
                            f'state="DRAINING"}}', 1), "lookaside_backend_state DRAINING")
    return 0


# -------------------------------------------------------------- chromium
class Devtools:
    """Chrome DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4
    out; NUL-terminated JSON messages)."""

    def __init__(self, chrome, tmp):
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Keep our ends away from 3 and 4 so the dup2 below cannot clobber.
        self.cmd_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        self.res_w = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(res_w)
        self.w, self.r = cmd_w, res_r
        os.set_inheritable(self.w, False)
        os.set_inheritable(self.r, False)
        child_in, child_out = self.cmd_r, self.res_w

        def fds():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)
        args = [chrome, "--headless", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--disable-background-networking",
                "--user-data-dir=" + os.path.join(tmp, "chrome-profile"), "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")   # chromium refuses root otherwise
        log = open(os.path.join(tmp, "chromium.log"), "w")
        self.p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=fds, close_fds=False,
                                  env=clean_env())
        log.close()
        procs.append((self.p, os.path.join(tmp, "chromium.log")))
        os.close(self.cmd_r)
        os.close(self.res_w)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                d = json.loads(raw)
                if d.get("id") == self.next_id:
                    if "error" in d:
                        raise RuntimeError(f"{method}: {d['error']}")
                    return d.get("result", {})
            ready, _, _ = select.select([self.r], [], [], max(0.0, end - time.monotonic()))
            if ready:
                chunk = os.read(self.r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
        raise TimeoutError(method)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        stop(self.p)
        os.close(self.w)
        os.close(self.r)


def test_chromium(tmp):
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chrome:
        print("SKIP: chromium not installed (scripts/deps.sh installs chromium)")
        return 77
    gp, hp, addr = server_with_backend(tmp)
    if not addr:
        return 1
    dt = Devtools(chrome, tmp)
    try:
        target = dt.call("Target.createTarget", {"url": f"http://127.0.0.1:{hp}/"})["targetId"]
        sess = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        probe = ("JSON.stringify((function(){var L=window.__lookaside||{};"
                 "var r=document.querySelector('tr.backend[data-address=\"" + addr + "\"]');"
                 "return {state:r&&r.getAttribute('data-state'),loadId:L.loadId,updates:L.updates,"
                 "nav:performance.getEntriesByType('navigation').length,"
                 "spark:!!(r&&r.querySelector('svg.spark')),"
                 "why:r?r.querySelector('td.why').textContent:null,"
                 "service:!!document.querySelector('section[data-service=\"web\"]'),"
                 "seen:(L.seen||{})['web\\n" + addr + "']||[]};})())")

        def state():
            v = dt.call("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                        session=sess)
            return json.loads(v["result"]["value"])
        first = wait_for(lambda: (lambda s: s if s["state"] == "SERVING" else None)(state()), 30,
                         "the backend SERVING on the page")
        if not check(first, f"the page shows {addr} SERVING"):
            return 1
        check(first["service"] and first["spark"] and first["why"],
              f"service section, sparkline and weight explanation shown ({first['why']!r})")
        ctl(gp, "drain", "web", addr)
        after = wait_for(lambda: (lambda s: s if s["state"] == "DRAINING" else None)(state()), 30,
                         "the backend DRAINING on the page")
        if check(after, f"the page turns {addr} DRAINING without a reload"):
            check(after["loadId"] == first["loadId"] and after["nav"] == 1,
                  "same document (load id kept, one navigation)")
            check(after["updates"] > first["updates"], "the page kept polling")
            check(after["seen"] == ["SERVING", "DRAINING"],
                  f"the page saw SERVING then DRAINING ({after['seen']})")
        # A phone: 390 px wide. Nothing may overflow sideways (backends
        # become cards; the explanation wraps).
        dt.call("Emulation.setDeviceMetricsOverride",
                {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True},
                session=sess)
        phone = ("JSON.stringify({sw: document.documentElement.scrollWidth, w: window.innerWidth,"
                 "thead: getComputedStyle(document.querySelector('thead')).display})")

        def fits():
            v = json.loads(dt.call("Runtime.evaluate", {"expression": phone,
                                                        "returnByValue": True},
                                   session=sess)["result"]["value"])
            return v if v["w"] == 390 and v["sw"] <= v["w"] and v["thead"] == "none" else None
        check(wait_for(fits, 10, "the phone layout"),
              "on a 390 px phone screen the page fits the width (one card per backend)")
    finally:
        dt.close()
    return 0


def main():
    tmp = tempfile.mkdtemp(prefix="la_http_")
    rc = 1
    try:
        rc = {"access": test_access, "readyz": test_readyz, "prometheus": test_prometheus,
              "chromium": test_chromium}[MODE](tmp) or 0
    finally:
        for p, log in reversed(procs):
            code = stop(p)
            if failures and code is not None:
                print(f"--- {log} (exit {code})")
                with open(log, errors="replace") as f:
                    print(f.read()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if rc == 77:
        return 77
    if failures or rc:
        print(f"{len(failures)} check(s) failed")
        return 1
    print(f"http {MODE}: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
