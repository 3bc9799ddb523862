#!/usr/bin/python3
"""s3_upstream.py - a small S3 (and STS, and Lambda Invoke) that checks every
request's AWS SigV4 signature with the REAL credentials, for secretproxy's
re-signing tests (tests/e2e/test_sigv4_proxy.py).

Python 3 standard library plus botocore (Debian's python3-botocore). The
HTTP framing (keep-alive, Content-Length, Transfer-Encoding: chunked,
Expect: 100-continue) and the throw-away certificates come from
upstream_server.py. Starts a plain HTTP and an HTTPS listener on free
loopback ports and prints one JSON line on stdout when both are ready:

    {"http_port": N, "https_port": M, "ca_file": "...", "pid": P}

usage: s3_upstream.py --creds FILE [--record FILE] [--exit-on-stdin-eof]

  --creds FILE   JSON list of {"access_key_id", "secret_access_key",
                 "session_token"?}: the only keys this upstream accepts.
  --record FILE  every request, as one JSON line: method, target, path,
                 query, headers (as received, in order), body_len,
                 body_sha256, decoded_len/decoded_sha256 (aws-chunked
                 bodies), auth (header|query|none), access_key_id, service,
                 region, signed_headers, payload (the X-Amz-Content-Sha256
                 kind), chunks (aws-chunked chunks whose signature checked),
                 trailers, verified, status, error (code, message).

Signature checks, all with an independent signer (botocore's SigV4Auth /
S3SigV4Auth canonical request, string to sign and signing key; the chunk
and trailer chains per the S3 streaming documentation):
  - header signatures (Authorization: AWS4-HMAC-SHA256 ...) and presigned
    URLs (X-Amz-Credential ... X-Amz-Signature, X-Amz-Expires enforced);
    the canonical request uses exactly the headers named by SignedHeaders;
  - X-Amz-Security-Token must be the session token of that access key id,
    and must be absent when the key has none;
  - X-Amz-Content-Sha256: a hex hash must equal the body's SHA-256;
    UNSIGNED-PAYLOAD is accepted; STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER)
    bodies are decoded and the seed signature and every chunk signature of
    the chain (and the trailer signature) checked;
    STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies are decoded and the trailing
    checksum checked; x-amz-decoded-content-length must match;
  - x-amz-checksum-crc32 / -crc32c / -sha1 / -sha256 (header or trailer)
    and Content-MD5 are checked against the (decoded) body.
A mismatch answers 403 (S3 XML <Error><Code>SignatureDoesNotMatch</Code>),
a request without a signature 403 AccessDenied, an unknown key id 403
InvalidAccessKeyId, a bad payload hash 400 XAmzContentSHA256Mismatch.

Services, chosen by the signature's credential scope:
  s3      path-style buckets in memory: CreateBucket, PutObject, GetObject,
          HeadObject, DeleteObject, ListObjectsV2, CreateMultipartUpload,
          UploadPart, CompleteMultipartUpload, AbortMultipartUpload
  sts     POST / with Action=GetCallerIdentity (form body) -> XML
  lambda  POST /2015-03-31/functions/NAME/invocations -> JSON
          {"function": NAME (decoded), "payload_sha256": ...}
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import signal
import shutil
import ssl
import sys
import tempfile
import threading
import time
import uuid
import zlib
from urllib.parse import quote, unquote

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upstream_server as hs  # noqa: E402  (HTTP framing and certificates)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)"
                     r"\s*,\s*Signature=([0-9a-f]{64})$")
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_SKEW = 15 * 60


class Refuse(Exception):
    """A request the verifier refuses: HTTP status, error code, message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# ---- checksums ----------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def _crc64nvme_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x9A6C9329AC4BC9B5 if c & 1 else c >> 1
        table.append(c)
    return table


CRC64NVME_TABLE = _crc64nvme_table()
CHECKSUM_HEADERS = ("x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme",
                    "x-amz-checksum-sha1", "x-amz-checksum-sha256")


