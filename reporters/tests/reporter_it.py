#!/usr/bin/python3
"""reporter_it.py --server BIN --ctl BIN --service NAME -- BACKEND_CMD...

Runs a reporter example backend (Go or Python) against the real
lookaside-server on 127.0.0.1 and checks, through the Admin API
(lookasidectl --json show), that:
  1. the backend registers with the address it serves on;
  2. its reports carry the load the test puts on it: rps > 0, eps > 0 and
     below rps (INTERNAL answers), the calls held open counted in flight,
     CPU > 0;
  3. when the balancer restarts, it registers again;
  4. on SIGTERM it drains (the balancer logs the drain and the backend
     prints drained=True), exits 0, and leaves the list.
Every process is started here and stopped by its PID; every wait is bounded.
BACKEND_CMD gets --lb HOST:PORT --service NAME --listen 127.0.0.1:0 appended.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import grpc

CHECK = "/grpc.health.v1.Health/Check"
HELD = 3


def fail(msg, logs=()):
    print("FAIL: " + msg, flush=True)
    for path in logs:
        print("---- %s" % path)
        try:
            with open(path, errors="replace") as f:
                print("".join(f.readlines()[-40:]))
        except OSError:
            pass
    sys.exit(1)


def poll(what, timeout, probe, logs):
    """Calls probe() every 50 ms until it returns something true, which is
    returned; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout * 20) + 1):
        got = probe()
        if got:
            return got
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return fail("waited %d s in vain for %s" % (timeout, what), logs)


def wait_line(path, pattern, proc, timeout, logs):
    """The first match of pattern in the file proc writes its output to."""
    def probe():
        with open(path, errors="replace") as f:
            m = re.search(pattern, f.read())
        if m is None and proc.poll() is not None:
            fail("%s exited (%d) before printing %r" % (path, proc.returncode, pattern), logs)
        return m
    return poll("%r in %s" % (pattern, path), timeout, probe, logs)


def stop(proc, name, logs, timeout=15):
    """SIGTERM by PID, bounded wait; the exit status must be 0."""
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail("%s did not exit within %d s of SIGTERM" % (name, timeout), logs)
    if rc != 0:
        fail("%s exited with status %d after SIGTERM" % (name, rc), logs)


def health_request(what):
    b = what.encode()
    return b"\x0a" + bytes([len(b)]) + b if b else b""


def show(ctl, lb, service):
    """The service's backends from the Admin API, {} when it has none."""
    out = subprocess.run([ctl, "--lb", lb, "--json", "--timeout-ms", "3000", "show", service],
                         capture_output=True, text=True, timeout=10)
    if out.returncode == 4:  # NOT_FOUND: the service is gone with its last backend
        return {}
    if out.returncode != 0:
        raise RuntimeError("lookasidectl show: %d %s %s" % (out.returncode, out.stdout, out.stderr))
    return {b["address"]: b for b in json.loads(out.stdout)["backends"]}


