"""Helpers shared by the tests/ops scripts: recorded checks, stopping a
process by its PID (SIGTERM, bounded wait, then SIGKILL), bounded polling,
and log searches."""
import re
import signal
import subprocess
import time

failures = []


def check(cond, what):
    """Records and prints one check; returns cond."""
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def stop(p, timeout=10):
    """SIGTERM, wait up to timeout seconds, then SIGKILL. The exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def wait_for(fn, timeout, what, interval=0.1):
    """Calls fn until it returns something true (exceptions count as not
    yet), at most timeout seconds. Returns that value or None."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception as e:   # not up yet
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    print(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
    return None


def log_match(log, pattern):
    with open(log, errors="replace") as f:
        return re.search(pattern, f.read())