def crc32c(data):
    c = 0xFFFFFFFF
    t = CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc64nvme(data):
    c = 0xFFFFFFFFFFFFFFFF
    t = CRC64NVME_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF


def checksum_b64(name, data):
    """The base64 value of x-amz-checksum-NAME for data, or None if unknown."""
    if name == "crc32":
        raw = (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    elif name == "crc32c":
        raw = crc32c(data).to_bytes(4, "big")
    elif name == "crc64nvme":
        raw = crc64nvme(data).to_bytes(8, "big")
    elif name == "sha1":
        raw = hashlib.sha1(data).digest()
    elif name == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        return None
    return base64.b64encode(raw).decode("ascii")


def check_checksum(header, value, data):
    algo = header[len("x-amz-checksum-"):]
    want = checksum_b64(algo, data)
    if want is None:
        raise Refuse(400, "InvalidRequest", "unsupported checksum algorithm %s" % algo)
    if value != want:
        raise Refuse(400, "BadDigest", "%s %s does not match the body (%s)"
                     % (header, value, want))


# ---- the verifier ---------------------------------------------------------

class Exact:
    """A botocore signer whose canonical request holds exactly the headers
    the client named in SignedHeaders, and a payload hash chosen by the
    verifier: botocore computes the canonical request, the string to sign
    and the signature."""

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in request.context["signed_names"]:
            values = request.context["received"].get(name)
            if values is None:
                raise Refuse(403, "SignatureDoesNotMatch",
                             "signed header %s is not in the request" % name)
            for v in values:
                out[name] = v
        return out

    def payload(self, request):
        return request.context["payload_hash"]


class ExactSigV4(Exact, SigV4Auth):
    pass


class ExactS3SigV4(Exact, S3SigV4Auth):
    pass


def split_query(query):
    """Decoded (name, value) pairs of a raw query string, '+' kept as is."""
    pairs = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


class Request:
    """One received request and what the verifier found out about it."""

    def __init__(self, method, target, headers, body, chunked):
        self.method, self.target, self.headers, self.body = method, target, headers, body
        self.path, _, self.query = target.partition("?")
        self.pairs = split_query(self.query)
        self.received = {}
        for k, v in headers:
            self.received.setdefault(k.lower(), []).append(v)
        self.transfer_chunked = chunked
        self.info = {"auth": "none", "verified": False}
        self.data = body          # the decoded payload (aws-chunked removed)

    def header(self, name):
        v = self.received.get(name)
        return v[0] if v else None

    def param(self, name):
        vals = [v for k, v in self.pairs if k == name]
        return vals[0] if vals else None


class Verifier:
    def __init__(self, creds):
        self.creds = {c["access_key_id"]: c for c in creds}

    def verify(self, r):
        """Checks r's signature and payload; fills r.info and r.data, raises
        Refuse on any mismatch."""
        auth = r.header("authorization")
        if auth is not None and auth.startswith("AWS4-HMAC-SHA256"):
            self._verify(r, *self._from_header(r, auth))
        elif r.param("X-Amz-Algorithm") is not None or r.param("X-Amz-Credential") is not None:
            self._verify(r, *self._from_query(r))
        else:
            raise Refuse(403, "AccessDenied", "Anonymous access is not allowed here")
        r.info["verified"] = True

    def _from_header(self, r, auth):
        m = AUTH_RE.match(auth)
        if not m:
            raise Refuse(400, "AuthorizationHeaderMalformed", "malformed Authorization")
        r.info["auth"] = "header"
        credential, signed, sig = m.groups()
        amz_date = r.header("x-amz-date")
        if amz_date is None:
            raise Refuse(403, "AccessDenied", "X-Amz-Date is missing")
        token = r.header("x-amz-security-token")
        params = list(r.pairs)
        return credential, signed, sig, amz_date, token, params, None

    def _from_query(self, r):
        r.info["auth"] = "query"
        need = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                "X-Amz-SignedHeaders", "X-Amz-Signature")
        vals = {n: r.param(n) for n in need}
        if None in vals.values() or vals["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            raise Refuse(400, "AuthorizationQueryParametersError", "incomplete presigned URL")
        sig = vals["X-Amz-Signature"]
        if not re.fullmatch(r"[0-9a-f]{64}", sig):
            raise Refuse(403, "SignatureDoesNotMatch", "malformed X-Amz-Signature")
        params = [(k, v) for k, v in r.pairs if k != "X-Amz-Signature"]
        return (vals["X-Amz-Credential"], vals["X-Amz-SignedHeaders"], sig, vals["X-Amz-Date"],
                r.param("X-Amz-Security-Token"), params, int(vals["X-Amz-Expires"]))

    def _verify(self, r, credential, signed, sig, amz_date, token, params, expires):
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise Refuse(400, "AuthorizationHeaderMalformed", "malformed credential scope")
        akid, date, region, service, _ = parts
        r.info.update(access_key_id=akid, region=region, service=service,
                      signed_headers=signed, amz_date=amz_date)
        cred = self.creds.get(akid)
        if cred is None:
            raise Refuse(403, "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not exist in our records.")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise Refuse(403, "AccessDenied", "bad X-Amz-Date %r" % amz_date)
        if date != amz_date[:8]:
            raise Refuse(403, "SignatureDoesNotMatch", "scope date is not X-Amz-Date's")
        now = time.time()
        if expires is None:
            if abs(now - when) > MAX_SKEW:
                raise Refuse(403, "RequestTimeTooSkewed", "request time too skewed")
        else:
            if not 1 <= expires <= 604800:
                raise Refuse(400, "AuthorizationQueryParametersError", "bad X-Amz-Expires")
            if now > when + expires or when > now + MAX_SKEW:
                raise Refuse(403, "AccessDenied", "Request has expired")
        want_token = cred.get("session_token")
        if token != want_token:
            raise Refuse(403, "InvalidToken", "The provided token is malformed or otherwise "
                         "invalid." if token else "The session token is missing.")
        names = signed.split(";")
        if names != sorted(set(names)) or any(n != n.lower() for n in names):
            raise Refuse(403, "SignatureDoesNotMatch", "SignedHeaders not sorted lower case")
        r.info["payload"] = payload = self._payload_hash(r, expires is not None, service)

        signer_cls = ExactS3SigV4 if service == "s3" else ExactSigV4
        signer = signer_cls(Credentials(akid, cred["secret_access_key"], want_token),
                            service, region)
        req = AWSRequest(method=r.method, url="http://signing.invalid" + r.path, params=params)
        req.context.update(timestamp=amz_date, signed_names=names, received=r.received,
                           payload_hash=payload)
        if "x-amz-content-sha256" in names:
            req.headers["X-Amz-Content-SHA256"] = payload
        creq = signer.canonical_request(req)
        sts = signer.string_to_sign(req, creq)
        want = signer.signature(sts, req)
        if not hmac.compare_digest(want, sig):
            raise Refuse(403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature "
                         "you provided. Check your key and signing method. "
                         "CanonicalRequest: %r" % creq)
        key = signing_key(cred["secret_access_key"], date, region, service)
        self._check_body(r, payload, key, amz_date, "/".join(parts[1:]), sig)

    def _payload_hash(self, r, presigned, service):
        h = r.header("x-amz-content-sha256")
        if h is not None:
            return h
        if presigned and service == "s3":
            return "UNSIGNED-PAYLOAD"
        if service == "s3" and not presigned:
            raise Refuse(400, "InvalidRequest", "Missing required header x-amz-content-sha256")
        return hashlib.sha256(r.body).hexdigest()

    def _check_body(self, r, payload, key, amz_date, scope, seed):
        if payload == "UNSIGNED-PAYLOAD":
            pass
        elif re.fullmatch(r"[0-9a-f]{64}", payload):
            if payload != hashlib.sha256(r.body).hexdigest():
                raise Refuse(400, "XAmzContentSHA256Mismatch", "The provided "
                             "'x-amz-content-sha256' header does not match what was computed.")
        elif payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
            decode_aws_chunked(r, payload, key, amz_date, scope, seed)
        else:
            raise Refuse(400, "InvalidArgument", "unsupported x-amz-content-sha256 %r" % payload)
        for name in CHECKSUM_HEADERS:
            if name in r.received:
                check_checksum(name, r.received[name][0], r.data)
        md5 = r.header("content-md5")
        if md5 is not None and md5 != base64.b64encode(hashlib.md5(r.data).digest()).decode():
            raise Refuse(400, "BadDigest", "Content-MD5 does not match the body")


def hmac_hex(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def decode_aws_chunked(r, payload, key, amz_date, scope, seed):
    """Decodes r.body (aws-chunked) into r.data, checking every chunk
    signature (signed modes) and the trailers."""
    signed = payload != STREAMING_UNSIGNED_TRAILER
    with_trailer = payload != STREAMING_SIGNED
    body, pos, prev, out, chunks = r.body, 0, seed, [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise Refuse(400, "IncompleteBody", "aws-chunked: chunk header without CRLF")
        head = body[pos:eol].decode("latin-1")
        pos = eol + 2
        size_text, _, ext = head.partition(";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Refuse(400, "InvalidChunkSizeError", "aws-chunked: bad size %r" % head[:40])
        data = body[pos:pos + size]
        if len(data) != size:
            raise Refuse(400, "IncompleteBody", "aws-chunked: short chunk")
        pos += size
        if signed:
            m = re.fullmatch(r"chunk-signature=([0-9a-f]{64})", ext)
            if not m:
                raise Refuse(403, "SignatureDoesNotMatch", "aws-chunked: chunk %d has no "
                             "chunk-signature (%r)" % (chunks, head[:100]))
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                             hashlib.sha256(data).hexdigest()])
            want = hmac_hex(key, sts)
            if not hmac.compare_digest(want, m.group(1)):
                raise Refuse(403, "SignatureDoesNotMatch", "aws-chunked: chunk %d (%d bytes) "
                             "signature does not match" % (chunks, size))
            prev = want
        chunks += 1
        if size == 0:
            break
        if body[pos:pos + 2] != b"\r\n":
            raise Refuse(400, "IncompleteBody", "aws-chunked: no CRLF after chunk data")
        pos += 2
        out.append(data)
    # After the last chunk: trailers (if any), then an empty line.
    trailers, trailer_sig = [], None
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            if pos == len(body) and not with_trailer:
                break   # tolerate a missing final CRLF without trailers
            raise Refuse(400, "IncompleteBody", "aws-chunked: unterminated trailer")
        line = body[pos:eol].decode("latin-1")
        pos = eol + 2
        if line == "":
            break
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "x-amz-trailer-signature":
            trailer_sig = value
        else:
            trailers.append((name, value))
    if pos != len(body):
        raise Refuse(400, "IncompleteBody", "aws-chunked: %d bytes after the end"
                     % (len(body) - pos))
    data = b"".join(out)
    r.data = data
    r.info.update(chunks=chunks, trailers=[n for n, _ in trailers],
                  decoded_len=len(data), decoded_sha256=hashlib.sha256(data).hexdigest())
    if payload == STREAMING_SIGNED_TRAILER:
        text = "".join("%s:%s\n" % (n, v) for n, v in trailers)
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                         hashlib.sha256(text.encode()).hexdigest()])
        if trailer_sig is None or not hmac.compare_digest(hmac_hex(key, sts), trailer_sig):
            raise Refuse(403, "SignatureDoesNotMatch", "aws-chunked: trailer signature")
    declared = [n.strip().lower() for n in (r.header("x-amz-trailer") or "").split(",")
                if n.strip()]
    if sorted(declared) != sorted(n for n, _ in trailers):
        raise Refuse(400, "MalformedTrailerError", "x-amz-trailer %r but trailers %r"
                     % (declared, [n for n, _ in trailers]))
    for n, v in trailers:
        if n.startswith("x-amz-checksum-"):
            check_checksum(n, v, data)
    dlen = r.header("x-amz-decoded-content-length")
    if dlen is None or dlen != str(len(data)):
        raise Refuse(400, "IncompleteBody", "x-amz-decoded-content-length %r but %d bytes"
                     % (dlen, len(data)))