def run(args, tmp):
    procs = []
    backend_log = os.path.join(tmp, "backend.log")
    logs = [os.path.join(tmp, "server.log"), backend_log]

    def start_server(listen, log):
        """lookaside-server on listen (its database in tmp); returns it and its HOST:PORT."""
        with open(log, "w") as out:
            p = subprocess.Popen([args.server, "--listen", listen, "--db", os.path.join(tmp, "lb.db")],
                                 stdout=out, stderr=subprocess.STDOUT)
        procs.append(p)
        port = wait_line(log, r"listening on 127\.0\.0\.1:(\d+)", p, 20, logs).group(1)
        return p, "127.0.0.1:" + port

    try:
        server, lb = start_server("127.0.0.1:0", logs[0])

        with open(backend_log, "w") as out:
            backend = subprocess.Popen(args.backend + ["--lb", lb, "--service", args.service,
                                                       "--listen", "127.0.0.1:0"],
                                       stdout=out, stderr=subprocess.STDOUT)
        procs.append(backend)
        addr = wait_line(backend_log, r"serving on (127\.0\.0\.1:\d+)", backend, 60, logs).group(1)
        token = wait_line(backend_log, r"registered token=(\S+)", backend, 30, logs).group(1)
        print("backend %s registered, token %s" % (addr, token), flush=True)

        # 1. registered under the address it serves on, with its token
        b = show(args.ctl, lb, args.service).get(addr)
        if b is None or b["token"] != token or b["source"] != "REPORTED":
            fail("DescribeService does not list %s (token %s) as reported: %s" % (addr, token, b), logs)

        # 2. load: HELD calls held open, a stream of OK and INTERNAL calls
        with grpc.insecure_channel(addr) as ch:
            check = ch.unary_unary(CHECK)
            held = [check.future(health_request("hold"), timeout=60) for _ in range(HELD)]
            seen = {"rps": 0.0, "eps": 0.0, "in_flight": 0, "cpu": 0.0, "eps_below_rps": False}
            deadline = time.monotonic() + 30
            rounds = 0
            while time.monotonic() < deadline and rounds < 2000:
                rounds += 1
                for i in range(20):
                    try:
                        check(health_request("fail" if i % 10 == 0 else ""), timeout=10)
                    except grpc.RpcError as e:
                        if e.code() != grpc.StatusCode.INTERNAL:
                            fail("Check failed with %s" % e.code(), logs)
                if rounds % 5:
                    continue
                b = show(args.ctl, lb, args.service).get(addr)
                if b is None:
                    fail("%s left the list while serving" % addr, logs)
                load = b.get("load") or {}
                seen["rps"] = max(seen["rps"], load.get("rps_fractional", 0))
                seen["eps"] = max(seen["eps"], load.get("eps", 0))
                seen["in_flight"] = max(seen["in_flight"], load.get("in_flight", 0))
                seen["cpu"] = max(seen["cpu"], load.get("cpu_utilization", 0))
                if 0 < load.get("eps", 0) < load.get("rps_fractional", 0):
                    seen["eps_below_rps"] = True
                if (seen["eps_below_rps"] and seen["in_flight"] >= HELD and seen["cpu"] > 0
                        and b["state"] == "SERVING"):
                    break
            print("reported load seen: %s (state %s, weight %s)" % (seen, b["state"], b["weight"]),
                  flush=True)
            if not seen["eps_below_rps"]:
                fail("no report with 0 < eps < rps: %s" % seen, logs)
            if seen["in_flight"] < HELD:
                fail("in_flight never reached the %d held calls: %s" % (HELD, seen), logs)
            if seen["cpu"] <= 0:
                fail("cpu_utilization never above 0: %s" % seen, logs)
            check(health_request("release"), timeout=10)
            for f in held:
                f.result(timeout=20)

        # 3. the balancer restarts (same port, same database): the backend is
        # restored from the database, then confirmed by the reporter's new stream
        stop(server, "lookaside-server", logs)
        procs.remove(server)
        logs.insert(0, os.path.join(tmp, "server2.log"))
        server, _ = start_server(lb, logs[0])
        poll("%s to register again after the balancer's restart" % addr, 30,
             lambda: (show(args.ctl, lb, args.service).get(addr) or {}).get("state") == "SERVING",
             logs)
        print("re-registered after the balancer restarted", flush=True)

        # 4. graceful stop: drain acknowledged, exit 0, gone from the list
        stop(backend, "backend", logs)
        procs.remove(backend)
        with open(backend_log) as f:
            text = f.read()
        if not re.search(r"stopped drained=(true|True)", text):
            fail("the backend did not report an acknowledged drain", logs)
        with open(logs[0]) as f:
            if not re.search(re.escape(addr) + r": draining", f.read()):
                fail("the balancer never saw %s draining" % addr, logs)
        poll("%s to leave the list" % addr, 5,
             lambda: addr not in show(args.ctl, lb, args.service), logs)
        stop(server, "lookaside-server", logs)
        procs.remove(server)
        print("ok: registered, load reported, re-registered, drained and removed", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("backend", nargs="+")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lookaside-reporter-it.") as tmp:
        run(args, tmp)


if __name__ == "__main__":
    main()
