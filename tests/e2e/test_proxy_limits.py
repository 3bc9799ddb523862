#!/usr/bin/env python3
"""The proxy listener's own limits and refusals, black-box over raw
sockets: malformed requests, request smuggling framings, a head over
proxy.max_header_size (431), a body over proxy.max_body_size (413, before
the body is sent), proxy.max_connections (503), a slow client (408) and
idle keep-alive connections (closed), each answered in the product's error
format (status, Secretproxy-Error, JSON body, Connection: close) with
nothing sent upstream; then the refusals in /metrics.

usage: test_proxy_limits.py BUILD_DIR
"""
import base64
import json
import os
import socket
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt  # noqa: E402

MAX_HEAD, MAX_BODY, MAX_CONNS = 4096, 8192, 6


def start():
    d = spt.tmpdir()
    redis_port, _ = spt.redis_server()
    up = spt.start([sys.executable, os.path.join(spt.ROOT, "tests/e2e/upstream_server.py"),
                    "--record", os.path.join(d, "upstream.jsonl")],
                   stdout=subprocess.PIPE, text=True)
    up_port = json.loads(up.stdout.readline())["http_port"]
    boot = "e2e-limits-bootstrap-" + os.urandom(8).hex()
    port, api = spt.free_port(), spt.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETPROXY_")}
    env.update({
        "SECRETPROXY_REDIS_URL": "redis://127.0.0.1:%d/0" % redis_port,
        "SECRETPROXY_PROXY_LISTEN": "127.0.0.1:%d" % port,
        "SECRETPROXY_API_LISTEN": "127.0.0.1:%d" % api,
        "SECRETPROXY_KEYRING_FILE": os.path.join(d, "keyring.json"),
        "SECRETPROXY_API_BOOTSTRAP_KEY": boot,
        "SECRETPROXY_LOG_FILE": os.path.join(d, "sp.log"),
        "SECRETPROXY_UPSTREAM_ALLOW_PRIVATE": "true",
        "SECRETPROXY_PROXY_WORKERS": "1",  # one worker: max_connections is per worker
        "SECRETPROXY_PROXY_MAX_HEADER_SIZE": str(MAX_HEAD),
        "SECRETPROXY_PROXY_MAX_BODY_SIZE": str(MAX_BODY),
        "SECRETPROXY_PROXY_MAX_CONNECTIONS": str(MAX_CONNS),
        "SECRETPROXY_PROXY_CLIENT_TIMEOUT": "1s",
    })
    empty = os.path.join(d, "empty.conf")
    open(empty, "w").close()
    spt.start([os.path.join(spt.BUILD, "secretproxy"), "-c", empty], env=env,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert spt.wait_port(port) and spt.wait_port(api)
    auth = {"Authorization": "Bearer " + boot}
    for _ in range(100):
        if requests.get("http://127.0.0.1:%d/readyz" % api).status_code == 200:
            break
        time.sleep(0.05)
    r = requests.post("http://127.0.0.1:%d/v1/keys" % api, headers=auth,
                      json={"name": "limits", "permissions": ["proxy"]})
    assert r.status_code == 201, r.text
    pa = "Proxy-Authorization: Basic %s\r\n" % base64.b64encode(
        ("x:" + r.json()["token"]).encode()).decode()
    return port, api, up_port, os.path.join(d, "upstream.jsonl"), pa


def exchange(port, data, wait_close=3.0, pause=None):
    """Send data (bytes, or a list of pieces with pause seconds between),
    read until the proxy closes or wait_close passes; returns (bytes,
    closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for i, piece in enumerate(data if isinstance(data, list) else [data]):
        if i and pause:
            time.sleep(pause)
        try:
            s.sendall(piece)
        except OSError:
            break
    s.settimeout(wait_close)
    out, closed = b"", False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    return out, closed


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    hdr = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdr[k.strip().lower()] = v.strip()
    return status, hdr, body


def main():
    res = spt.Results()
    port, api, up_port, record, pa = start()
    target = "http://127.0.0.1:%d/echo" % up_port

    def upstream_count():
        return sum(1 for _ in open(record)) if os.path.exists(record) else 0

    def refused(what, data, status, code, **kw):
        before = upstream_count()
        raw, closed = exchange(port, data, **kw)
        st, hdr, body = parse(raw)
        try:
            j = json.loads(body.split(b"\r\n")[0] if hdr.get("transfer-encoding") else body)
        except ValueError:
            j = {}
        res.check(st == status and hdr.get("secretproxy-error") == code and
                  j.get("error", {}).get("code") == code and j["error"].get("request_id"),
                  "%s -> %d %s with the JSON error body (got %d %r %r)"
                  % (what, status, code, st, hdr.get("secretproxy-error"), body[:120]))
        res.check(hdr.get("connection") == "close" and closed,
                  "%s: Connection: close, and closed" % what)
        res.check(upstream_count() == before, "%s: nothing reached the upstream" % what)

    ok = ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (target, pa)).encode()
    st, hdr, _ = parse(exchange(port, ok, wait_close=0.5)[0])
    res.check(st == 200, "a plain request goes through (%d)" % st)

    # -- malformed and ambiguous framing ---------------------------------------
    refused("a malformed request line", b"GET\r\n\r\n", 400, "bad_request")
    refused("a bare LF line end", ("GET %s HTTP/1.1\nHost: x\n\n" % target).encode(),
            400, "bad_request")
    refused("obs-fold", ("GET %s HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n%s\r\n"
                         % (target, pa)).encode(), 400, "bad_request")
    refused("a space before the colon", ("GET %s HTTP/1.1\r\nHost : x\r\n%s\r\n"
                                         % (target, pa)).encode(), 400, "bad_request")
    refused("Content-Length and Transfer-Encoding",
            ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 5\r\n"
             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (target, pa)).encode(),
            400, "bad_request")
    refused("two different Content-Lengths",
            ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
             "hello!" % (target, pa)).encode(), 400, "bad_request")
    refused("Transfer-Encoding: gzip, chunked",
            ("POST %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: gzip, chunked\r\n\r\n"
             "0\r\n\r\n" % (target, pa)).encode(), 400, "bad_request")
    refused("a bad chunk size", ("POST %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked"
                                 "\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" % (target, pa)).encode(),
            400, "bad_request")
    refused("HTTP/2's preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request")
    refused("HTTP/1.1 without Host", ("GET %s HTTP/1.1\r\n%s\r\n" % (target, pa)).encode(),
            400, "bad_request")

    # -- sizes -----------------------------------------------------------------
    refused("a head over proxy.max_header_size",
            ("GET %s HTTP/1.1\r\nHost: x\r\n%sX-Big: %s\r\n\r\n"
             % (target, pa, "a" * MAX_HEAD)).encode(), 431, "headers_too_large")
    refused("a Content-Length over proxy.max_body_size (answered before the body)",
            ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
             % (target, pa, MAX_BODY + 1)).encode(), 413, "payload_too_large")
    refused("a chunked body over proxy.max_body_size",
            ("POST %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n"
             % (target, pa)).encode() + (b"1000\r\n" + b"a" * 4096 + b"\r\n") * 3 +
            b"0\r\n\r\n", 413, "payload_too_large")
    body = b"b" * MAX_BODY
    raw, _ = exchange(port, ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n"
                             "Connection: close\r\n\r\n" % (target, pa, len(body))).encode() + body)
    res.check(parse(raw)[0] == 200, "a body of exactly proxy.max_body_size goes through")

    # -- time ------------------------------------------------------------------
    refused("a head not complete within proxy.client_timeout",
            [("GET %s HTTP/1.1\r\nHost: x\r\n" % target).encode(), b"X-Slow: 1\r\n"], 408,
            "bad_request", pause=0.2, wait_close=3.0)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(ok)
    time.sleep(0.2)
    s.recv(65536)
    t = time.time()
    s.settimeout(4)
    try:
        closed = s.recv(1) == b""
    except OSError:
        closed = False
    res.check(closed and time.time() - t < 2.5,
              "an idle keep-alive connection is closed after proxy.client_timeout (%.1fs)"
              % (time.time() - t))
    s.close()

    # -- connections -----------------------------------------------------------
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(MAX_CONNS)]
    gauge = None
    for _ in range(30):  # reported once a second
        time.sleep(0.1)
        for line in requests.get("http://127.0.0.1:%d/metrics" % api).text.splitlines():
            if line.startswith("secretproxy_client_connections "):
                gauge = float(line.split()[1])
        if gauge == MAX_CONNS:
            break
    res.check(gauge == MAX_CONNS, "/metrics: %d open client connections (%r)" % (MAX_CONNS, gauge))
    refused("connection %d over proxy.max_connections" % (MAX_CONNS + 1), b"", 503,
            "store_unavailable", wait_close=2.0)
    held.pop().close()
    time.sleep(0.2)
    st = parse(exchange(port, ok, wait_close=0.5)[0])[0]
    res.check(st == 200, "after one closes, a new connection is served (%d)" % st)
    for h in held:
        h.close()

    # -- accounted for ---------------------------------------------------------
    time.sleep(0.2)
    m = requests.get("http://127.0.0.1:%d/metrics" % api).text
    res.check('secretproxy_denials_total{code="headers_too_large"}' in m and
              'secretproxy_denials_total{code="payload_too_large"}' in m and
              'secretproxy_requests_total{route="proxy",status="431"}' in m,
              "/metrics counts the listener's own refusals")
    res.finish()


if __name__ == "__main__":
    spt.run(main)
