#!/usr/bin/python3
"""upstream_server.py - a real HTTP/1.1 upstream for secretproxy's tests.

Python 3 standard library only (plus the `openssl` command line tool for the
throw-away certificates). Starts a plain HTTP and an HTTPS listener on free
loopback ports, and prints one JSON line on stdout when both are ready:

    {"http_port": N, "https_port": M, "ca_file": "/tmp/.../ca.pem",
     "pid": P, "dir": "/tmp/..."}

The HTTPS certificate is issued for 127.0.0.1, ::1 and localhost by a CA
generated at start in a temporary directory (removed at exit).

Endpoints (any method; HEAD answers the head only):
  /echo, /echo/*   JSON: method, target (path+query exactly as received),
                   headers (every header line as received, in order),
                   body_base64, chunked (request body was chunked),
                   client_port, conn_id, conn_seq (requests so far on this
                   connection), tls. Also appended to --record as JSONL.
  /echo-body       the request body verbatim (Content-Type copied)
  /status/N        status N with a short body (none for 1xx/204/304)
  /slow?ms=N       waits N ms before the head
  /drip?chunks=N&ms=M&size=S   chunked body: N chunks of S bytes, M ms apart
  /close-mid       head with Content-Length: 1000, 10 bytes, then close
  /reset           reads the request, then closes with RST
  /big?bytes=N     N bytes of the pattern bytes(i % 251), Content-Length
  /redirect?to=URL 302 to URL
  /gzip            a gzip-encoded body (Content-Encoding: gzip)
  /headers?n=N&size=S   N headers X-Hi with S-byte values, empty body
  /connections     JSON: accepted (total connections), by_port (requests per
                   client port), open (connections open now)
  anything else    404

Keep-alive (HTTP/1.1) works on both listeners; each connection is counted by
its client port so tests can prove pooling. Stop it with SIGTERM or by
closing its stdin
when started with --exit-on-stdin-eof.
"""

import argparse
import base64
import gzip
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 256 * 1024
MAX_BODY = 256 * 1024 * 1024


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.by_port = {}
        self.record = None

    def new_conn(self):
        with self.lock:
            self.accepted += 1
            self.open += 1
            return self.accepted

    def closed(self):
        with self.lock:
            self.open -= 1

    def request(self, port):
        with self.lock:
            self.by_port[port] = self.by_port.get(port, 0) + 1

    def snapshot(self):
        with self.lock:
            return {"accepted": self.accepted, "open": self.open,
                    "by_port": {str(k): v for k, v in self.by_port.items()}}

    def write_record(self, obj):
        if not self.record:
            return
        with self.lock:
            with open(self.record, "a", encoding="utf-8") as f:
                f.write(json.dumps(obj) + "\n")


STATS = Stats()


class Closed(Exception):
    pass


class Conn:
    """One client connection: buffered reads of a raw HTTP/1.1 stream."""

    def __init__(self, sock, tls, conn_id):
        self.sock = sock
        self.tls = tls
        self.conn_id = conn_id
        self.buf = b""
        self.seq = 0
        try:
            self.port = sock.getpeername()[1]
        except OSError:
            self.port = 0

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def read_line(self, limit):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > limit:
                raise Closed()
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, data):
        self.sock.sendall(data)


def strip_crlf(line):
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def read_request(c):
    """Returns (method, target, version, headers[(name, value)], body,
    chunked) or raises Closed at a clean end of the connection."""
    line = c.read_line(MAX_HEAD)
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests
        line = c.read_line(MAX_HEAD)
    parts = strip_crlf(line).split(b" ")
    if len(parts) != 3:
        raise Closed()
    method, target, version = (p.decode("latin-1") for p in parts)
    headers = []
    size = 0
    while True:
        line = c.read_line(MAX_HEAD)
        size += len(line)
        if size > MAX_HEAD:
            raise Closed()
        raw = strip_crlf(line)
        if raw == b"":
            break
        name, _, value = raw.partition(b":")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    lower = {}
    for k, v in headers:
        lower.setdefault(k.lower(), v)
    if lower.get("expect", "").lower() == "100-continue":
        c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = b""
    chunked = "chunked" in lower.get("transfer-encoding", "").lower()
    if chunked:
        parts = []
        total = 0
        while True:
            size_line = strip_crlf(c.read_line(1024))
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                while strip_crlf(c.read_line(MAX_HEAD)) != b"":  # trailers
                    pass
                break
            total += n
            if total > MAX_BODY:
                raise Closed()
            parts.append(c.read_exact(n))
            c.read_exact(2)
        body = b"".join(parts)
    elif "content-length" in lower:
        n = int(lower["content-length"])
        if n > MAX_BODY:
            raise Closed()
        body = c.read_exact(n)
    return method, target, version, headers, body, chunked


def reply(c, status, reason, headers, body, head_only):
    out = ["HTTP/1.1 %d %s" % (status, reason)]
    for k, v in headers:
        out.append("%s: %s" % (k, v))
    data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
    if body and not head_only:
        data += body
    c.send(data)


def query(target):
    return {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}