# ---- the services -----------------------------------------------------------

def now_iso():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.000Z")


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


class Answer:
    def __init__(self, status, body=b"", ctype="application/xml", headers=None):
        self.status, self.body, self.ctype = status, body, ctype
        self.headers = list(headers or [])


def xml_answer(status, inner, headers=None):
    return Answer(status, ('<?xml version="1.0" encoding="UTF-8"?>\n' + inner).encode(),
                  headers=headers)


def s3_error(status, code, message):
    return xml_answer(status, "<Error><Code>%s</Code><Message>%s</Message>"
                      "<RequestId>%s</RequestId></Error>"
                      % (code, xml_escape(message), uuid.uuid4().hex[:16]))


NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


class S3:
    """Buckets in memory; path-style addressing."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buckets = {}        # name -> {key: (data, etag, ctype, meta, mtime)}
        self.uploads = {}        # upload id -> (bucket, key, {part: (data, etag)}, ctype)

    def handle(self, r):
        segs = r.path.lstrip("/").split("/", 1)
        bucket = unquote(segs[0])
        key = unquote(segs[1]) if len(segs) > 1 else ""
        q = dict(r.pairs)
        m = r.method
        with self.lock:
            if not bucket:
                return s3_error(400, "InvalidRequest", "no bucket")
            if not key:
                return self.bucket_op(r, m, bucket, q)
            if bucket not in self.buckets:
                if m == "PUT" or (m == "POST" and "uploads" in q):
                    self.buckets[bucket] = {}     # created on first write
                else:
                    return s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
            objs = self.buckets[bucket]
            if "uploadId" in q or "uploads" in q:
                return self.multipart(r, m, bucket, key, q)
            if m == "PUT":
                etag = '"%s"' % hashlib.md5(r.data).hexdigest()
                meta = [(k, v[0]) for k, v in r.received.items() if k.startswith("x-amz-meta-")]
                objs[key] = (r.data, etag, r.header("content-type") or "binary/octet-stream",
                             meta, time.time())
                return Answer(200, headers=[("ETag", etag)])
            if m in ("GET", "HEAD"):
                if key not in objs:
                    return s3_error(404, "NoSuchKey", "The specified key does not exist.")
                data, etag, ctype, meta, mtime = objs[key]
                hdrs = [("ETag", etag), ("Last-Modified", time.strftime(
                    "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime)))] + meta
                return Answer(200, data, ctype, hdrs)
            if m == "DELETE":
                objs.pop(key, None)
                return Answer(204)
        return s3_error(405, "MethodNotAllowed", "method not allowed")

    def bucket_op(self, r, m, bucket, q):
        if m == "PUT":
            self.buckets.setdefault(bucket, {})
            return Answer(200, headers=[("Location", "/" + bucket)])
        if bucket not in self.buckets:
            return s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
        if m == "HEAD":
            return Answer(200)
        if m == "DELETE":
            if self.buckets[bucket]:
                return s3_error(409, "BucketNotEmpty", "The bucket you tried to delete is "
                                "not empty")
            del self.buckets[bucket]
            return Answer(204)
        if m == "GET" and q.get("list-type") == "2":
            return self.list_v2(bucket, q)
        return s3_error(501, "NotImplemented", "not implemented here")

    def list_v2(self, bucket, q):
        prefix = q.get("prefix", "")
        enc = q.get("encoding-type") == "url"
        max_keys = int(q.get("max-keys", "1000"))
        keys = sorted(k for k in self.buckets[bucket] if k.startswith(prefix))[:max_keys]
        items = []
        for k in keys:
            data, etag, _, _, mtime = self.buckets[bucket][k]
            name = quote(k, safe="/") if enc else xml_escape(k)
            items.append("<Contents><Key>%s</Key><LastModified>%s</LastModified>"
                         "<ETag>%s</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass>"
                         "</Contents>" % (name, time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                                time.gmtime(mtime)),
                                          xml_escape(etag), len(data)))
        return xml_answer(200, "<ListBucketResult%s><Name>%s</Name><Prefix>%s</Prefix>"
                          "<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys>%s"
                          "<IsTruncated>false</IsTruncated>%s</ListBucketResult>"
                          % (NS, xml_escape(bucket), xml_escape(prefix), len(keys), max_keys,
                             "<EncodingType>url</EncodingType>" if enc else "",
                             "".join(items)))

    def multipart(self, r, m, bucket, key, q):
        if m == "POST" and "uploads" in q:
            uid = uuid.uuid4().hex
            self.uploads[uid] = (bucket, key, {}, r.header("content-type") or
                                 "binary/octet-stream")
            return xml_answer(200, "<InitiateMultipartUploadResult%s><Bucket>%s</Bucket>"
                              "<Key>%s</Key><UploadId>%s</UploadId>"
                              "</InitiateMultipartUploadResult>"
                              % (NS, xml_escape(bucket), xml_escape(key), uid))
        up = self.uploads.get(q.get("uploadId"))
        if up is None or up[0] != bucket or up[1] != key:
            return s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
        if m == "PUT":
            n = int(q.get("partNumber", "0"))
            if not 1 <= n <= 10000:
                return s3_error(400, "InvalidArgument", "bad partNumber")
            etag = '"%s"' % hashlib.md5(r.data).hexdigest()
            up[2][n] = (r.data, etag)
            return Answer(200, headers=[("ETag", etag)])
        if m == "DELETE":
            del self.uploads[q["uploadId"]]
            return Answer(204)
        if m == "POST":
            body = r.data.decode("utf-8", "replace")
            listed = re.findall(r"<PartNumber>(\d+)</PartNumber>\s*<ETag>([^<]*)</ETag>"
                                r"|<ETag>([^<]*)</ETag>\s*<PartNumber>(\d+)</PartNumber>", body)
            parts = []
            for a, b, c, d in listed:
                num, etag = (int(a), b) if a else (int(d), c)
                etag = etag.replace("&quot;", '"')
                if num not in up[2] or up[2][num][1] != etag:
                    return s3_error(400, "InvalidPart", "part %d unknown or ETag differs" % num)
                parts.append(num)
            if not parts or parts != sorted(parts):
                return s3_error(400, "InvalidPartOrder", "parts not in ascending order")
            data = b"".join(up[2][n][0] for n in parts)
            md5s = b"".join(hashlib.md5(up[2][n][0]).digest() for n in parts)
            etag = '"%s-%d"' % (hashlib.md5(md5s).hexdigest(), len(parts))
            self.buckets[bucket][key] = (data, etag, up[3], [], time.time())
            del self.uploads[q["uploadId"]]
            return xml_answer(200, "<CompleteMultipartUploadResult%s><Location>/%s/%s"
                              "</Location><Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag>"
                              "</CompleteMultipartUploadResult>"
                              % (NS, xml_escape(bucket), xml_escape(key), xml_escape(bucket),
                                 xml_escape(key), xml_escape(etag)))
        return s3_error(405, "MethodNotAllowed", "method not allowed")


def sts_answer(r):
    form = dict(split_query(r.data.decode("latin-1").replace("+", " ")))
    if r.method != "POST" or form.get("Action") != "GetCallerIdentity":
        return sts_error(400, "InvalidAction", "only GetCallerIdentity is served here")
    return xml_answer(200, '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
                      '2011-06-15/"><GetCallerIdentityResult>'
                      "<Arn>arn:aws:iam::123456789012:user/s3-upstream-test</Arn>"
                      "<UserId>AIDAS3UPSTREAMTEST</UserId><Account>123456789012</Account>"
                      "</GetCallerIdentityResult><ResponseMetadata><RequestId>%s</RequestId>"
                      "</ResponseMetadata></GetCallerIdentityResponse>" % uuid.uuid4())


def sts_error(status, code, message):
    return xml_answer(status, '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                      "<Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>"
                      "<RequestId>%s</RequestId></ErrorResponse>"
                      % (code, xml_escape(message), uuid.uuid4()))


def json_error(status, code, message):
    body = json.dumps({"__type": code, "message": message}).encode()
    return Answer(status, body, "application/json", [("x-amzn-ErrorType", code)])


def lambda_answer(r):
    m = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations", r.path)
    if r.method != "POST" or not m:
        return json_error(404, "ResourceNotFoundException", "no such function route")
    body = json.dumps({"function": unquote(m.group(1)),
                       "payload_sha256": hashlib.sha256(r.data).hexdigest()}).encode()
    return Answer(200, body, "application/json", [("X-Amz-Executed-Version", "$LATEST")])


# ---- the server -------------------------------------------------------------

class Server:
    def __init__(self, verifier, record):
        self.verifier = verifier
        self.record = record
        self.s3 = S3()
        self.lock = threading.Lock()

    def answer(self, r):
        try:
            self.verifier.verify(r)
        except Refuse as e:
            r.info["error"] = {"code": e.code, "message": e.message}
            service = r.info.get("service")
            if service == "sts":
                return sts_error(e.status, e.code, e.message)
            if service not in (None, "s3"):
                return json_error(e.status, e.code, e.message)
            return s3_error(e.status, e.code, e.message)
        service = r.info.get("service")
        if service == "s3":
            return self.s3.handle(r)
        if service == "sts":
            return sts_answer(r)
        if service == "lambda":
            return lambda_answer(r)
        return json_error(400, "UnknownService", "service %r is not served here" % service)

    def handle(self, c, method, target, headers, body, chunked):
        r = Request(method, target, headers, body, chunked)
        a = self.answer(r)
        rid = uuid.uuid4().hex[:16].upper()
        out = [("x-amz-request-id", rid), ("Content-Type", a.ctype)] + a.headers
        out.append(("Content-Length", str(len(a.body))))
        rec = dict(r.info, method=method, target=target, path=r.path, query=r.query,
                   headers=[[k, v] for k, v in headers], body_len=len(body),
                   body_sha256=hashlib.sha256(body).hexdigest(), transfer_chunked=chunked,
                   status=a.status, tls=c.tls)
        self.write(rec)
        hs.reply(c, a.status, "S3", out, a.body, method == "HEAD" or a.status == 204)
        return not any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)

    def write(self, rec):
        if not self.record:
            return
        with self.lock:
            with open(self.record, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    def serve_conn(self, sock, ctx):
        try:
            if ctx is not None:
                sock.settimeout(10)
                sock = ctx.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            c = hs.Conn(sock, ctx is not None, 0)
            while True:
                method, target, _v, headers, body, chunked = hs.read_request(c)
                if not self.handle(c, method, target, headers, body, chunked):
                    break
        except (hs.Closed, OSError, ValueError, ssl.SSLError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def listen(self, ctx):
        return hs.listener(ctx, self.serve_conn)


def main():
    ap = argparse.ArgumentParser(description="a small S3/STS that verifies SigV4")
    ap.add_argument("--creds", required=True, help="JSON list of the accepted credentials")
    ap.add_argument("--record", help="append every request as a JSON line to this file")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="stop when stdin reaches end of file (the parent went away)")
    args = ap.parse_args()
    with open(args.creds, encoding="utf-8") as f:
        creds = json.load(f)
    srv = Server(Verifier(creds), args.record)
    d = tempfile.mkdtemp(prefix="sp-s3-upstream.")
    try:
        ca_pem, crt, key = hs.make_certs(d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        http_port, https_port = srv.listen(None), srv.listen(ctx)
        print(json.dumps({"http_port": http_port, "https_port": https_port, "ca_file": ca_pem,
                          "pid": os.getpid()}), flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        if args.exit_on_stdin_eof:
            def watch():
                try:
                    while sys.stdin.buffer.read(1):
                        pass
                except (OSError, ValueError):
                    pass
                stop.set()
            threading.Thread(target=watch, daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
