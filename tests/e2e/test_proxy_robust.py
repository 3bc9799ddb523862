#!/usr/bin/python3
"""The forward proxy under hostile and broken conditions, black-box: real
Redis, the real binary, real upstreams (tests/e2e/upstream_server.py) and
real clients (Node 20's fetch through undici's ProxyAgent, Python requests,
raw sockets).

  1. Node fetch + undici ProxyAgent: the default (CONNECT tunnel, even for
     http://) and proxyTunnel: false (absolute-form); byte-exact
     substitution checked on the upstream side.
  2. Upstream failures: timeout -> 504, reset -> 502, close mid-body -> the
     client can never see a complete response, 302 passed back untouched,
     5 MB bodies intact, chunked bodies streamed.
  3. Clients that close mid-response and mid-request, 50 times each: the
     proxy stays healthy and upstream connections do not pile up.
  4. Exfiltration: host binding (other host, same and other port, userinfo
     and Host-header tricks), redirects, CR/LF/NUL values into headers,
     request smuggling, echo endpoints (raw, form, JSON, base64 forms).
  5. SIGTERM drains an in-flight request and exits 0; a second SIGTERM
     exits at once.
  6. Leak scan of the log, stdout/stderr and every Redis key.

usage: test_proxy_robust.py BUILD_DIR
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt  # noqa: E402
import leak_scan  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CANARY = "CANARY-robust-%d" % os.getpid()
VAL = {
    "STRIPE": CANARY + "-sk&+ /=%\"\\",
    "GH": CANARY + "-ghp",
    "BOUND": CANARY + "-bound",
    "CRLF": CANARY + "\r\nX-Injected: 1",
    "LF": CANARY + "\nX-Injected: 1",
    "NUL": CANARY + "\0X-Injected: 1",
}


def value_forms(v):
    """Every spelling of a value that must never come back or be logged."""
    out = {v, urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v, safe=""),
           json.dumps(v)[1:-1]}
    for prefix in ("", "user:", "u:", "x:"):
        out.add(base64.b64encode((prefix + v).encode()).decode().rstrip("="))
    return out


class Upstream:
    def __init__(self, d, name):
        self.record = os.path.join(d, name + ".jsonl")
        self.p = spt.start([sys.executable, os.path.join(HERE, "upstream_server.py"),
                            "--record", self.record], stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.p.stdout.readline())["http_port"]
        self.queries = 0

    def url(self, path="/echo", host="127.0.0.1"):
        return "http://%s:%d%s" % (host, self.port, path)

    def recs(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(l) for l in f if l.strip()]

    def conns(self):
        """/connections, minus the connections and requests of these queries."""
        self.queries += 1
        c = requests.get(self.url("/connections"), timeout=5).json()
        return {"accepted": c["accepted"] - self.queries,
                "requests": sum(c["by_port"].values()) - self.queries,
                "open": c["open"] - 1}


class Proxy:
    def __init__(self, d, redis_port, boot, tag, extra=None):
        self.port, self.api_port = spt.free_port(), spt.free_port()
        self.log = os.path.join(d, "sp-%s.log" % tag)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SECRETPROXY_") and k.lower() not in
               ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update({
            "SECRETPROXY_REDIS_URL": "redis://127.0.0.1:%d/0" % redis_port,
            "SECRETPROXY_PROXY_LISTEN": "127.0.0.1:%d" % self.port,
            "SECRETPROXY_API_LISTEN": "127.0.0.1:%d" % self.api_port,
            "SECRETPROXY_KEYRING_FILE": os.path.join(d, "keyring.json"),
            "SECRETPROXY_API_BOOTSTRAP_KEY": boot,
            "SECRETPROXY_LOG_FILE": self.log,
            "SECRETPROXY_UPSTREAM_ALLOW_PRIVATE": "true",
            "SECRETPROXY_PROXY_WORKERS": "2",
        })
        env.update(extra or {})
        empty = os.path.join(d, "empty.conf")
        open(empty, "a").close()
        self.out, self.err = os.path.join(d, tag + ".out"), os.path.join(d, tag + ".err")
        self.proc = spt.start([os.path.join(spt.BUILD, "secretproxy"), "-c", empty], env=env,
                              stdout=open(self.out, "wb"), stderr=open(self.err, "wb"))
        assert spt.wait_port(self.api_port) and spt.wait_port(self.port), "proxy did not start"
        self.api = "http://127.0.0.1:%d" % self.api_port
        self.url = "http://127.0.0.1:%d" % self.port
        for _ in range(100):
            if requests.get(self.api + "/readyz").status_code == 200:
                break
            time.sleep(0.05)

    def text(self):
        t = ""
        for f in (self.log, self.out, self.err):
            if os.path.exists(f):
                t += open(f, encoding="utf-8", errors="replace").read()
        return t


# -- raw HTTP -------------------------------------------------------------------

def raw(port, data, timeout=5.0, read_until_close=True):
    """Sends bytes, reads until the peer closes (or timeout). Returns
    (bytes, error or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got, err = b"", None
    try:
        s.sendall(data)
        end = time.time() + timeout
        while time.time() < end:
            s.settimeout(max(0.05, end - time.time()))
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if not read_until_close and b"\r\n\r\n" in got:
                break
        else:
            err = "timeout"
    except socket.timeout:
        err = "timeout"
    except OSError as ex:
        err = type(ex).__name__
    finally:
        s.close()
    return got, err


def parse(data):
    """A raw response: status, headers (lower-case), body, and whether it
    looks complete to a client (full Content-Length, final chunk, or
    close-delimited)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return {"status": 0, "headers": {}, "body": b"", "complete": False}
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        status = 0
    hdr = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdr[k.strip().lower()] = v.strip()
    if "chunked" in hdr.get("transfer-encoding", "").lower():
        body, complete, buf = b"", False, rest
        while True:
            line, sep, buf = buf.partition(b"\r\n")
            if not sep:
                break
            try:
                n = int(line.split(b";")[0], 16)
            except ValueError:
                break
            if n == 0:
                complete = True
                break
            if len(buf) < n + 2:
                body += buf[:n]
                break
            body, buf = body + buf[:n], buf[n + 2:]
        return {"status": status, "headers": hdr, "body": body, "complete": complete}
    if "content-length" in hdr:
        n = int(hdr["content-length"])
        return {"status": status, "headers": hdr, "body": rest[:n], "complete": len(rest) >= n}
    return {"status": status, "headers": hdr, "body": rest, "complete": True}


KNOWN = []


def main():
    t0 = time.time()
    res = spt.Results()
    d = spt.tmpdir()
    redis_port, _redis = spt.redis_server()
    up = Upstream(d, "up-a")    # host A: 127.0.0.1
    upb = Upstream(d, "up-b")   # host B: only ever addressed as localhost; must see nothing
    boot = "e2e-robust-bootstrap-" + os.urandom(8).hex()
    p1 = Proxy(d, redis_port, boot, "p1", {"SECRETPROXY_UPSTREAM_TIMEOUT": "1s"})
    p2 = Proxy(d, redis_port, boot, "p2")   # default upstream.timeout (30 s)
    auth = {"Authorization": "Bearer " + boot}

    def put(name, value=None, **meta):
        body = dict(meta)
        if value is not None:
            body["value"] = value
        r = requests.put(p1.api + "/v1/secrets/" + name, json=body, headers=auth, timeout=5)
        assert r.status_code in (200, 201), r.text

    put("STRIPE", VAL["STRIPE"], hosts=["127.0.0.1"])
    put("GH", VAL["GH"])
    put("BOUND", VAL["BOUND"], hosts=["127.0.0.1"])
    put("CRLF", VAL["CRLF"])
    put("LF", VAL["LF"])
    put("NUL", value_base64=base64.b64encode(VAL["NUL"].encode()).decode())
    r = requests.post(p1.api + "/v1/keys", headers=auth,
                      json={"name": "robust", "permissions": ["proxy"]}, timeout=5)
    assert r.status_code == 201, r.text
    key = r.json()["token"]
    pauth = base64.b64encode(("x:" + key).encode()).decode()
    proxies = {"http": "http://x:%s@127.0.0.1:%d" % (key, p1.port)}
    PA = "Proxy-Authorization: Basic %s\r\n" % pauth

    def redacted(what, text):
        for name, v in VAL.items():
            bad = [f for f in value_forms(v) if f in text]
            res.check(not bad, "%s: no form of %s's value in the answer (found %r)"
                      % (what, name, bad[:2]))

    # == 1. Node 20 fetch through undici's ProxyAgent ============================
    node, npm = shutil.which("node"), shutil.which("npm")
    undici = os.path.join(HERE, "node_modules", "undici", "package.json")
    skip = None
    if not node or not npm:
        skip = "node or npm not on PATH"
    elif not os.path.exists(undici):
        try:
            c = subprocess.run([npm, "install", "--prefix", HERE, "--no-audit", "--no-fund", "--no-package-lock"],
                               capture_output=True, text=True, timeout=180)
            if c.returncode != 0 or not os.path.exists(undici):
                skip = "npm install failed (%d): %s" % (c.returncode, c.stderr.strip()[-300:])
        except (OSError, subprocess.TimeoutExpired) as ex:
            skip = "npm install failed: %s" % ex
    if skip:
        print("SKIP: the Node/undici part: %s" % skip)
    else:
        def node_fetch(tunnel):
            arg = {"proxy": p1.url, "key": key, "tunnel": tunnel, "method": "POST",
                   "url": up.url("/echo?q=$Secret{STRIPE}&n=1"),
                   "headers": {"X-Api-Key": "$Secret{GH}", "Content-Type": "application/json"},
                   "body": json.dumps({"token": "$Secret{STRIPE}", "n": 1})}
            c = subprocess.run([node, os.path.join(HERE, "undici_fetch.js"), json.dumps(arg)],
                               capture_output=True, text=True, timeout=30)
            try:
                return json.loads(c.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return {"ok": False, "error": {"message": "node exit %d: %s %s" % (
                    c.returncode, c.stdout[-200:], c.stderr[-300:])}}

        def check_substituted(what, out, before):
            recs = up.recs()
            rec = recs[-1] if len(recs) == before + 1 else {}
            if not res.check(out.get("ok") and out.get("status") == 200 and rec,
                             "%s: the request goes through with references substituted "
                             "(DESIGN §5.2); got %s"
                             % (what, json.dumps(out)[:400])):
                return
            hdr = {k.lower(): v for k, v in rec["headers"]}
            res.check(hdr.get("x-api-key") == VAL["GH"],
                      "%s: header value raw upstream: %r" % (what, hdr.get("x-api-key")))
            q = urllib.parse.quote(VAL["STRIPE"], safe="")
            res.check(rec["target"] == "/echo?q=%s&n=1" % q,
                      "%s: query value percent-encoded: %r" % (what, rec["target"]))
            body = base64.b64decode(rec["body_base64"])
            want = json.dumps({"token": VAL["STRIPE"], "n": 1}).encode()
            res.check(body == want, "%s: JSON body byte-exact: %r (want %r)" % (what, body, want))
            res.check(hdr.get("content-length") == str(len(want)),
                      "%s: Content-Length recomputed: %r" % (what, hdr.get("content-length")))
            res.check(not any(k.startswith("proxy-") or k.startswith("secretproxy-")
                              for k in hdr), "%s: Proxy-*/Secretproxy-* not forwarded" % what)
            redacted(what, out.get("body", "") + json.dumps(out.get("headers", {})))

        before = len(up.recs())
        out = node_fetch(True)
        print("INFO: undici %s on Node %s, %s fetch, default ProxyAgent (CONNECT): %s"
              % (out.get("undici"), out.get("node"), out.get("fetch"),
                 json.dumps(out.get("error") or {"status": out.get("status")})))
        # Known gap (README status): CONNECT is not implemented yet, and
        # undici's default ProxyAgent tunnels even http://. Checked to be
        # refused with nothing sent, and reported, until CONNECT lands.
        if out.get("ok"):
            check_substituted("undici ProxyAgent default (CONNECT tunnel to an http:// origin)",
                              out, before)
        else:
            KNOWN.append("undici default ProxyAgent needs CONNECT")
        if not out.get("ok"):
            res.check(len(up.recs()) == before,
                      "undici CONNECT refused: nothing reached the upstream")
        # what the proxy answers to the CONNECT itself
        data, _ = raw(p1.port, ("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                                % (up.port, up.port, PA)).encode(), timeout=3,
                      read_until_close=False)
        rp = parse(data)
        print("INFO: CONNECT 127.0.0.1:%d -> %d %s %r" % (
            up.port, rp["status"], rp["headers"].get("secretproxy-error"), rp["body"][:160]))
        if rp["status"] == 200:
            res.check(True, "CONNECT to an http:// origin is accepted")
        else:
            res.check(rp["status"] == 405 and
                      rp["headers"].get("secretproxy-error") == "method_not_allowed",
                      "until CONNECT lands (DESIGN §5.2), it is refused clearly: %d %s"
                      % (rp["status"], rp["headers"].get("secretproxy-error")))
            KNOWN.append("CONNECT refused with 405 (not implemented yet)")

        pt = os.path.join(HERE, "node_modules", "undici", "lib", "dispatcher", "proxy-agent.js")
        if "proxyTunnel" in open(pt).read():
            before = len(up.recs())
            out = node_fetch(False)
            check_substituted("undici ProxyAgent proxyTunnel:false (absolute-form)", out, before)
        else:
            print("SKIP: the installed undici has no proxyTunnel option")
    print("INFO: section 1 done at %.1fs" % (time.time() - t0))

    # == 2. upstream failures ======================================================
    t = time.time()
    r = requests.get(up.url("/slow?ms=2500"), proxies=proxies, timeout=10)
    el = time.time() - t
    res.check(r.status_code == 504 and r.headers.get("Secretproxy-Error") == "upstream_timeout",
              "upstream slower than upstream.timeout=1s -> 504 upstream_timeout (got %d %s %r)"
              % (r.status_code, r.headers.get("Secretproxy-Error"), r.text[:120]))
    res.check(0.8 < el < 2.2, "the 504 comes after ~1s, not after the upstream (%.2fs)" % el)
    res.check("request_id" in r.text and "upstream_timeout" in r.text,
              "504 has the JSON error body: %r" % r.text[:160])

    data, err = raw(p1.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                              % (up.url("/close-mid"), up.port, PA)).encode(), timeout=5)
    rp = parse(data)
    print("INFO: /close-mid -> %r (error %s)" % (data[:200], err))
    res.check(not (rp["status"] == 200 and rp["complete"]),
              "/close-mid: the client's response cannot look complete (got status %d, "
              "%d body bytes, headers %r, complete=%s, error %s)"
              % (rp["status"], len(rp["body"]), rp["headers"], rp["complete"], err))
    res.check(err != "timeout", "/close-mid: the proxy closes the client's connection "
              "(it does not leave it hanging): %s" % err)
    if rp["status"] == 200:
        res.check(rp["body"] == b"0123456789"[:len(rp["body"])],
                  "/close-mid: the bytes that did arrive are the upstream's: %r" % rp["body"])

    r = requests.get(up.url("/reset"), proxies=proxies, timeout=10)
    res.check(r.status_code == 502 and r.headers.get("Secretproxy-Error") == "upstream_error",
              "/reset -> 502 upstream_error (got %d %s)"
              % (r.status_code, r.headers.get("Secretproxy-Error")))

    before = len(up.recs())
    r = requests.get(up.url("/redirect?to=/echo?followed=1"), proxies=proxies,
                     allow_redirects=False, timeout=10)
    res.check(r.status_code == 302 and r.headers.get("Location") == "/echo?followed=1",
              "/redirect -> 302 passed back with its Location (got %d %r)"
              % (r.status_code, r.headers.get("Location")))
    res.check(len(up.recs()) == before, "/redirect: the proxy did not follow it")

    n = 5000000
    t = time.time()
    r = requests.get(up.url("/big?bytes=%d" % n), proxies=proxies, timeout=30)
    pattern = bytes(i % 251 for i in range(251))
    want = (pattern * (n // 251 + 1))[:n]
    res.check(r.status_code == 200 and len(r.content) == n and r.content == want,
              "/big 5 MB arrives intact (%d, %d bytes, %.2fs)"
              % (r.status_code, len(r.content), time.time() - t))

    t = time.time()
    # within upstream.timeout=1s, which bounds the whole exchange
    r = requests.get(up.url("/drip?chunks=4&ms=220&size=6"), proxies=proxies, stream=True,
                     timeout=10)
    stamps, body = [], b""
    for piece in r.raw.stream(64, decode_content=False):
        stamps.append(time.time() - t)
        body += piece
    want = b"".join(b"%05d\n" % i for i in range(4))
    res.check(r.status_code == 200 and body == want,
              "/drip body intact: %d %r" % (r.status_code, body[:60]))
    res.check(stamps and stamps[0] < 0.35 and stamps[-1] > 0.6,
              "/drip streams: first bytes at %.2fs, last at %.2fs (upstream takes ~0.9s)"
              % (stamps[0] if stamps else -1, stamps[-1] if stamps else -1))
    print("INFO: section 2 done at %.1fs" % (time.time() - t0))

    # == 3. clients that go away (on p2: default upstream.timeout, so a 1 s timeout
    #    cannot hide upstream transfers the proxy forgot to cancel) ==========
    time.sleep(0.3)
    base = up.conns()
    drip_req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                % (up.url("/drip?chunks=100&ms=100&size=1000"), up.port, PA)).encode()
    got_head = 0
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", p2.port), timeout=5)
        s.sendall(drip_req)
        try:
            if s.recv(64):
                got_head += 1
        except OSError:
            pass
        s.close()
    res.check(got_head == 50, "mid-response: the proxy started all 50 /drip answers (%d)"
              % got_head)
    before = len(up.recs())
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", p2.port), timeout=5)
        s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sContent-Type: text/plain\r\n"
                   "Content-Length: 2000\r\n\r\n" % (up.url("/echo?half=%d" % i), up.port, PA)
                   ).encode() + b"$Secret{GH}" + b"a" * 989)
        s.close()
    # the proxy must notice and release what it holds upstream
    settle = None
    for i in range(60):
        time.sleep(0.1)
        c = up.conns()
        if c["open"] - base["open"] <= 4:
            settle = i * 0.1
            break
    print("INFO: upstream connections before %r after %r" % (base, c))
    res.check(settle is not None,
              "client aborts: open upstream connections do not pile up (before %d, 6s after "
              "50 aborted /drip and 50 aborted uploads: %d open, %d accepted)"
              % (base["open"], c["open"], c["accepted"] - base["accepted"]))
    res.check(len(up.recs()) == before, "mid-request aborts: no partial upload reached /echo")
    res.check(requests.get(p2.api + "/readyz", timeout=5).status_code == 200,
              "after 100 aborted clients /readyz is 200")
    r = requests.get(up.url("/echo?after=aborts"),
                     proxies={"http": "http://x:%s@127.0.0.1:%d" % (key, p2.port)},
                     headers={"X": "$Secret{GH}"}, timeout=10)
    recs = up.recs()
    res.check(r.status_code == 200 and recs and recs[-1]["target"] == "/echo?after=aborts" and
              ["X", VAL["GH"]] in recs[-1]["headers"],
              "after 100 aborted clients a normal request works (%d)" % r.status_code)
    print("INFO: section 3 done at %.1fs" % (time.time() - t0))

    # == 4. exfiltration ===========================================================
    def refused(what, fn, status=None, code=None):
        """fn() -> (status, secretproxy-error, text). Nothing may reach A's
        /echo or B at all."""
        ra, rb = len(up.recs()), upb.conns()
        st, err, text = fn()
        res.check(st == status if status else 400 <= st < 500,
                  "%s -> %s (got %d %s %r)" % (what, status or "4xx", st, err, text[:160]))
        res.check(err == code if code else err,
                  "%s: the refusal carries Secretproxy-Error%s and the JSON error body "
                  "(DESIGN §11 Statuses); got %d %s %r"
                  % (what, ": " + code if code else "", st, err, text[:200]))
        rb2 = upb.conns()
        res.check(len(up.recs()) == ra and rb2["accepted"] == rb["accepted"] and
                  rb2["requests"] == rb["requests"],
                  "%s: nothing reached an upstream (A /echo %d->%d, B connections %d->%d, "
                  "B requests %d->%d; the client got %d responses: %r)"
                  % (what, ra, len(up.recs()), rb["accepted"], rb2["accepted"],
                     rb["requests"], rb2["requests"], text.count("HTTP/1.1 "),
                     re.findall(r"HTTP/1\.1 \d{3}[^\r\n]*", text)))
        redacted(what, text)

    def via_requests(url, **kw):
        def fn():
            r = requests.request(kw.pop("method", "GET"), url, proxies=proxies,
                                 allow_redirects=False, timeout=10, **kw)
            return r.status_code, r.headers.get("Secretproxy-Error"), \
                json.dumps(dict(r.headers)) + r.text
        return fn

    def via_raw(req, timeout=4):
        def fn():
            data, e = raw(p1.port, req.encode("latin-1"), timeout=timeout)
            rp = parse(data)
            return rp["status"], rp["headers"].get("secretproxy-error"), \
                data.decode("latin-1") + ("" if e is None else " [%s]" % e)
        return fn

    hb = "localhost:%d" % upb.port
    refused("a secret bound to 127.0.0.1 sent to localhost on the same port",
            via_requests(up.url("/echo", "localhost"), headers={"X": "$Secret{BOUND}"}),
            403, "secret_host_denied")
    refused("a secret bound to 127.0.0.1 sent to localhost on another port",
            via_requests(upb.url("/echo", "localhost"), headers={"X": "$Secret{BOUND}"}),
            403, "secret_host_denied")
    refused("a bound secret in the query towards another host",
            via_requests(upb.url("/echo?k=$Secret{BOUND}", "localhost")),
            403, "secret_host_denied")
    refused("a bound secret in a Basic credential towards another host",
            via_requests(upb.url("/echo", "localhost"), auth=("u", "$Secret{BOUND}")),
            403, "secret_host_denied")
    refused("a bound secret with userinfo naming the allowed host (http://127.0.0.1@localhost)",
            via_raw("GET http://127.0.0.1@%s/echo HTTP/1.1\r\nHost: %s\r\n%sX: $Secret{BOUND}"
                    "\r\nConnection: close\r\n\r\n" % (hb, hb, PA)))
    refused("a bound secret with a Host header naming the allowed host",
            via_raw("GET http://%s/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sX: $Secret{BOUND}"
                    "\r\nConnection: close\r\n\r\n" % (hb, up.port, PA)))
    refused("a bound secret in origin-form with Host naming another host",
            via_raw("GET /echo HTTP/1.1\r\nHost: %s\r\n%sX: $Secret{BOUND}"
                    "\r\nConnection: close\r\n\r\n" % (hb, PA)))

    # a redirect from the allowed host towards B is handed back, not followed
    ra, rb = len(up.recs()), upb.conns()
    r = requests.get(up.url("/redirect?to=" + urllib.parse.quote(upb.url("/echo", "localhost"),
                                                                  safe="")),
                     proxies=proxies, headers={"X": "$Secret{BOUND}"}, allow_redirects=False,
                     timeout=10)
    rb2 = upb.conns()
    res.check(r.status_code == 302 and r.headers.get("Location") == upb.url("/echo", "localhost"),
              "a bound secret to its allowed host that answers 302 to another host: the 302 "
              "comes back (%d %r)" % (r.status_code, r.headers.get("Location")))
    res.check(rb2["accepted"] == rb["accepted"] and len(up.recs()) == ra,
              "the redirect was not followed: B saw %d connections"
              % (rb2["accepted"] - rb["accepted"]))
    # an upstream that puts the value into a response header (Location)
    r = requests.get(up.url("/redirect?to=$Secret{GH}"), proxies=proxies,
                     allow_redirects=False, timeout=10)
    res.check(r.status_code == 302, "/redirect?to=$Secret{GH} -> 302 (%d)" % r.status_code)
    redacted("the value echoed into a Location header", json.dumps(dict(r.headers)))

    for name in ("CRLF", "LF", "NUL"):
        refused("a value with %s into a header" % name,
                via_requests(up.url("/echo"), headers={"X-Data": "$Secret{%s}" % name}),
                403, "secret_unsafe_value")
        refused("a value with %s into the Authorization header" % name,
                via_requests(up.url("/echo"), headers={"Authorization": "Bearer $Secret{%s}"
                                                       % name}),
                403, "secret_unsafe_value")
    # in the query it is percent-encoded, never a header injection
    r = requests.get(up.url("/echo?d=$Secret{CRLF}"), proxies=proxies, timeout=10)
    recs = up.recs()
    res.check(r.status_code == 200 and recs and
              recs[-1]["target"] == "/echo?d=" + urllib.parse.quote(VAL["CRLF"], safe="") and
              not any(k.lower() == "x-injected" for k, _ in recs[-1]["headers"]),
              "a CR/LF value in the query arrives percent-encoded, no injected header: %r"
              % (recs[-1]["target"] if recs else None))

    smuggled = ("GET http://%s/echo?smuggled=1 HTTP/1.1\r\nHost: %s\r\n%sX: $Secret{GH}\r\n\r\n"
                % (hb, hb, PA))
    head = "POST http://%s/echo HTTP/1.1\r\nHost: %s\r\n%s" % (hb, hb, PA)
    refused("smuggling: Content-Length and Transfer-Encoding: chunked",
            via_raw(head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    + smuggled), 400)
    refused("smuggling: Transfer-Encoding: chunked then Content-Length",
            via_raw(head + "Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n0\r\n\r\n"
                    % (5 + len(smuggled)) + smuggled), 400)
    refused("smuggling: two different Content-Length headers",
            via_raw(head + "Content-Length: 5\r\nContent-Length: %d\r\n\r\nhello" %
                    (5 + len(smuggled)) + smuggled), 400)
    refused("smuggling: Content-Length: 5, 40 (a list)",
            via_raw(head + "Content-Length: 5, 40\r\n\r\nhello" + smuggled), 400)
    refused("smuggling: Transfer-Encoding: chunked with a bad chunk size",
            via_raw(head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                    + smuggled), 400)
    refused("smuggling: chunk size longer than the data, then a request",
            via_raw(head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello world\r\n0\r\n\r\n"
                    + smuggled), 400)
    refused("smuggling: Transfer-Encoding: xchunked with Content-Length",
            via_raw(head + "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n"
                    "0\r\n\r\n" + smuggled))
    refused("smuggling: 'Transfer-Encoding : chunked' (space before the colon)",
            via_raw(head + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n"
                    "0\r\n\r\n" + smuggled))
    refused("smuggling: Transfer-Encoding: chunked, identity",
            via_raw(head + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled))

    # echo endpoints: whatever comes back, the value only as [REDACTED]
    def echoed(what, r):
        text = json.dumps(dict(r.headers)) + r.content.decode("latin-1")
        res.check(r.status_code == 200 and "[REDACTED]" in text,
                  "%s: answered, with [REDACTED] in it (%d %r)"
                  % (what, r.status_code, r.content[:160]))
        redacted(what, text)

    echoed("/echo-body text/plain", requests.post(
        up.url("/echo-body"), proxies=proxies, data="v=$Secret{STRIPE};g=$Secret{GH}",
        headers={"Content-Type": "text/plain"}, timeout=10))
    echoed("/echo-body form-encoded", requests.post(
        up.url("/echo-body"), proxies=proxies, data="a=$Secret{STRIPE}&b=$Secret%7BGH%7D",
        headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10))
    echoed("/echo-body JSON (escaped quote and backslash)", requests.post(
        up.url("/echo-body"), proxies=proxies, json={"a": "$Secret{STRIPE}"}, timeout=10))
    echoed("/echo-body octet-stream", requests.post(
        up.url("/echo-body"), proxies=proxies, data=b"\x00\x01$Secret{GH}\xff",
        headers={"Content-Type": "application/octet-stream"}, timeout=10))
    echoed("/echo with a Basic credential (base64 of 'user:'+value echoed)", requests.get(
        up.url("/echo"), proxies=proxies, auth=("user", "$Secret{GH}"), timeout=10))
    echoed("/echo with a Basic credential (base64 of 'user:'+STRIPE echoed)", requests.get(
        up.url("/echo"), proxies=proxies, auth=("user", "$Secret{STRIPE}"), timeout=10))
    echoed("/echo with the value in query, header and JSON body", requests.post(
        up.url("/echo?q=$Secret{STRIPE}"), proxies=proxies, headers={"X": "$Secret{GH}"},
        json={"k": "$Secret{STRIPE}"}, timeout=10))
    fb = upb.conns()
    res.check(fb["accepted"] == 0 and fb["requests"] == 0,
              "host B never received a connection in the whole run (%r)" % fb)
    print("INFO: section 4 done at %.1fs" % (time.time() - t0))

    # == 5. SIGTERM ================================================================
    box = {}

    def slow(proxy_url, ms):
        try:
            r = requests.get(up.url("/slow?ms=%d" % ms), timeout=15,
                             proxies={"http": "http://x:%s@%s" % (key, proxy_url[7:])},
                             headers={"X": "$Secret{GH}"})
            box["r"] = (r.status_code, r.text, r.headers.get("Secretproxy-Error"))
        except requests.RequestException as ex:
            box["r"] = (0, repr(ex)[:200], None)
        box["t"] = time.time()

    th = threading.Thread(target=slow, args=(p1.url, 800))
    th.start()
    time.sleep(0.25)
    t_term = time.time()
    p1.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        socket.create_connection(("127.0.0.1", p1.port), timeout=1).close()
        refused_new = False
    except OSError:
        refused_new = True
    res.check(refused_new, "SIGTERM: new connections to the proxy port are refused at once")
    th.join(10)
    res.check(box.get("r", (0,))[:2] == (200, "slow\n"),
              "SIGTERM: the in-flight /slow request completes: %r" % (box.get("r"),))
    try:
        rc = p1.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    res.check(rc == 0, "SIGTERM: exits 0 after draining (%r, %.2fs after the signal)"
              % (rc, time.time() - t_term))

    box.clear()
    th = threading.Thread(target=slow, args=(p2.url, 4000))
    th.start()
    time.sleep(0.3)
    p2.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t2 = time.time()
    p2.proc.send_signal(signal.SIGTERM)
    try:
        rc2 = p2.proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        rc2 = None
    el = time.time() - t2
    res.check(rc2 is not None and el < 1.0,
              "a second SIGTERM exits at once (exit %r after %.2fs; the in-flight request "
              "had ~3.4s left)" % (rc2, el))
    if rc2 is not None:
        print("INFO: exit status after the second SIGTERM: %r" % rc2)
    th.join(10)
    print("INFO: the in-flight request after the second SIGTERM got %r" % (box.get("r"),))
    print("INFO: section 5 done at %.1fs" % (time.time() - t0))

    # == 6. leak scan ==============================================================
    if p2.proc.poll() is None:
        p2.proc.kill()
        p2.proc.wait()
    text = p1.text() + p2.text()
    res.check(len(text) > 0 and "request_id" in text, "the log was written (%d bytes)" % len(text))
    for name, v in VAL.items():
        bad = [f for f in value_forms(v) if f in text]
        res.check(not bad, "the log/stdout/stderr hold no form of %s's value (%r)"
                  % (name, bad[:2]))
    pats = [p.decode() for p in leak_scan.forms(CANARY)]
    bad = [p for p in pats if p in text]
    res.check(not bad, "the log/stdout/stderr hold no encoding of the canary (%r)" % bad[:3])
    c = subprocess.run([sys.executable, os.path.join(HERE, "leak_scan.py"), str(redis_port),
                        CANARY], capture_output=True, text=True, timeout=30)
    res.check(c.returncode == 0, "Redis leak scan: %s" % c.stdout.strip()[-400:])
    print("INFO: total %.1fs" % (time.time() - t0))
    if KNOWN:
        print("note: %d known limitations met (README): %s" % (len(KNOWN), "; ".join(KNOWN)))
    res.finish()


if __name__ == "__main__":
    spt.run(main)
