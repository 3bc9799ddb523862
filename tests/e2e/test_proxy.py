#!/usr/bin/env python3
"""The forward proxy and POST /v1/fetch, black-box: real Redis, the real
binary, a real upstream (tests/e2e/upstream_server.py) and real clients
(curl, Python requests). Every place a reference can sit, byte-exact on
the upstream side; every refusal proven to send nothing upstream; echo
redaction; keep-alive; concurrency; Redis restarted mid-run; a leak scan
of the log and of Redis.

usage: test_proxy.py BUILD_DIR
"""
import base64
import concurrent.futures
import datetime
import types
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import botocore.auth
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leak_scan  # noqa: E402
import spt  # noqa: E402

CANARY = "CANARY-proxy-%d" % os.getpid()
VAL = {
    "STRIPE": CANARY + "-sk&+ /=%\"\\",
    "GH": CANARY + "-ghp",
    "CRLF": CANARY + "\r\nX-Injected: 1",
    "BOUND": CANARY + "-bound",
    "ALICE": CANARY + "-alice",
    # an AWS credential: key id, secret access key, session token
    "AWS_AKID": "AKIA" + CANARY.upper().replace("-", ""),
    "AWS_SECRET": CANARY + "-wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
    "AWS_TOKEN": CANARY + "-FwoGZXIvYXdzEJr//////////wEaDM+token==",
}


class Env:
    def __init__(self):
        self.d = spt.tmpdir()
        self.redis_port, self.redis = spt.redis_server()
        up = spt.start([sys.executable, os.path.join(spt.ROOT, "tests/e2e/upstream_server.py"),
                        "--record", os.path.join(self.d, "upstream.jsonl")],
                       stdout=subprocess.PIPE, text=True)
        info = json.loads(up.stdout.readline())
        self.up_http = info["http_port"]
        self.record = os.path.join(self.d, "upstream.jsonl")
        self.boot = "e2e-proxy-bootstrap-" + os.urandom(8).hex()
        self.proxy_port, self.api_port = spt.free_port(), spt.free_port()
        self.log = os.path.join(self.d, "sp.log")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SECRETPROXY_") and k.lower() not in
                    ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        self.env.update({
            "SECRETPROXY_REDIS_URL": "redis://127.0.0.1:%d/0" % self.redis_port,
            "SECRETPROXY_PROXY_LISTEN": "127.0.0.1:%d" % self.proxy_port,
            "SECRETPROXY_API_LISTEN": "127.0.0.1:%d" % self.api_port,
            "SECRETPROXY_KEYRING_FILE": os.path.join(self.d, "keyring.json"),
            "SECRETPROXY_API_BOOTSTRAP_KEY": self.boot,
            "SECRETPROXY_LOG_FILE": self.log,
            "SECRETPROXY_UPSTREAM_ALLOW_PRIVATE": "true",
            "SECRETPROXY_PROXY_WORKERS": "2",
            "SECRETPROXY_REDIS_RECONNECT_MAX": "200ms",
        })
        empty = os.path.join(self.d, "empty.conf")
        open(empty, "w").close()
        self.proc = spt.start([os.path.join(spt.BUILD, "secretproxy"), "-c", empty],
                              env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert spt.wait_port(self.api_port) and spt.wait_port(self.proxy_port)
        self.api = "http://127.0.0.1:%d" % self.api_port
        self.proxy = "http://127.0.0.1:%d" % self.proxy_port
        for _ in range(100):
            if requests.get(self.api + "/readyz").status_code == 200 and \
                    requests.get(self.api + "/v1/keys", headers=self.auth()).status_code == 200:
                break
            time.sleep(0.05)

    def auth(self, key=None):
        return {"Authorization": "Bearer " + (key or self.boot)}

    def put(self, name, value, **meta):
        body = dict(meta, value=value)
        r = requests.put(self.api + "/v1/secrets/" + name, json=body, headers=self.auth(),
                         params={"scope": meta.pop("scope")} if "scope" in meta else None)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def key(self, perms, **bind):
        r = requests.post(self.api + "/v1/keys", headers=self.auth(),
                          json=dict(bind, name="k", permissions=perms))
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def upstream_requests(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(l) for l in f if l.strip()]

    def upstream(self, path="/echo"):
        return "http://127.0.0.1:%d%s" % (self.up_http, path)


def via(env, key):
    p = "http://x:%s@127.0.0.1:%d" % (key, env.proxy_port)
    return {"http": p, "https": p}


def echo_of(r):
    try:
        return r.json()
    except ValueError:
        return {}


class FixedDatetime(datetime.datetime):
    """botocore.auth reads the clock with datetime.datetime.utcnow(): sign
    at the X-Amz-Date the upstream received."""
    fixed = None

    @classmethod
    def utcnow(cls):
        return cls.fixed


botocore.auth.datetime = types.SimpleNamespace(datetime=FixedDatetime)

# What botocore sets itself, and the framing the upstream client adds.
AWS_SET = ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256",
           "content-length")


