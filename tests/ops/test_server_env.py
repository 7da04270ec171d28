#!/usr/bin/python3
"""lookaside-server under a service manager, without one:

- sd_notify: NOTIFY_SOCKET names a unix datagram socket this test binds;
  the server must send READY=1 once it serves (its port answers) and
  STOPPING=1 after SIGTERM, in that order, then exit 0;
- LOOKASIDE_* variables: a server configured only through the environment
  serves where they say; a flag on the command line wins over its variable;
  a bad value is refused (exit 2) naming the flag.

Everything on 127.0.0.1, ephemeral ports, every wait bounded, the server
stopped by its PID. usage: test_server_env.py SERVER_BIN
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from opscheck import check, failures, stop

SERVER = sys.argv[1]


def start(env_extra, args, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKASIDE_")
           and k != "NOTIFY_SOCKET"}
    env.update(env_extra)
    return subprocess.Popen([SERVER] + args, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_log(path, pattern, proc, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(path, errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def dump(path):
    with open(path, errors="replace") as f:
        sys.stdout.write(f.read())


def test_notify(tmp):
    sock_path = os.path.join(tmp, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(15)
    log = os.path.join(tmp, "notify.log")
    with open(log, "w") as lf:
        p = start({"NOTIFY_SOCKET": sock_path},
                  ["--listen", "127.0.0.1:0", "--db", os.path.join(tmp, "n.db")], lf)
    try:
        msgs = []
        try:
            msgs.append(s.recv(4096).decode())
        except socket.timeout:
            pass
        check(msgs and "READY=1" in msgs[0].split("\n"), f"first notification READY=1: {msgs}")
        # READY means serving: the port is bound and accepting.
        m = wait_log(log, r"listening on 127\.0\.0\.1:(\d+)", p, 5)
        if check(m, "server logged its port before READY"):
            c = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5)
            c.close()
        check(p.poll() is None, "server still running after READY")
        p.send_signal(signal.SIGTERM)
        try:
            msgs.append(s.recv(4096).decode())
        except socket.timeout:
            pass
        check(len(msgs) == 2 and "STOPPING=1" in msgs[1].split("\n"),
              f"STOPPING=1 after SIGTERM: {msgs}")
        check(stop(p) == 0, "server exits 0 after SIGTERM")
    finally:
        stop(p)
        s.close()
        if failures:
            dump(log)


def test_env(tmp):
    # Configured by the environment alone.
    log = os.path.join(tmp, "env.log")
    db = os.path.join(tmp, "env.db")
    with open(log, "w") as lf:
        p = start({"LOOKASIDE_LISTEN": "127.0.0.1:0", "LOOKASIDE_DB": db,
                   "LOOKASIDE_LOG_LEVEL": "debug"}, [], lf)
    try:
        m = wait_log(log, r"listening on 127\.0\.0\.1:(\d+)", p)
        check(m, "server configured only by LOOKASIDE_* serves")
        check(os.path.exists(db), "LOOKASIDE_DB names the database it opened")
        check(stop(p) == 0, "env-configured server exits 0")
    finally:
        stop(p)
    # The flag wins: the variable's database is in a directory that does
    # not exist (the server could not open it), the flag's is fine.
    log2 = os.path.join(tmp, "win.log")
    db2 = os.path.join(tmp, "flag.db")
    with open(log2, "w") as lf:
        p = start({"LOOKASIDE_LISTEN": "127.0.0.1:0",
                   "LOOKASIDE_DB": os.path.join(tmp, "missing", "dir", "x.db")},
                  ["--db", db2], lf)
    try:
        check(wait_log(log2, r"listening on 127\.0\.0\.1:\d+", p), "--db wins over LOOKASIDE_DB")
        check(os.path.exists(db2), "the flag's database was opened")
        check(stop(p) == 0, "server exits 0")
    finally:
        stop(p)
    # A bad value is refused like the flag's.
    log3 = os.path.join(tmp, "bad.log")
    with open(log3, "w") as lf:
        p = start({"LOOKASIDE_DNS_REFRESH_MS": "soon", "LOOKASIDE_LISTEN": "127.0.0.1:0",
                   "LOOKASIDE_DB": os.path.join(tmp, "bad.db")}, [], lf)
    try:
        rc = p.wait(15)
    except subprocess.TimeoutExpired:
        rc = None
    stop(p)
    with open(log3) as f:
        out = f.read()
    check(rc == 2 and "--dns-refresh-ms" in out,
          f"LOOKASIDE_DNS_REFRESH_MS=soon refused with exit 2 naming the flag (rc {rc}: {out!r})")


def main():
    with tempfile.TemporaryDirectory(prefix="la_ops_") as tmp:
        test_notify(tmp)
        test_env(tmp)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("server env/notify: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
