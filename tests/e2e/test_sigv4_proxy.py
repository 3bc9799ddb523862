#!/usr/bin/python3
"""Re-signing an unmodified AWS SDK's requests in the forward proxy
(DESIGN §6), black-box: real Redis, the real binary, a small S3/STS/Lambda
upstream that checks every signature with the REAL keys
(tests/e2e/s3_upstream.py), and real clients: boto3 (Debian's), the AWS SDK
for JavaScript v3 (tests/e2e/aws_sdk_s3.js), and hand-made aws-chunked
uploads.

  1. control: the same clients straight to the upstream with the real keys
     all verify, and wrong keys, tokens, hashes and chunk signatures are
     refused (so the verifier cannot pass by accident);
  2. through the proxy with `$Secret{…}`, `$Token{…}` and `$secret:…` as the
     access key id and a dummy secret key: S3 put/get/head/list/delete,
     multipart, presigned URLs, session tokens, UNSIGNED-PAYLOAD, bodies and
     headers with substituted references, STS and Lambda (double-encoded
     paths), STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) uploads re-signed
     chunk by chunk (a reference inside one: substituted or refused, never
     forwarded), the JavaScript SDK (its STREAMING-UNSIGNED-PAYLOAD-TRAILER
     upload too), and a real-key request passed through untouched;
  3. refusals (type mismatch, unknown reference, unknown token, host
     binding, revoked secret, no key, an aws secret outside a SigV4 key id
     such as boto3's default SigV2 presigned URL), each proven to send
     nothing upstream;
  4. leak checks: the log, the process output, the audit stream and Redis
     never hold the real keys or token; the upstream never saw a reference,
     the dummy secret key or the dummy token.

usage: test_sigv4_proxy.py BUILD_DIR
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

import boto3
import botocore.exceptions
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import spt  # noqa: E402
import s3_upstream as s3u  # noqa: E402  (chunk-signature and checksum primitives)
from leak_scan import Redis  # noqa: E402

CANARY = "CANARY-sigv4-%d" % os.getpid()
TAG = "%X" % os.getpid()
PROD = {"access_key_id": "AKIACANARY%sPROD" % TAG,
        "secret_access_key": CANARY + "-wJalrXUtnFEMI/K7MDENG+bPxRfiCYprod"}
TEMP = {"access_key_id": "ASIACANARY%sTEMP" % TAG,
        "secret_access_key": CANARY + "-je7MtGbClwBF/2Zp9Utk/h3yCo8nvbtemp",
        "session_token": CANARY + "-FwoGZXIvYXdzEJr//////////wEaDM+token=="}
BOUND = {"access_key_id": "AKIACANARY%sBOUND" % TAG,
         "secret_access_key": CANARY + "-bound-secret-key"}
PLAIN = CANARY + "-plain-api-value"
DUMMY_SECRET = "dummy-secret-key-" + TAG
DUMMY_TOKEN = "dummy-session-token-" + TAG
REF_TEXT = ("$Secret", "%24Secret", "%24secret", "$secret:", "$Token", "%24Token",
            "Secret%7B", "Secret{")
REGION = "us-east-1"


class Env:
    """Redis, the verifying upstream, and secretproxy on free ports."""

    def __init__(self):
        self.d = spt.tmpdir()
        self.redis_port, self.redis = spt.redis_server()
        creds = os.path.join(self.d, "creds.json")
        with open(creds, "w") as f:
            json.dump([PROD, TEMP, BOUND], f)
        self.record = os.path.join(self.d, "upstream.jsonl")
        up = spt.start([sys.executable, os.path.join(HERE, "s3_upstream.py"), "--creds", creds,
                        "--record", self.record], stdout=subprocess.PIPE, text=True)
        self.up_port = json.loads(up.stdout.readline())["http_port"]
        self.endpoint = "http://127.0.0.1:%d" % self.up_port
        self.boot = "e2e-sigv4-bootstrap-" + os.urandom(8).hex()
        self.proxy_port, self.api_port = spt.free_port(), spt.free_port()
        self.log = os.path.join(self.d, "sp.log")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SECRETPROXY_", "AWS_")) and k.lower() not in
               ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update(SECRETPROXY_REDIS_URL="redis://127.0.0.1:%d/0" % self.redis_port,
                   SECRETPROXY_PROXY_LISTEN="127.0.0.1:%d" % self.proxy_port,
                   SECRETPROXY_API_LISTEN="127.0.0.1:%d" % self.api_port,
                   SECRETPROXY_KEYRING_FILE=os.path.join(self.d, "keyring.json"),
                   SECRETPROXY_API_BOOTSTRAP_KEY=self.boot, SECRETPROXY_LOG_FILE=self.log,
                   SECRETPROXY_UPSTREAM_ALLOW_PRIVATE="true", SECRETPROXY_PROXY_WORKERS="2")
        self.out_file = os.path.join(self.d, "sp.out")
        empty = os.path.join(self.d, "empty.conf")
        open(empty, "w").close()
        with open(self.out_file, "wb") as out:
            self.proc = spt.start([os.path.join(spt.BUILD, "secretproxy"), "-c", empty],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
        if not (spt.wait_port(self.api_port) and spt.wait_port(self.proxy_port)):
            raise RuntimeError("secretproxy did not start: " + open(self.out_file).read()[-500:])
        self.api = "http://127.0.0.1:%d" % self.api_port
        for _ in range(100):
            if requests.get(self.api + "/v1/keys", headers=self.auth()).status_code == 200:
                break
            time.sleep(0.05)

    def auth(self):
        return {"Authorization": "Bearer " + self.boot}

    def secret(self, name, value, **meta):
        r = requests.put(self.api + "/v1/secrets/" + name, headers=self.auth(),
                         json=dict(meta, value=value))
        assert r.status_code in (200, 201), r.text
        return r.json()["reference"]

    def proxy_key(self):
        r = requests.post(self.api + "/v1/keys", headers=self.auth(),
                          json={"name": "sigv4", "permissions": ["proxy"]})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def recs(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(l) for l in f if l.strip()]


# ---- clients ---------------------------------------------------------------

def client(e, service, akid, secret, token=None, proxy=None, unsigned=False):
    """An unmodified boto3 client for the upstream, optionally via a proxy URL."""
    s3cfg = {"addressing_style": "path"}
    if unsigned:
        s3cfg["payload_signing_enabled"] = False
    cfg = Config(signature_version="s3v4" if service == "s3" else None, s3=s3cfg,
                 retries={"total_max_attempts": 1}, proxies={"http": proxy} if proxy else None,
                 connect_timeout=5, read_timeout=20)
    c = boto3.client(service, endpoint_url=e.endpoint, region_name=REGION,
                     aws_access_key_id=akid, aws_secret_access_key=secret,
                     aws_session_token=token, config=cfg)
    # Keep the last raw HTTP response: botocore cannot parse the proxy's JSON
    # errors for XML services, and raises without a status then.
    sess = c._endpoint.http_session
    send = sess.send

    def keep(request):
        c.last_response = send(request)
        return c.last_response
    sess.send = keep
    return c


def call(fn):
    """(result, None) or (None, the exception: ClientError or another)."""
    try:
        return fn(), None
    except Exception as ex:  # noqa: BLE001 - any failure is reported, the run goes on
        return None, ex


def err_of(ex):
    """(status, Secretproxy-Error, error code, message) of a botocore error."""
    if isinstance(ex, botocore.exceptions.ClientError):
        meta = ex.response.get("ResponseMetadata", {})
        return (meta.get("HTTPStatusCode"), meta.get("HTTPHeaders", {}).get("secretproxy-error"),
                ex.response.get("Error", {}).get("Code"), str(ex)[:300])
    return None, None, None, repr(ex)[:300]


def chunked_upload(e, path, data, akid, secret, token=None, proxy=None, chunk=65536,
                   trailer=False, transfer_chunked=False, corrupt=None):
    """A hand-made STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) PUT: the head
    signed by botocore, the chunk signature chain computed here with the
    given key. corrupt=i flips chunk i's signature. Returns the response."""
    mode = s3u.STREAMING_SIGNED_TRAILER if trailer else s3u.STREAMING_SIGNED

    class Streaming(S3SigV4Auth):
        def payload(self, request):
            return mode

    url = e.endpoint + path
    req = AWSRequest(method="PUT", url=url)
    req.headers["Content-Encoding"] = "aws-chunked"
    req.headers["X-Amz-Decoded-Content-Length"] = str(len(data))
    req.headers["Content-Type"] = "application/octet-stream"
    if trailer:
        req.headers["X-Amz-Trailer"] = "x-amz-checksum-crc32c"
    Streaming(Credentials(akid, secret, token), "s3", REGION).add_auth(req)
    amz_date = req.context["timestamp"]
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], REGION)
    prev = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    key = s3u.signing_key(secret, amz_date[:8], REGION, "s3")
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    out = []
    for i, p in enumerate(pieces):
        sig = s3u.hmac_hex(key, "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev,
                                           s3u.EMPTY_SHA256, hashlib.sha256(p).hexdigest()]))
        prev = sig
        if corrupt == i:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        out.append(b"%x;chunk-signature=%s\r\n%s" % (len(p), sig.encode(), p))
        out.append(b"\r\n" if p or not trailer else b"")
    if trailer:
        line = "x-amz-checksum-crc32c:%s" % s3u.checksum_b64("crc32c", data)
        tsig = s3u.hmac_hex(key, "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                                            hashlib.sha256((line + "\n").encode()).hexdigest()]))
        out.append(("%s\r\nx-amz-trailer-signature:%s\r\n\r\n" % (line, tsig)).encode())
    headers = {k: v for k, v in req.headers.items()}
    proxies = {"http": proxy} if proxy else None
    if proxy:   # requests leaves Proxy-Authorization out of chunked requests
        u = urllib.parse.urlsplit(proxy)
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(
            ("%s:%s" % (u.username, u.password)).encode()).decode()
    body = iter(out) if transfer_chunked else b"".join(out)
    return requests.put(url, data=body, headers=headers, proxies=proxies, timeout=30)


def node_ready():
    """Installs tests/e2e's Node packages if missing; None or why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    need = [os.path.join(HERE, "node_modules", p, "package.json")
            for p in ("@aws-sdk/client-s3", "http-proxy-agent")]
    if not node or not npm:
        return "node or npm not on PATH"
    if not all(map(os.path.exists, need)):
        try:
            c = subprocess.run([npm, "install", "--prefix", HERE, "--no-audit", "--no-fund",
                                "--no-package-lock"], capture_output=True, text=True,
                               timeout=300)
            if c.returncode != 0 or not all(map(os.path.exists, need)):
                return "npm install failed (%d): %s" % (c.returncode, c.stderr.strip()[-300:])
        except (OSError, subprocess.TimeoutExpired) as ex:
            return "npm install failed: %s" % ex
    return None


def js_sdk(e, ops, akid, secret, token=None, proxy=None, bucket="jsbucket"):
    arg = {"endpoint": e.endpoint, "access_key_id": akid, "secret_access_key": secret,
           "region": REGION, "bucket": bucket, "ops": ops}
    if token:
        arg["session_token"] = token
    if proxy:
        arg["proxy"] = proxy
    c = subprocess.run(["node", os.path.join(HERE, "aws_sdk_s3.js"), json.dumps(arg)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NODE_NO_WARNINGS="1"))
    try:
        return json.loads(c.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"results": [], "error": "node exit %d: %s %s" % (c.returncode, c.stdout[-300:],
                                                                 c.stderr[-500:])}


# ---- what the upstream saw ---------------------------------------------------

def hdr(rec, name):
    return [v for k, v in rec.get("headers", []) if k.lower() == name]


def problems(rec, cred):
    """Why rec is not a request correctly re-signed with cred (empty if it is)."""
    out = []
    if not rec.get("verified"):
        out.append("not verified: %d %s" % (rec.get("status", 0), rec.get("error")))
    if rec.get("access_key_id") != cred["access_key_id"]:
        out.append("key id %r" % rec.get("access_key_id"))
    token = hdr(rec, "x-amz-security-token") if rec.get("auth") == "header" else \
        [v for k, v in urllib.parse.parse_qsl(rec.get("query", "")) if k == "X-Amz-Security-Token"]
    want = [cred["session_token"]] if cred.get("session_token") else []
    if token != want:
        out.append("security token %s" % ("absent" if not token else "not the real one"
                                           if token[0] != DUMMY_TOKEN else "is the dummy"))
    if rec.get("auth") == "header" and token and \
            "x-amz-security-token" not in rec.get("signed_headers", "").split(";"):
        out.append("X-Amz-Security-Token is not signed")
    wire = json.dumps(rec)
    for bad in REF_TEXT + (DUMMY_SECRET, DUMMY_TOKEN):
        if bad in wire or urllib.parse.quote(bad, safe="") in wire:
            out.append("the upstream saw %r" % bad)
    return out


class Checker:
    def __init__(self, res, e):
        self.res, self.e = res, e
        self.mark = len(e.recs())

    def since(self):
        recs = self.e.recs()
        new, self.mark = recs[self.mark:], len(recs)
        return new

    def upstream(self, what, cred, n=None, **want):
        """Every request since the last call verified with cred; n of them;
        each has the fields in want (e.g. payload=...)."""
        recs = self.since()
        self.res.check(recs and (n is None or len(recs) == n),
                       "%s: %s request(s) reached the upstream (want %s)"
                       % (what, len(recs), n or "some"))
        for rec in recs:
            p = problems(rec, cred)
            for k, v in want.items():
                if rec.get(k) != v:
                    p.append("%s=%r, want %r" % (k, rec.get(k), v))
            self.res.check(not p, "%s: %s %s: %s" % (what, rec.get("method"),
                                                    rec.get("target", "")[:90], "; ".join(p)))
        return recs

    def ok(self, what, result, ex, cond=True):
        self.res.check(ex is None and cond, "%s: %s" % (
            what, "unexpected result %r" % (result,) if ex is None else "%s %s %s %s"
            % err_of(ex)))


# ---- 1. control: straight to the upstream ------------------------------------

def control(res, e, js_skip):
    ck = Checker(res, e)
    s3 = client(e, "s3", PROD["access_key_id"], PROD["secret_access_key"])
    r, ex = call(lambda: (s3.create_bucket(Bucket="ctl"),
                          s3.put_object(Bucket="ctl", Key="a b+c~.txt", Body=b"hello",
                                        Metadata={"owner": "ctl"}),
                          s3.get_object(Bucket="ctl", Key="a b+c~.txt")["Body"].read(),
                          s3.head_object(Bucket="ctl", Key="a b+c~.txt")["ContentLength"],
                          [o["Key"] for o in s3.list_objects_v2(Bucket="ctl")["Contents"]],
                          s3.delete_object(Bucket="ctl", Key="a b+c~.txt")))
    ck.ok("control: boto3 S3 with the real key", r, ex,
          r and r[2] == b"hello" and r[3] == 5 and r[4] == ["a b+c~.txt"])
    ck.upstream("control: boto3 S3", PROD, 6)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "ctl", "Key": "nope"},
                                    ExpiresIn=60)
    r = requests.get(url, timeout=10)
    res.check(r.status_code == 404 and b"NoSuchKey" in r.content,
              "control: presigned URL verified (%d %r)" % (r.status_code, r.content[:120]))
    ck.upstream("control: presigned URL", PROD, 1, auth="query")
    tmp = client(e, "s3", TEMP["access_key_id"], TEMP["secret_access_key"],
                 TEMP["session_token"], unsigned=True)
    r, ex = call(lambda: tmp.put_object(Bucket="ctl", Key="t", Body=b"tok"))
    ck.ok("control: session token + UNSIGNED-PAYLOAD", r, ex)
    ck.upstream("control: session token + UNSIGNED-PAYLOAD", TEMP, 1, payload="UNSIGNED-PAYLOAD")
    sts = client(e, "sts", PROD["access_key_id"], PROD["secret_access_key"])
    r, ex = call(lambda: sts.get_caller_identity()["Account"])
    ck.ok("control: STS GetCallerIdentity", r, ex, r == "123456789012")
    lam = client(e, "lambda", PROD["access_key_id"], PROD["secret_access_key"])
    r, ex = call(lambda: json.loads(lam.invoke(FunctionName="my-fn:v1", Payload=b"{}")
                                    ["Payload"].read()))
    ck.ok("control: Lambda Invoke (a ':' in the path)", r, ex,
          r and r.get("function") == "my-fn:v1")
    ck.upstream("control: STS and Lambda", PROD, 2)
    data = os.urandom(150000)
    for trailer in (False, True):
        r = chunked_upload(e, "/ctl/chunked", data, PROD["access_key_id"],
                           PROD["secret_access_key"], trailer=trailer)
        res.check(r.status_code == 200, "control: aws-chunked (trailer=%s) verified: %d %s"
                  % (trailer, r.status_code, r.text[:300]))
        ck.upstream("control: aws-chunked", PROD, 1, chunks=4, decoded_len=len(data),
                    decoded_sha256=hashlib.sha256(data).hexdigest())

    # The verifier refuses what it must.
    def refused(what, status, code, fn):
        r = fn()
        if hasattr(r, "status_code"):
            got = (r.status_code, r.text)
        else:
            st, _, c, msg = err_of(r)
            got = (st, "<Code>%s</Code> %s" % (c, msg))
        res.check(got[0] == status and ("<Code>%s</Code>" % code) in got[1],
                  "control: %s -> %d %s (got %s %s)" % (what, status, code, got[0],
                                                         got[1][:200]))
        recs = ck.since()
        res.check(recs and not recs[-1].get("verified"), "control: %s is not verified" % what)

    bad = client(e, "s3", PROD["access_key_id"], "wrong" + PROD["secret_access_key"])
    refused("a wrong secret key", 403, "SignatureDoesNotMatch",
            lambda: call(lambda: bad.put_object(Bucket="ctl", Key="x", Body=b"x"))[1])
    refused("a wrong secret key (STS)", 403, "SignatureDoesNotMatch",
            lambda: call(lambda: client(e, "sts", PROD["access_key_id"], "wrong")
                         .get_caller_identity())[1])
    refused("an unknown key id", 403, "InvalidAccessKeyId",
            lambda: call(lambda: client(e, "s3", "AKIAUNKNOWN", "x").list_objects_v2(
                Bucket="ctl"))[1])
    refused("a wrong session token", 403, "InvalidToken",
            lambda: call(lambda: client(e, "s3", TEMP["access_key_id"],
                                        TEMP["secret_access_key"], "wrong").list_objects_v2(
                Bucket="ctl"))[1])
    refused("a token with a key that has none", 403, "InvalidToken",
            lambda: call(lambda: client(e, "s3", PROD["access_key_id"],
                                        PROD["secret_access_key"], "control-token")
                         .list_objects_v2(
                Bucket="ctl"))[1])
    refused("a tampered presigned URL", 403, "SignatureDoesNotMatch",
            lambda: requests.get(url.replace("ctl/nope", "ctl/nop2"), timeout=10))
    old = client(e, "s3", PROD["access_key_id"], PROD["secret_access_key"])
    exp = old.generate_presigned_url("get_object", Params={"Bucket": "ctl", "Key": "x"},
                                     ExpiresIn=1)
    time.sleep(1.5)
    refused("an expired presigned URL", 403, "AccessDenied",
            lambda: requests.get(exp, timeout=10))
    refused("a wrong chunk signature", 403, "SignatureDoesNotMatch",
            lambda: chunked_upload(e, "/ctl/c2", data, PROD["access_key_id"],
                                   PROD["secret_access_key"], corrupt=2))
    refused("a wrong final chunk signature", 403, "SignatureDoesNotMatch",
            lambda: chunked_upload(e, "/ctl/c2", data, PROD["access_key_id"],
                                   PROD["secret_access_key"], corrupt=3))

    def wrong_hash():
        req = AWSRequest(method="PUT", url=e.endpoint + "/ctl/h", data=b"body")
        S3SigV4Auth(Credentials(PROD["access_key_id"], PROD["secret_access_key"]), "s3",
                    REGION).add_auth(req)
        return requests.put(req.url, data=b"bodY", headers=dict(req.headers.items()),
                            timeout=10)
    refused("a body that is not the signed hash", 400, "XAmzContentSHA256Mismatch", wrong_hash)

    if js_skip:
        return
    out = js_sdk(e, [{"op": "put", "key": "k.txt", "body": "hello js"},
                     {"op": "put_stream", "key": "s.bin", "body": "z" * 20000},
                     {"op": "get", "key": "s.bin"}, {"op": "list"}], PROD["access_key_id"],
                 PROD["secret_access_key"], bucket="ctl")
    rs = out.get("results", [])
    res.check(len(rs) == 4 and all(x.get("ok") for x in rs) and rs[2].get("body") == "z" * 20000,
              "control: the JavaScript SDK with the real key: %s" % json.dumps(out)[:600])
    recs = ck.upstream("control: the JavaScript SDK", PROD, 4)
    if len(recs) == 4:
        print("info: @aws-sdk/client-s3 %s sends x-amz-content-sha256: put %s, put (stream) %s "
              "(trailers %s), get %s" % (out.get("sdk"), recs[0].get("payload"),
                                         recs[1].get("payload"), recs[1].get("trailers"),
                                         recs[2].get("payload")))


# ---- 2. through the proxy ------------------------------------------------------

def through_proxy(res, e, px, js_skip, tok_ref):
    ck = Checker(res, e)
    ref = "$Secret{AWS_PROD}"
    s3 = client(e, "s3", ref, DUMMY_SECRET, proxy=px)
    body = b"object bytes " * 100
    r, ex = call(lambda: s3.create_bucket(Bucket="px"))
    ck.ok("boto3 CreateBucket via the proxy", r, ex)
    r, ex = call(lambda: s3.put_object(Bucket="px", Key="dir/a b+c~.txt", Body=body,
                                       ContentType="text/plain", Metadata={"owner": "me"}))
    ck.ok("boto3 PutObject via the proxy", r, ex)
    r, ex = call(lambda: s3.get_object(Bucket="px", Key="dir/a b+c~.txt")["Body"].read())
    ck.ok("boto3 GetObject via the proxy returns the object", r, ex, r == body)
    r, ex = call(lambda: s3.head_object(Bucket="px", Key="dir/a b+c~.txt")["ContentLength"])
    ck.ok("boto3 HeadObject via the proxy", r, ex, r == len(body))
    r, ex = call(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket="px", Prefix="dir/")
                          .get("Contents", [])])
    ck.ok("boto3 ListObjectsV2 via the proxy", r, ex, r == ["dir/a b+c~.txt"])
    r, ex = call(lambda: s3.delete_object(Bucket="px", Key="dir/a b+c~.txt"))
    ck.ok("boto3 DeleteObject via the proxy", r, ex)
    r, ex = call(lambda: s3.get_object(Bucket="px", Key="dir/a b+c~.txt"))
    res.check(err_of(ex)[0] == 404 and err_of(ex)[2] == "NoSuchKey",
              "boto3 GetObject after delete: the upstream's signed 404 NoSuchKey (%s)"
              % (err_of(ex),))
    recs = ck.upstream("boto3 S3 with $Secret{AWS_PROD}", PROD, 7)
    res.check([x.get("payload", "")[:3] for x in recs[1:2]] == [
        hashlib.sha256(body).hexdigest()[:3]],
        "boto3 1.29 over http sends a hex X-Amz-Content-Sha256 for PutObject")

    # multipart
    part1, part2 = os.urandom(70000), os.urandom(30000)

    def multipart():
        up = s3.create_multipart_upload(Bucket="px", Key="mp.bin")["UploadId"]
        e1 = s3.upload_part(Bucket="px", Key="mp.bin", UploadId=up, PartNumber=1,
                            Body=part1)["ETag"]
        e2 = s3.upload_part(Bucket="px", Key="mp.bin", UploadId=up, PartNumber=2,
                            Body=part2)["ETag"]
        s3.complete_multipart_upload(Bucket="px", Key="mp.bin", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        return s3.get_object(Bucket="px", Key="mp.bin")["Body"].read()
    r, ex = call(multipart)
    ck.ok("boto3 multipart upload (2 parts) via the proxy", r, ex, r == part1 + part2)
    ck.upstream("boto3 multipart upload", PROD, 5)

    # presigned URLs, fetched with requests through the proxy
    for name, cred, tok in (("AWS_PROD", PROD, None), ("AWS_TEMP", TEMP, DUMMY_TOKEN)):
        ps = client(e, "s3", "$Secret{%s}" % name, DUMMY_SECRET, tok)
        url = ps.generate_presigned_url("get_object", Params={"Bucket": "px", "Key": "mp.bin"},
                                        ExpiresIn=300)
        r = requests.get(url, proxies={"http": px}, timeout=20)
        res.check(r.status_code == 200 and r.content == part1 + part2,
                  "presigned GET with $Secret{%s}%s via the proxy: %d %s %s" % (
                      name, " and a dummy token" if tok else "", r.status_code,
                      r.headers.get("Secretproxy-Error"), r.text[:300]))
        ck.upstream("presigned GET with $Secret{%s}" % name, cred, 1, auth="query")

    # session token: the secret's token replaces the SDK's dummy token
    tmp = client(e, "s3", "$Secret{AWS_TEMP}", DUMMY_SECRET, DUMMY_TOKEN, proxy=px)
    r, ex = call(lambda: (tmp.put_object(Bucket="px", Key="temp.txt", Body=b"temp"),
                          tmp.get_object(Bucket="px", Key="temp.txt")["Body"].read())[1])
    ck.ok("boto3 with a session-token secret and a dummy token", r, ex, r == b"temp")
    ck.upstream("session token replaced", TEMP, 2)
    # a dummy token with a secret that has none: dropped
    r, ex = call(lambda: client(e, "s3", ref, DUMMY_SECRET, DUMMY_TOKEN, proxy=px)
                 .head_object(Bucket="px", Key="temp.txt"))
    ck.ok("boto3 with a dummy token, secret without a token", r, ex)
    ck.upstream("dummy token dropped", PROD, 1)

    # UNSIGNED-PAYLOAD kept
    uns = client(e, "s3", ref, DUMMY_SECRET, proxy=px, unsigned=True)
    r, ex = call(lambda: uns.put_object(Bucket="px", Key="unsigned.txt", Body=b"unsigned body"))
    ck.ok("boto3 PutObject with UNSIGNED-PAYLOAD via the proxy", r, ex)
    ck.upstream("UNSIGNED-PAYLOAD", PROD, 1, payload="UNSIGNED-PAYLOAD")

    # $secret: and $Token{} as the key id
    for what, akid in (("$secret: token", tok_ref), ("$Token{AWS_PROD}", "$Token{AWS_PROD}")):
        c = client(e, "s3", akid, DUMMY_SECRET, proxy=px)
        body = what.replace("$", "").encode()
        r, ex = call(lambda: (c.put_object(Bucket="px", Key="ref.txt", Body=body),
                              c.get_object(Bucket="px", Key="ref.txt")["Body"].read())[1])
        ck.ok("boto3 with a %s reference as the key id" % what, r, ex, r == body)
        ck.upstream("key id %s" % what, PROD, 2)

    # A reference in the body and in a signed header: substituted, the hex
    # X-Amz-Content-Sha256 recomputed. First signed by hand (no Content-MD5),
    # then by boto3, whose PutObject also sends a Content-MD5 of the body.
    sub = b"token=$Secret{PLAIN}&n=1"
    real = sub.replace(b"$Secret{PLAIN}", PLAIN.encode())
    req = AWSRequest(method="PUT", url=e.endpoint + "/px/sub.txt", data=sub)
    req.headers["Content-Type"] = "application/octet-stream"
    req.headers["X-Amz-Meta-K"] = "$Secret{PLAIN}"
    S3SigV4Auth(Credentials(ref, DUMMY_SECRET), "s3", REGION).add_auth(req)
    r = requests.put(req.url, data=sub, headers=dict(req.headers.items()),
                     proxies={"http": px}, timeout=10)
    res.check(r.status_code == 200, "PutObject with references in the body and a signed "
              "header: %d %s %s" % (r.status_code, r.headers.get("Secretproxy-Error"),
                                    r.text[:300]))
    for what, with_md5 in (("by hand", False), ("by boto3, with Content-MD5", True)):
        if with_md5:
            r, ex = call(lambda: s3.put_object(Bucket="px", Key="sub.txt", Body=sub,
                                               ContentType="application/octet-stream",
                                               Metadata={"k": "$Secret{PLAIN}"}))
            ck.ok("boto3 PutObject with references in the body and a header (boto3 sends "
                  "Content-MD5 of the body it signed)", r, ex)
        recs = ck.upstream("body and header substituted (%s)" % what, PROD, 1,
                           payload=hashlib.sha256(real).hexdigest(), body_len=len(real),
                           body_sha256=hashlib.sha256(real).hexdigest())
        res.check(recs and hdr(recs[0], "x-amz-meta-k") == [PLAIN] and
                  "x-amz-meta-k" in recs[0].get("signed_headers", "").split(";"),
                  "the substituted x-amz-meta-k header is signed and holds the value (%s)"
                  % what)
        md5 = hdr(recs[0], "content-md5") if recs else None
        res.check(md5 == ([base64.b64encode(hashlib.md5(real).digest()).decode()]
                          if with_md5 else []),
                  "Content-MD5 (%s) is that of the substituted body: %r" % (what, md5))

    # non-S3: STS (query protocol, form body) and Lambda (a ':' in the path)
    sts = client(e, "sts", ref, DUMMY_SECRET, proxy=px)
    r, ex = call(lambda: sts.get_caller_identity()["Account"])
    ck.ok("boto3 STS GetCallerIdentity via the proxy", r, ex, r == "123456789012")
    lam = client(e, "lambda", ref, DUMMY_SECRET, proxy=px)
    r, ex = call(lambda: json.loads(lam.invoke(FunctionName="my-fn:v1", Payload=b'{"a": 1}')
                                    ["Payload"].read()))
    ck.ok("boto3 Lambda Invoke (double-encoded path) via the proxy", r, ex,
          r and r.get("function") == "my-fn:v1")
    ck.upstream("STS and Lambda", PROD, 2)
    tsts = client(e, "sts", "$Secret{AWS_TEMP}", DUMMY_SECRET, DUMMY_TOKEN, proxy=px)
    r, ex = call(lambda: tsts.get_caller_identity()["Account"])
    ck.ok("boto3 STS with a session-token secret via the proxy", r, ex, r == "123456789012")
    ck.upstream("STS with a session token", TEMP, 1)

    # aws-chunked, signed chunk by chunk, re-signed by the proxy
    data = os.urandom(200000)
    for what, kw in (("Content-Length", {}), ("Transfer-Encoding: chunked",
                                              {"transfer_chunked": True}),
                     ("with a signed trailer", {"trailer": True}),
                     ("with a session token", {"akid": "$Secret{AWS_TEMP}",
                                               "token": DUMMY_TOKEN, "chunk": 8192})):
        akid = kw.pop("akid", ref)
        cred = TEMP if akid.endswith("{AWS_TEMP}") else PROD
        size = kw.get("chunk", 65536)
        r = chunked_upload(e, "/px/chunked.bin", data, akid, DUMMY_SECRET, proxy=px, **kw)
        res.check(r.status_code == 200, "aws-chunked upload (%s) via the proxy: %d %s %s"
                  % (what, r.status_code, r.headers.get("Secretproxy-Error"), r.text[:300]))
        ck.upstream("aws-chunked (%s)" % what, cred, 1,
                    chunks=-(-len(data) // size) + 1, decoded_len=len(data),
                    decoded_sha256=hashlib.sha256(data).hexdigest())
    r, ex = call(lambda: s3.get_object(Bucket="px", Key="chunked.bin")["Body"].read())
    ck.ok("the aws-chunked object reads back whole", r, ex, r == data)
    ck.since()
    # Streamed chunk by chunk, never buffered whole: larger than
    # proxy.max_body_size (10 MiB), which a buffered body could not pass.
    big = os.urandom(12 << 20)
    for what, kw in (("Content-Length", {}), ("Transfer-Encoding: chunked",
                                              {"transfer_chunked": True})):
        r = chunked_upload(e, "/px/big.bin", big, ref, DUMMY_SECRET, proxy=px, chunk=1 << 20,
                           **kw)
        res.check(r.status_code == 200,
                  "a 12 MiB aws-chunked upload (%s, over proxy.max_body_size) streams through: "
                  "%d %s %s" % (what, r.status_code, r.headers.get("Secretproxy-Error"),
                                r.text[:200]))
        ck.upstream("aws-chunked 12 MiB (%s)" % what, PROD, 1, chunks=13, decoded_len=len(big),
                    decoded_sha256=hashlib.sha256(big).hexdigest())
    big = None
    # A reference inside an aws-chunked body: substituted (and the chunks
    # signed anew) or refused, never forwarded as it is (DESIGN §2, fail closed).
    data = b"a" * 70000 + b"token=$Secret{PLAIN};" + b"b" * 1000
    real = data.replace(b"$Secret{PLAIN}", PLAIN.encode())
    r = chunked_upload(e, "/px/refbody.bin", data, ref, DUMMY_SECRET, proxy=px)
    recs = ck.since()
    if recs:
        res.check(r.status_code == 200 and recs[0].get("verified") and
                  recs[0].get("decoded_sha256") == hashlib.sha256(real).hexdigest(),
                  "a reference inside an aws-chunked body reached the upstream: it must be "
                  "substituted and the chunks re-signed (got %d, upstream %s %s, body %s)"
                  % (r.status_code, recs[0].get("status"), recs[0].get("error"),
                     "as sent, reference included" if recs[0].get("decoded_sha256") ==
                     hashlib.sha256(data).hexdigest() else "changed"))
    else:
        res.check(400 <= r.status_code < 500 and r.headers.get("Secretproxy-Error"),
                  "a reference inside an aws-chunked body is refused: %d %s %s"
                  % (r.status_code, r.headers.get("Secretproxy-Error"), r.text[:200]))

    # a key id that is not a reference: passed through untouched
    req = AWSRequest(method="GET", url=e.endpoint + "/px?list-type=2&prefix=temp")
    S3SigV4Auth(Credentials(PROD["access_key_id"], PROD["secret_access_key"]), "s3",
                REGION).add_auth(req)
    r = requests.get(req.url, headers=dict(req.headers.items()), proxies={"http": px},
                     timeout=10)
    res.check(r.status_code == 200, "a real-key request via the proxy: %d %s"
              % (r.status_code, r.text[:200]))
    recs = ck.since()
    res.check(len(recs) == 1 and recs[0].get("verified") and
              hdr(recs[0], "authorization") == [req.headers["Authorization"]] and
              hdr(recs[0], "x-amz-date") == [req.headers["X-Amz-Date"]],
              "an AWS4 Authorization whose key id is no reference passes through untouched")

    if js_skip:
        return
    s = "js body " * 500
    big = "".join(chr(97 + i % 26) for i in range(50000))
    for what, akid, cred, token in (("$Secret{AWS_PROD}", ref, PROD, None),
                                    ("$Secret{AWS_TEMP}", "$Secret{AWS_TEMP}", TEMP,
                                     DUMMY_TOKEN)):
        out = js_sdk(e, [{"op": "put", "key": "js/a.txt", "body": s},
                         {"op": "put_stream", "key": "js/s.bin", "body": big},
                         {"op": "get", "key": "js/s.bin"}, {"op": "get", "key": "js/a.txt"},
                         {"op": "list", "prefix": "js/"}, {"op": "head", "key": "js/a.txt"},
                         {"op": "delete", "key": "js/a.txt"}],
                     akid, DUMMY_SECRET, token, px, bucket="px")
        rs = {(x["op"], x.get("key")): x for x in out.get("results", [])}
        for op in out.get("results", []):
            res.check(op.get("ok"), "JS SDK %s with %s via the proxy: %s" % (
                op["op"], what, json.dumps(op)[:400]))
        res.check(len(rs) == 7, "JS SDK with %s: every operation ran (%s)"
                  % (what, json.dumps(out)[:300]))
        res.check(rs.get(("get", "js/s.bin"), {}).get("body") == big and
                  rs.get(("get", "js/a.txt"), {}).get("body") == s and
                  rs.get(("list", None), {}).get("keys") == ["js/a.txt", "js/s.bin"],
                  "JS SDK with %s: the objects read back and list" % what)
        recs = ck.upstream("JS SDK with %s" % what, cred, 7)
        if len(recs) == 7:
            res.check(recs[1].get("payload") == s3u.STREAMING_UNSIGNED_TRAILER and
                      recs[1].get("trailers", [""])[0].startswith("x-amz-checksum-"),
                      "JS SDK stream upload is STREAMING-UNSIGNED-PAYLOAD-TRAILER with a "
                      "checksum trailer (got %s %s)" % (recs[1].get("payload"),
                                                        recs[1].get("trailers")))


# ---- 3. refusals --------------------------------------------------------------

def refusals(res, e, px, key):
    ck = Checker(res, e)

    def refused(what, status, code, fn):
        r = fn()   # a requests or a botocore response, or None
        got = (getattr(r, "status_code", None),
               r.headers.get("Secretproxy-Error") if r is not None else None,
               r.content.decode(errors="replace")[:200] if r is not None else "no response")
        res.check(got[:2] == (status, code), "%s -> %d %s (got %s %s %s)"
                  % (what, status, code, *got))
        res.check(not ck.since(), "%s: nothing reached the upstream" % what)
        res.check(CANARY not in got[2], "%s: no value in the error" % what)

    def boto(akid, fn=lambda c: c.list_objects_v2(Bucket="px"), proxy=px, service="s3"):
        def run():
            c = client(e, service, akid, DUMMY_SECRET, proxy=proxy)
            call(lambda: fn(c))
            return getattr(c, "last_response", None)
        return run

    refused("a non-aws secret as the key id", 400, "secret_type_mismatch", boto("$Secret{PLAIN}"))
    refused("a non-aws secret as the key id (STS)", 400, "secret_type_mismatch",
            boto("$Secret{PLAIN}", lambda c: c.get_caller_identity(), service="sts"))
    refused("an unknown reference as the key id", 404, "secret_not_found",
            boto("$Secret{NOPE_AWS}"))
    refused("an aws secret bound to another host", 403, "secret_host_denied",
            boto("$Secret{AWS_BOUND}"))
    refused("an unknown $secret: token as the key id", 400, "reference_invalid",
            boto("$secret:" + "A" * 43))
    refused("a revoked aws secret", 403, "secret_revoked", boto("$Secret{AWS_REVOKED}"))
    refused("no proxy key", 407, "proxy_auth_required",
            boto("$Secret{AWS_PROD}", proxy="http://127.0.0.1:%d" % e.proxy_port))
    ps = client(e, "s3", "$Secret{NOPE_AWS}", DUMMY_SECRET)
    url = ps.generate_presigned_url("get_object", Params={"Bucket": "px", "Key": "mp.bin"})
    refused("a presigned URL with an unknown reference", 404, "secret_not_found",
            lambda: requests.get(url, proxies={"http": px}, timeout=10))
    ps = client(e, "s3", "$Secret{PLAIN}", DUMMY_SECRET)
    url = ps.generate_presigned_url("get_object", Params={"Bucket": "px", "Key": "mp.bin"})
    refused("a presigned URL with a non-aws secret", 400, "secret_type_mismatch",
            lambda: requests.get(url, proxies={"http": px}, timeout=10))
    refused("an aws-chunked upload with a non-aws secret", 400, "secret_type_mismatch",
            lambda: chunked_upload(e, "/px/no", b"x" * 1000, "$Secret{PLAIN}", DUMMY_SECRET,
                                   proxy=px))

    # An aws secret anywhere but a SigV4 key id would go out as its JSON text,
    # secret access key included: it must be refused, never sent. boto3 1.29
    # presigns S3 URLs with SigV2 (AWSAccessKeyId=...) unless told s3v4.
    v2 = boto3.client("s3", endpoint_url=e.endpoint, region_name=REGION,
                      aws_access_key_id="$Secret{AWS_PROD}", aws_secret_access_key=DUMMY_SECRET,
                      config=Config(s3={"addressing_style": "path"}))
    v2url = v2.generate_presigned_url("get_object", Params={"Bucket": "px", "Key": "mp.bin"})
    for what, fn in (("a SigV2 presigned URL (boto3's default) with an aws secret",
                      lambda: requests.get(v2url, proxies={"http": px}, timeout=10)),
                     ("an aws secret in a plain header",
                      lambda: requests.get(e.endpoint + "/px", proxies={"http": px}, timeout=10,
                                           headers={"X-Api-Key": "$Secret{AWS_PROD}"}))):
        r = fn()
        recs = ck.since()
        sent = [f for f in value_forms(PROD["secret_access_key"]) if f in json.dumps(recs)]
        res.check(not sent, "%s: the secret access key never goes upstream (%d request(s) "
                  "reached it, holding %d form(s) of the key)" % (what, len(recs), len(sent)))
        res.check(not recs and 400 <= r.status_code < 500 and
                  r.headers.get("Secretproxy-Error"), "%s is refused: %d %s %s"
                  % (what, r.status_code, r.headers.get("Secretproxy-Error"), r.text[:150]))


# ---- 4. leaks -------------------------------------------------------------------

def value_forms(v):
    return {v, urllib.parse.quote(v, safe=""), base64.b64encode(v.encode()).decode()[:-4],
            json.dumps(v)[1:-1]}


def leaks(res, e, tok_ref):
    real = {"PROD key id": PROD["access_key_id"], "PROD secret": PROD["secret_access_key"],
            "TEMP key id": TEMP["access_key_id"], "TEMP secret": TEMP["secret_access_key"],
            "TEMP token": TEMP["session_token"], "PLAIN": PLAIN}
    rc = Redis(e.redis_port)
    audit = rc.cmd("XRANGE", "sp:{default}:audit", "-", "+") or []
    blob = json.dumps([[x.decode(errors="replace") if isinstance(x, bytes) else str(x)
                        for x in _flat(ev)] for ev in audit])
    res.check(len(audit) > 0, "the audit stream sp:{default}:audit has events (%d)" % len(audit))
    every = []
    cursor = b"0"
    while True:
        cursor, keys = rc.cmd("SCAN", cursor, "COUNT", 1000)
        every.extend(keys)
        if cursor == b"0":
            break
    dump = []
    for k in every:
        t = rc.cmd("TYPE", k)
        v = rc.cmd("GET", k) if t == b"string" else rc.cmd("HGETALL", k) if t == b"hash" \
            else rc.cmd("XRANGE", k, "-", "+") if t == b"stream" else []
        dump.extend(x if isinstance(x, bytes) else str(x).encode() for x in _flat([k, v]))
    dump = b"\n".join(dump)
    rc.close()
    e.proc.terminate()
    try:
        code = e.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
    res.check(code == 0, "SIGTERM drains and exits 0 (%r)" % code)
    log = open(e.log, errors="replace").read() if os.path.exists(e.log) else ""
    out = open(e.out_file, errors="replace").read()
    res.check(log.count("\n") > 20 and "AWS_PROD" in log and "AWS_TEMP" in log,
              "the proxy's log names the aws secrets it used (%d lines)" % log.count("\n"))
    for name, v in real.items():
        for where, text in (("the log", log), ("the process output", out),
                            ("the audit stream", blob)):
            bad = [f for f in value_forms(v) if f in text]
            res.check(not bad, "%s holds no form of %s (found %r)" % (where, name, bad[:1]))
        res.check(v.encode() not in dump, "Redis holds no plaintext %s" % name)
    res.check(tok_ref.split(":", 1)[1] not in log + out, "the log holds no $secret: token")
    recs = e.recs()
    wire = json.dumps(recs)
    for bad in REF_TEXT + (DUMMY_SECRET, DUMMY_TOKEN):
        res.check(bad not in wire, "no request the upstream received holds %r" % bad)
    for name in ("PROD secret", "TEMP secret"):
        bad = [f for f in value_forms(real[name]) if f in wire]
        res.check(not bad, "no request the upstream received holds the %s" % name)


def _flat(v):
    if isinstance(v, list):
        for x in v:
            yield from _flat(x)
    elif v is not None:
        yield v


def main():
    for k in list(os.environ):   # boto3, requests and Node go where they are told only
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") or \
                k.startswith("AWS_"):
            del os.environ[k]
    res = spt.Results()
    e = Env()
    print("info: logs and records in %s" % e.d)
    js_skip = node_ready()
    if js_skip:
        print("SKIP: the AWS SDK for JavaScript part: %s" % js_skip)
    e.secret("AWS_PROD", json.dumps(PROD), type="aws")
    e.secret("AWS_TEMP", json.dumps(TEMP), type="aws")
    e.secret("AWS_BOUND", json.dumps(BOUND), type="aws", hosts=["other.example"])
    e.secret("PLAIN", PLAIN, type="api")
    e.secret("AWS_REVOKED", json.dumps(PROD), type="aws")
    r = requests.post(e.api + "/v1/secrets/AWS_REVOKED/revoke", headers=e.auth())
    assert r.status_code == 200, r.text
    tok_ref = requests.get(e.api + "/v1/secrets/AWS_PROD", headers=e.auth()).json()["reference"]
    key = e.proxy_key()
    px = "http://x:%s@127.0.0.1:%d" % (key, e.proxy_port)

    t0 = time.time()
    control(res, e, js_skip)
    t1 = time.time()
    through_proxy(res, e, px, js_skip, tok_ref)
    t2 = time.time()
    refusals(res, e, px, key)
    leaks(res, e, tok_ref)
    print("info: control %.1fs, proxy %.1fs, refusals and leaks %.1fs"
          % (t1 - t0, t2 - t1, time.time() - t2))
    res.finish()


if __name__ == "__main__":
    spt.run(main)