def botocore_sign(rec, service, region, token, unsigned):
    """Rebuild the request the upstream received and sign it with botocore
    and the real keys at the received X-Amz-Date; returns its headers."""
    hdrs = rec.get("headers", [])
    amz_date = [v for k, v in hdrs if k.lower() == "x-amz-date"]
    host = [v for k, v in hdrs if k.lower() == "host"]
    if len(amz_date) != 1 or len(host) != 1:
        return {}
    FixedDatetime.fixed = datetime.datetime.strptime(amz_date[0], "%Y%m%dT%H%M%SZ")
    # https only so that botocore honours an unsigned payload for non-S3
    req = AWSRequest(method=rec["method"], url="https://" + host[0] + rec["target"],
                     data=base64.b64decode(rec.get("body_base64", "")))
    for k, v in hdrs:
        if k.lower() not in AWS_SET:
            req.headers[k] = v
    creds = Credentials(VAL["AWS_AKID"], VAL["AWS_SECRET"], token)
    if service == "s3":
        req.context["client_config"] = types.SimpleNamespace(
            s3={"payload_signing_enabled": not unsigned})
        botocore.auth.S3SigV4Auth(creds, service, region).add_auth(req)
    else:
        req.context["payload_signing_enabled"] = not unsigned
        botocore.auth.SigV4Auth(creds, service, region).add_auth(req)
    return {k.lower(): v for k, v in req.headers.items()}