def handle(c, method, target, headers, body, chunked):
    """Answers one request; returns False when the connection must close."""
    path = urlsplit(target).path
    q = query(target)
    head_only = method == "HEAD"
    STATS.request(c.port)
    c.seq += 1

    if path == "/echo" or path.startswith("/echo/"):
        obj = {
            "method": method,
            "target": target,
            "headers": [[k, v] for k, v in headers],
            "body_base64": base64.b64encode(body).decode("ascii"),
            "chunked": chunked,
            "client_port": c.port,
            "conn_id": c.conn_id,
            "conn_seq": c.seq,
            "tls": c.tls,
        }
        STATS.write_record(obj)
        data = json.dumps(obj).encode("utf-8")
        reply(c, 200, "OK", [("Content-Type", "application/json"),
                             ("Content-Length", str(len(data)))], data, head_only)
    elif path == "/echo-body":
        ctype = "application/octet-stream"
        for k, v in headers:
            if k.lower() == "content-type":
                ctype = v
        reply(c, 200, "OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
              body, head_only)
    elif path.startswith("/status/"):
        code = int(path[len("/status/"):])
        if code in (204, 304) or code < 200:
            reply(c, code, "Status", [], b"", True)
        else:
            data = b"status %d\n" % code
            reply(c, code, "Status", [("Content-Length", str(len(data)))], data, head_only)
    elif path == "/slow":
        time.sleep(int(q.get("ms", "1000")) / 1000.0)
        reply(c, 200, "OK", [("Content-Length", "5")], b"slow\n", head_only)
    elif path == "/drip":
        n = int(q.get("chunks", "5"))
        ms = int(q.get("ms", "100"))
        size = int(q.get("size", "6"))
        reply(c, 200, "OK", [("Transfer-Encoding", "chunked")], b"", True)
        if not head_only:
            for i in range(n):
                piece = (b"%05d\n" % i * (size // 6 + 1))[:size]
                c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(ms / 1000.0)
            c.send(b"0\r\n\r\n")
    elif path == "/close-mid":
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        return False
    elif path == "/reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    elif path == "/big":
        n = int(q.get("bytes", "1048576"))
        pattern = bytes(i % 251 for i in range(251))
        reply(c, 200, "OK", [("Content-Length", str(n))], b"", True)
        if not head_only:
            sent = 0
            block = pattern * (65536 // 251 + 1)
            while sent < n:
                # Keep the pattern aligned on i % 251 across blocks.
                off = sent % 251
                piece = block[off:off + min(65536, n - sent)]
                c.send(piece)
                sent += len(piece)
    elif path == "/redirect":
        to = q.get("to", "/echo")
        reply(c, 302, "Found", [("Location", to), ("Content-Length", "0")], b"", head_only)
    elif path == "/gzip":
        data = gzip.compress(b"hello gzip\n" * 100)
        reply(c, 200, "OK", [("Content-Encoding", "gzip"), ("Content-Type", "text/plain"),
                             ("Content-Length", str(len(data)))], data, head_only)
    elif path == "/headers":
        n = int(q.get("n", "10"))
        size = int(q.get("size", "10"))
        hs = [("X-H%d" % i, "v" * size) for i in range(n)] + [("Content-Length", "0")]
        reply(c, 200, "OK", hs, b"", True)
    elif path == "/connections":
        data = json.dumps(STATS.snapshot()).encode("utf-8")
        reply(c, 200, "OK", [("Content-Type", "application/json"),
                             ("Content-Length", str(len(data)))], data, head_only)
    else:
        reply(c, 404, "Not Found", [("Content-Length", "10")], b"not found\n", head_only)
    for k, v in headers:
        if k.lower() == "connection" and v.lower() == "close":
            return False
    return True


def serve_conn(sock, ctx):
    conn_id = STATS.new_conn()
    try:
        if ctx is not None:
            sock.settimeout(10)
            sock = ctx.wrap_socket(sock, server_side=True)
            sock.settimeout(None)
        c = Conn(sock, ctx is not None, conn_id)
        while True:
            method, target, _version, headers, body, chunked = read_request(c)
            if not handle(c, method, target, headers, body, chunked):
                break
    except (Closed, OSError, ValueError, ssl.SSLError):
        pass
    finally:
        STATS.closed()
        try:
            sock.close()
        except OSError:
            pass


def listener(ctx, serve=None):
    """Listen on a free loopback port (TLS with ctx) and hand each accepted
    connection to serve(conn, ctx) on its own thread; returns the port."""
    serve = serve or serve_conn
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1024)

    def loop():
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(conn, ctx), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def make_certs(d):
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w", encoding="ascii") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "2", "-subj",
        "/CN=secretproxy test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return ca_pem, crt, key


def main():
    ap = argparse.ArgumentParser(description="test upstream for secretproxy")
    ap.add_argument("--record", help="append each /echo request as a JSON line to this file")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="stop when stdin reaches end of file (the parent went away)")
    args = ap.parse_args()
    STATS.record = args.record

    d = tempfile.mkdtemp(prefix="sp-upstream.")
    try:
        ca_pem, crt, key = make_certs(d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        http_port = listener(None)
        https_port = listener(ctx)
        print(json.dumps({"http_port": http_port, "https_port": https_port,
                          "ca_file": ca_pem, "pid": os.getpid(), "dir": d}), flush=True)
        stop = threading.Event()
        def on_signal(signum, _frame):
            print("upstream_server: signal %d, stopping" % signum, file=sys.stderr, flush=True)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        def watch_stdin():
            try:
                while sys.stdin.buffer.read(1):
                    pass
            except (OSError, ValueError):
                pass
            print("upstream_server: stdin closed, stopping", file=sys.stderr, flush=True)
            stop.set()

        if args.exit_on_stdin_eof:
            threading.Thread(target=watch_stdin, daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
