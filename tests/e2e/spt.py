"""Helpers for the black-box tests: paths, free ports, private Redis
servers, and starting the built binaries. Every process started here is
stopped by pid when the test ends."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build")
CANARY = "CANARY"

_procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def start(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def stop_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def run(main):
    """Run a test's main; stop every process it started, also when a check
    raised, so no Redis or upstream is left behind."""
    try:
        main()
    finally:
        stop_all()


def redis_server(port=None):
    """A private redis-server; returns (port, Popen)."""
    port = port or free_port()
    d = tempfile.mkdtemp(prefix="sp-e2e-redis.")
    p = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", d, "--loglevel", "warning"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port):
        raise RuntimeError("redis-server did not start")
    return port, p


def tmpdir():
    return tempfile.mkdtemp(prefix="sp-e2e.")


class Results:
    """Counts checks; prints 'N passed, N failed' and exits with it."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)
        return cond

    def finish(self):
        stop_all()
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


signal.signal(signal.SIGTERM, lambda *a: (stop_all(), sys.exit(1)))