def awsv4_section(res, e, key, refused):
    """/v1/fetch auth.awsv4 with references, each signature checked with
    botocore independently."""
    e.put("AWS_AKID", VAL["AWS_AKID"])
    e.put("AWS_SECRET", VAL["AWS_SECRET"], hosts=["127.0.0.1"])
    e.put("AWS_TOKEN", VAL["AWS_TOKEN"])
    tok = requests.get(e.api + "/v1/secrets/AWS_TOKEN", headers=e.auth()).json()["reference"]
    refs = {"access_key_id": "$Secret{AWS_AKID}", "secret_access_key": "$Token{AWS_SECRET}"}
    cases = [
        ("a non-S3 POST (execute-api)", "execute-api", "eu-west-1", False, False, {
            "url": e.upstream("/echo/prod/items"), "method": "POST",
            "query": {"a": "1 2", "b": "x"}, "body": '{"k": "$Secret{GH}"}',
            "headers": {"Content-Type": "application/json", "X-Api-Key": "$Secret{GH}",
                        "Authorization": "stale", "X-Amz-Date": "20000101T000000Z"}}),
        ("an S3 PUT with a session token", "s3", "us-east-1", True, False, {
            "url": e.upstream("/echo/bucket/dir/key.txt"), "method": "PUT",
            "body": "object bytes\n", "headers": {"Content-Type": "text/plain",
                                                   "X-Amz-Meta-Owner": "$Secret{GH}"}}),
        ("an unsigned payload (sts POST) with a session token", "sts", "us-east-1", True, True, {
            "url": e.upstream("/echo"), "method": "POST",
            "body": "Action=GetCallerIdentity&Version=2011-06-15",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        ("an unsigned S3 GET", "s3", "eu-central-1", False, True, {
            "url": e.upstream("/echo/bucket/key"), "query": {"list-type": "2"}}),
    ]
    for what, service, region, with_token, unsigned, desc in cases:
        aws = dict(refs, region=region, service=service)
        if with_token:
            aws["session_token"] = tok
        if unsigned:
            aws["unsigned_payload"] = True
        desc = dict(desc, auth={"awsv4": aws})
        before = len(e.upstream_requests())
        fr = requests.post(e.proxy + "/v1/fetch", headers=e.auth(key), json=desc, timeout=10)
        recs = e.upstream_requests()
        rec = recs[-1] if len(recs) == before + 1 else {}
        if not res.check(fr.status_code == 200 and rec,
                         "awsv4 %s goes through: %d %s" % (what, fr.status_code, fr.text[:200])):
            continue
        got = {}
        for k, v in rec["headers"]:
            got.setdefault(k.lower(), []).append(v)
        want = botocore_sign(rec, service, region, VAL["AWS_TOKEN"] if with_token else None,
                             unsigned)
        res.check(got.get("authorization") == [want.get("authorization")],
                  "awsv4 %s: Authorization equals botocore's byte for byte:\n  %r\n  %r"
                  % (what, got.get("authorization"), want.get("authorization")))
        res.check(got.get("authorization", [""])[0].startswith(
            "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, " % (
                VAL["AWS_AKID"], got.get("x-amz-date", ["x"])[0][:8], region, service)),
            "awsv4 %s: the credential scope names the resolved key id" % what)
        sha = want.get("x-amz-content-sha256")
        res.check(got.get("x-amz-content-sha256") == ([sha] if sha else None),
                  "awsv4 %s: X-Amz-Content-Sha256 %r (botocore %r)"
                  % (what, got.get("x-amz-content-sha256"), sha))
        if unsigned:
            res.check(sha == "UNSIGNED-PAYLOAD", "awsv4 %s: UNSIGNED-PAYLOAD sent" % what)
        res.check(got.get("x-amz-security-token") ==
                  ([VAL["AWS_TOKEN"]] if with_token else None),
                  "awsv4 %s: X-Amz-Security-Token is the resolved token or absent" % what)
        wire = json.dumps(rec) + base64.b64decode(rec.get("body_base64", "")).decode()
        res.check(not any(r in wire for r in ("$Secret", "$Token", "$secret:", "Secret%7B")),
                  "awsv4 %s: the upstream never sees reference text" % what)
        res.check(VAL["AWS_SECRET"] not in wire,
                  "awsv4 %s: the secret access key never goes upstream" % what)
        res.check(fr.json().get("status") == 200 and CANARY not in fr.text,
                  "awsv4 %s: the echoed answer is redacted" % what)
    # The signature covers the substituted header and the caller's stale
    # Authorization/X-Amz-Date were replaced (checked above: one of each).

    def fetch(aws, url="/echo"):
        return lambda: requests.post(e.proxy + "/v1/fetch", headers=e.auth(key), json={
            "url": e.upstream(url), "auth": {"awsv4": aws}}, timeout=10)

    base = dict(refs, region="us-east-1", service="execute-api")
    refused("awsv4 with a non-string access_key_id", 400, "bad_request",
            fetch(dict(base, access_key_id=5)))
    refused("awsv4 with a non-string session_token", 400, "bad_request",
            fetch(dict(base, session_token=["x"])))
    refused("awsv4 without a secret_access_key", 400, "bad_request",
            fetch({k: v for k, v in base.items() if k != "secret_access_key"}))
    refused("awsv4 with a reference as region", 400, "bad_request",
            fetch(dict(base, region="$Secret{GH}")))
    refused("awsv4 with an upper-case service", 400, "bad_request",
            fetch(dict(base, service="S3")))
    refused("awsv4 with a non-boolean unsigned_payload", 400, "bad_request",
            fetch(dict(base, unsigned_payload="yes")))
    refused("awsv4 with an unknown field", 400, "bad_request",
            fetch(dict(base, expires=60)))
    refused("awsv4 whose session token resolves to CR/LF", 403, "secret_unsafe_value",
            fetch(dict(base, session_token="$Secret{CRLF}")))
    refused("awsv4 whose key id resolves to CR/LF", 403, "secret_unsafe_value",
            fetch(dict(base, access_key_id="$Secret{CRLF}")))
    refused("awsv4 with an unknown secret", 404, "secret_not_found",
            fetch(dict(base, secret_access_key="$Secret{NOPE}")))


def audit_section(res, e, tok):
    """The workspace's audit stream holds one event per proxied request
    that used secrets (names, scopes, decision, destination), never a value
    or a $secret: token, in any encoding."""
    r = leak_scan.Redis(e.redis_port, timeout=10)
    try:
        keys = [k for k in flatten_scan(r) if k.endswith(b":audit")]
        events = []
        for k in keys:
            for _id, fields in r.cmd("XRANGE", k, "-", "+"):
                events.append(dict(zip(fields[::2], fields[1::2])).get(b"event", b""))
    finally:
        r.close()
    proxied = [json.loads(ev) for ev in events if b'"type":"proxy"' in ev]
    res.check(len(proxied) >= 10, "audit stream: %d proxy events" % len(proxied))
    res.check(all(p.get("refs") and p.get("caller") and p.get("host") and p.get("decision")
                  for p in proxied), "audit events name refs, caller, host and decision")
    fetched = [json.loads(ev) for ev in events if b'"type":"fetch"' in ev]
    res.check(len(fetched) >= 3 and all(p.get("refs") and p.get("caller") and p.get("host")
                                        for p in fetched),
              "audit stream: %d /v1/fetch events, with refs, caller and host" % len(fetched))
    res.check(any(p["decision"] == "deny" for p in proxied) and
              any(p["decision"] == "allow" for p in proxied),
              "audit stream holds allowed and denied requests")
    blob = b"\n".join(events)
    for name, v in VAL.items():
        hit = [f for f in leak_scan.forms(v) if f in blob]
        res.check(not hit, "audit stream holds no form of %s's value %r" % (name, hit[:1]))
    res.check(tok.split(":", 1)[1].encode() not in blob, "audit stream holds no $secret: token")


def flatten_scan(r):
    cursor, out = b"0", []
    while True:
        cursor, batch = r.cmd("SCAN", cursor, "COUNT", 1000)
        out += batch
        if cursor == b"0":
            return out


def main():
    res = spt.Results()
    e = Env()
    e.put("STRIPE", VAL["STRIPE"], hosts=["127.0.0.1"])
    e.put("GH", VAL["GH"])
    e.put("CRLF", VAL["CRLF"])
    e.put("BOUND", VAL["BOUND"], hosts=["api.example.com"])
    e.put("PATHSEG", "echo")
    key = e.key(["proxy"])
    px = via(e, key)

    # -- every place, Python requests with proxies= ----------------------
    tok = requests.get(e.api + "/v1/secrets/GH", headers=e.auth()).json()["reference"]
    r = requests.post(e.upstream("/$Secret{PATHSEG}"), proxies=px,
                      params={"k": "$Secret{STRIPE}", "t": tok},
                      headers={"X-Key": "$Secret{STRIPE}", "Authorization": "Bearer " + tok},
                      json={"token": "$Token{GH}", "n": 1}, timeout=10)
    ok = r.status_code == 200
    recs = e.upstream_requests()
    got = recs[-1] if recs else {}   # what the upstream received
    res.check(ok, "a request with references in every place goes through (%s %s)"
              % (r.status_code, r.text[:200]))
    if ok:
        q = urllib.parse.quote(VAL["STRIPE"], safe="")
        res.check(got.get("target", "").startswith("/echo?"),
                  "path reference substituted ($Secret%%7BPATHSEG%%7D -> echo): %r"
                  % got.get("target"))
        res.check(("k=" + q) in got.get("target", ""), "query value percent-encoded: %r"
                  % got.get("target"))
        hdr = {k.lower(): v for k, v in got.get("headers", [])}
        res.check(hdr.get("x-key") == VAL["STRIPE"], "header value raw: %r" % hdr.get("x-key"))
        res.check(hdr.get("authorization") == "Bearer " + VAL["GH"],
                  "$secret: token in Authorization resolved")
        body = base64.b64decode(got.get("body_base64", ""))
        res.check(json.loads(body) == {"token": VAL["GH"], "n": 1},
                  "JSON body value JSON-escaped and Content-Length recomputed: %r" % body[:100])
        res.check("proxy-authorization" not in hdr and not any(k.startswith("secretproxy-")
                                                                for k in hdr),
                  "Proxy-* and Secretproxy-* headers are not forwarded")
        res.check("1.1 secretproxy" in hdr.get("via", ""), "Via added")
        res.check(CANARY not in r.text, "values echoed back are redacted in the answer")

    # -- Basic credential with a reference inside --------------------------
    r = requests.get(e.upstream("/echo"), proxies=px, auth=("user", "$Secret{GH}"), timeout=10)
    recs = e.upstream_requests()
    hdr = {k.lower(): v for k, v in (recs[-1] if recs else {}).get("headers", [])}
    want = "Basic " + base64.b64encode(("user:" + VAL["GH"]).encode()).decode()
    res.check(hdr.get("authorization") == want, "reference inside a Basic credential")

    # -- curl -x and HTTP_PROXY, form body --------------------------------
    c = subprocess.run(["curl", "-s", "-x", "http://127.0.0.1:%d" % e.proxy_port,
                        "--proxy-user", "x:" + key, "-d", "a=$Secret{STRIPE}&b=2",
                        e.upstream("/echo")], capture_output=True, text=True, timeout=20)
    recs = e.upstream_requests()
    body = base64.b64decode((recs[-1] if recs else {}).get("body_base64", ""))
    want = "a=" + urllib.parse.quote_plus(VAL["STRIPE"], safe="") + "&b=2"
    res.check(body == want.encode(), "curl -x: form body form-encoded: %r" % body[:120])
    envc = dict(os.environ, http_proxy="http://x:%s@127.0.0.1:%d" % (key, e.proxy_port))
    c = subprocess.run(["curl", "-s", e.upstream("/echo?v=$Secret%7BGH%7D")], env=envc,
                       capture_output=True, text=True, timeout=20)
    recs = e.upstream_requests()
    res.check(c.returncode == 0 and recs and recs[-1].get("target") == "/echo?v=" + VAL["GH"],
              "curl with http_proxy and a percent-encoded reference: %r"
              % (recs[-1].get("target") if recs else None))

    # -- refusals send nothing upstream -------------------------------------
    def refused(what, status, code, fn):
        before = len(e.upstream_requests())
        r = fn()
        after = len(e.upstream_requests())
        res.check(r.status_code == status and r.headers.get("Secretproxy-Error") == code,
                  "%s -> %d %s (got %d %s %s)" % (what, status, code, r.status_code,
                                                  r.headers.get("Secretproxy-Error"),
                                                  r.text[:150]))
        res.check(after == before, "%s: nothing reached the upstream" % what)
        res.check(CANARY not in r.text, "%s: no value in the error" % what)

    refused("no proxy key", 407, "proxy_auth_required",
            lambda: requests.get(e.upstream("/echo"), proxies={"http": e.proxy}, timeout=10))
    refused("a wrong proxy key", 407, "proxy_auth_required",
            lambda: requests.get(e.upstream("/echo"), proxies=via(e, "sp.x.y.z"), timeout=10))
    refused("a secret bound to another host", 403, "secret_host_denied",
            lambda: requests.get(e.upstream("/echo"), proxies=px,
                                 headers={"X": "$Secret{BOUND}"}, timeout=10))
    refused("an unknown secret", 404, "secret_not_found",
            lambda: requests.get(e.upstream("/echo"), proxies=px,
                                 headers={"X": "$Secret{NOPE}"}, timeout=10))
    refused("an unknown token", 400, "reference_invalid",
            lambda: requests.get(e.upstream("/echo"), proxies=px,
                                 headers={"X": "$secret:" + "A" * 43}, timeout=10))
    refused("CRLF in a header value", 403, "secret_unsafe_value",
            lambda: requests.get(e.upstream("/echo"), proxies=px,
                                 headers={"X": "$Secret{CRLF}"}, timeout=10))
    refused("a reference outside a JSON string", 400, "reference_invalid",
            lambda: requests.post(e.upstream("/echo"), proxies=px,
                                  data='{"a": $Secret{GH}}',
                                  headers={"Content-Type": "application/json"}, timeout=10))
    refused("the proxy's own API as target", 403, "destination_denied",
            lambda: requests.get(e.api + "/healthz", proxies=px, timeout=10))
    noperm = e.key(["secrets:read"])
    refused("a key without the proxy permission", 403, "forbidden",
            lambda: requests.get(e.upstream("/echo"), proxies=via(e, noperm), timeout=10))
    refused("Secretproxy-User without assert_context", 403, "forbidden",
            lambda: requests.get(e.upstream("/echo"), proxies=px,
                                 headers={"Secretproxy-User": "alice"}, timeout=10))

    # request smuggling: both Content-Length and Transfer-Encoding
    s = socket.create_connection(("127.0.0.1", e.proxy_port))
    auth = base64.b64encode(("x:" + key).encode()).decode()
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic %s\r\n"
               "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
               % (e.upstream("/echo"), auth)).encode())
    s.settimeout(5)
    data = s.recv(4096)
    s.close()
    res.check(data.startswith(b"HTTP/1.1 400"), "CL+TE smuggling attempt refused: %r" % data[:60])

    # -- keep-alive and concurrency -------------------------------------------
    sess = requests.Session()
    sess.proxies = px
    codes = [sess.get(e.upstream("/echo"), headers={"X": "$Secret{GH}"}, timeout=10).status_code
             for _ in range(20)]
    res.check(codes == [200] * 20, "20 requests on one client connection: %r" % codes[:5])

    def one(i):
        return requests.get(e.upstream("/echo?i=%d" % i), proxies=px,
                            headers={"X": "$Secret{GH}"}, timeout=30).status_code
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        codes = list(ex.map(one, range(200)))
    res.check(codes.count(200) == 200, "200 concurrent requests: %d ok" % codes.count(200))

    # -- upstream failures ---------------------------------------------------
    r = requests.get("http://127.0.0.1:%d/x" % spt.free_port(), proxies=px, timeout=10)
    res.check(r.status_code == 502 and r.headers.get("Secretproxy-Error") == "upstream_error",
              "refused upstream -> 502 upstream_error (%d)" % r.status_code)

    # -- /v1/fetch -------------------------------------------------------------
    fr = requests.post(e.proxy + "/v1/fetch", headers=e.auth(key), json={
        "url": e.upstream("/echo"), "method": "POST",
        "headers": {"X-Key": "$Secret{STRIPE}", "Content-Type": "text/plain"},
        "query": {"q": "$Secret{GH}"}, "body": "b=$Secret{GH}",
        "auth": {"basic": {"username": "u", "password": "$Secret{GH}"}}}, timeout=10)
    ok = fr.status_code == 200 and "status" in fr.json()
    res.check(ok, "/v1/fetch answers {status, headers, body}: %d %s" % (fr.status_code,
                                                                        fr.text[:200]))
    recs = e.upstream_requests()
    last = recs[-1] if recs else {}
    hdr = {k.lower(): v for k, v in last.get("headers", [])}
    res.check(hdr.get("x-key") == VAL["STRIPE"], "/v1/fetch header substituted upstream")
    res.check(hdr.get("authorization") == "Basic " + base64.b64encode(
        ("u:" + VAL["GH"]).encode()).decode(), "/v1/fetch auth.basic with a reference")
    res.check(base64.b64decode(last.get("body_base64", "")) == ("b=" + VAL["GH"]).encode(),
              "/v1/fetch body substituted (raw for text/plain)")
    res.check(("q=" + VAL["GH"]) in last.get("target", ""), "/v1/fetch query substituted")
    res.check(CANARY not in fr.text, "/v1/fetch answer redacted")
    awsv4_section(res, e, key, refused)
    fr = requests.post(e.proxy + "/v1/fetch", json={"url": e.upstream("/echo")}, timeout=10)
    res.check(fr.status_code == 407, "/v1/fetch without a key -> 407")

    # -- the audit stream: events for requests that used secrets, no values ---
    audit_section(res, e, tok)
    m = requests.get(e.api + "/metrics").text
    counts = {l.split()[0]: float(l.split()[1]) for l in m.splitlines()
              if l and not l.startswith("#")}
    res.check(counts.get('secretproxy_upstream_exchanges_total{connection="reused"}', 0) > 0 and
              counts.get('secretproxy_upstream_exchanges_total{connection="new"}', 0) > 0,
              "/metrics counts upstream exchanges on new and pooled connections")
    res.check(counts.get("secretproxy_upstream_latency_seconds_count", 0) > 10,
              "/metrics has the upstream latency histogram")

    # -- Redis down: 503, then recovery --------------------------------------
    e.redis.kill()
    e.redis.wait()
    time.sleep(0.3)
    r = requests.get(e.upstream("/echo"), proxies=px, headers={"X": "$Secret{GH}"}, timeout=10)
    res.check(r.status_code == 503 and r.headers.get("Secretproxy-Error") == "store_unavailable",
              "Redis down -> 503 store_unavailable (%d)" % r.status_code)
    e.redis_port2, e.redis = spt.redis_server(e.redis_port)
    # the data is gone with the throw-away Redis: recreate, then resolve
    for _ in range(40):
        time.sleep(0.1)
        if requests.get(e.api + "/readyz").status_code == 200:
            break
    res.check(requests.get(e.api + "/readyz").status_code == 200,
              "Redis back -> ready again without a restart")

    # -- leak scan -------------------------------------------------------------
    e.proc.terminate()
    try:
        rc = e.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        rc = None
    res.check(rc == 0, "SIGTERM drains and exits 0 (%r)" % rc)
    out, err = e.proc.communicate()
    text = open(e.log).read() + out.decode(errors="replace") + err.decode(errors="replace")
    for name, v in VAL.items():
        res.check(v not in text and base64.b64encode(v.encode()).decode()[:-4] not in text,
                  "the log holds no form of %s's value" % name)
    res.check(tok.split(":", 1)[1] not in text, "the log holds no $secret: token")
    res.finish()


if __name__ == "__main__":
    spt.run(main)
