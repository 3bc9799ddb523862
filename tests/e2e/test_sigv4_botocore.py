#!/usr/bin/python3
"""Compare resolver/sigv4 with botocore on random requests.

Builds, with a fixed seed, more than a thousand random requests (methods,
paths with spaces, unicode, '~', '+', '%' and dot segments, repeated and
empty query keys, headers with odd spacing and repeated names, bodies of
0 to 1 MiB, S3 and other services, session tokens, UNSIGNED-PAYLOAD and
streaming seeds, caller-chosen signed-header lists, presigned URLs), signs
each with botocore (SigV4Auth, S3SigV4Auth, SigV4QueryAuth,
S3SigV4QueryAuth at a fixed time) and with tests/tools/sigv4_tool, and
compares the canonical request, the string to sign, the signature and the
Authorization header (or the presigned query) byte for byte. The tool is
given the URL in differently-but-equivalently encoded forms (lower-case
hex, unreserved characters escaped, sub-delimiters left raw), so its
decode-and-re-encode is tested too.

Exits 1 with a diff on the first mismatch; prints "N passed, 0 failed".

usage: test_sigv4_botocore.py PATH/TO/sigv4_tool [COUNT]
       test_sigv4_botocore.py BUILD_DIR [COUNT]   (as scripts/test.sh runs it)
"""
import base64
import datetime
import difflib
import hashlib
import json
import os
import random
import subprocess
import sys
import types
from urllib.parse import quote, unquote_to_bytes, urlsplit

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SEED = 20240229
COUNT = 1200


class FixedDatetime(datetime.datetime):
    """botocore.auth reads the clock with datetime.datetime.utcnow()."""
    fixed = None

    @classmethod
    def utcnow(cls):
        return cls.fixed


botocore.auth.datetime = types.SimpleNamespace(datetime=FixedDatetime)


class Capture:
    """Keep botocore's canonical request, string to sign and signature."""

    def canonical_request(self, request):
        self.creq = super().canonical_request(request)
        return self.creq

    def string_to_sign(self, request, canonical_request):
        self.sts = super().string_to_sign(request, canonical_request)
        return self.sts

    def signature(self, string_to_sign, request):
        self.sig = super().signature(string_to_sign, request)
        return self.sig


class CSigV4(Capture, SigV4Auth):
    pass


class CS3(Capture, S3SigV4Auth):
    pass


class CS3Streaming(Capture, S3SigV4Auth):
    def payload(self, request):
        return 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'


class CQuery(Capture, SigV4QueryAuth):
    pass


class CS3Query(Capture, S3SigV4QueryAuth):
    pass


B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
SEGMENT_CHARS = (list('abcdefghijklmnopqrstuvwxyzABCXYZ0123456789') +
                 list(" ~+%!$&'()*,;=:@-_.") + ['é', 'ሴ', '😀', 'ß', '日'])
SUBDELIMS = "!$'()*,;:@"
SERVICES = ['s3'] * 4 + ['execute-api', 'sts', 'dynamodb', 'lambda', 'es', 'iam']
REGIONS = ['us-east-1', 'eu-west-3', 'ap-southeast-2', 'us-gov-west-1', 'cn-north-1']
METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'get']
HEADER_NAMES = ['X-Amz-Meta-Foo', 'x-amz-meta-bar', 'Content-Type', 'Content-MD5', 'Range',
                'X-Custom-Header', 'Accept', 'x-amz-acl', 'X-Amz-Target', 'If-None-Match',
                'Cache-Control', 'X-Weird_Name!#', 'x-amz-meta-empty']
VALUE_WORDS = ['a', 'b  c', 'text/plain', 'bytes=0-9', 'ü', '日本', '"q  u"', 'x,y', '=;:',
               '*', 'max-age=0', '']


def rnd_case(name):
    return ''.join(c.upper() if random.random() < 0.5 else c.lower() for c in name)


def rnd_string(pool, lo, hi):
    return ''.join(random.choice(pool) for _ in range(random.randint(lo, hi)))


def encode_variant(s, keep='', lower_hex=False, escape_unreserved=False):
    """Percent-encode s like quote(), with equivalent variations."""
    out = []
    for ch in s:
        if ch.isascii() and (ch.isalnum() or ch in '-_.~') and not (escape_unreserved and
                                                                     random.random() < 0.2):
            out.append(ch)
        elif ch in keep:
            out.append(ch)
        else:
            for b in ch.encode('utf-8'):
                h = '%%%02X' % b
                out.append(h.lower() if lower_hex else h)
    return ''.join(out)


def wire_path(service):
    """A path as a client puts it on the wire (encoded once)."""
    segs = []
    for _ in range(random.randint(0, 5)):
        r = random.random()
        if service != 's3' and r < 0.12:
            segs.append(random.choice(['.', '..', '']))
        else:
            segs.append(rnd_string(SEGMENT_CHARS, 1, 12))
    if service == 's3':  # what botocore itself sends: quote(key, safe='/~')
        enc = [quote(s, safe='~') for s in segs]
    else:
        variant = random.random()
        if variant < 0.4:
            enc = [quote(s, safe='~') for s in segs]
        elif variant < 0.7:  # sub-delimiters raw, lower-case hex
            enc = [encode_variant(s, keep=SUBDELIMS + '+', lower_hex=True) for s in segs]
        elif variant < 0.85:  # raw spaces and unicode, as the aws-c-auth suite does
            enc = [s.replace('%', '%25') for s in segs]
        else:
            enc = [encode_variant(s, escape_unreserved=True) for s in segs]
    path = '/' + '/'.join(enc)
    if segs and random.random() < 0.2:
        path += '/'
    return path


def query_params(unique):
    names = ['a', 'A', 'b', 'list-type', 'prefix', 'x y', 'ሴ', '~t', 'p+q', '100%', 'e', '']
    params = []
    for _ in range(random.randint(0, 6)):
        name = random.choice(names)
        if unique and any(n == name for n, _ in params):
            continue
        value = random.choice(['', '1', 'v a l', 'x+y', 'a&b', '=', '%41', 'é', '~*!', '/a/b',
                               rnd_string(SEGMENT_CHARS, 0, 8)])
        params.append((name, value))
        if not unique and random.random() < 0.2:
            params.append((name, random.choice(['', '2', 'z'])))
    return params


def wire_query(params):
    """The tool's URL query: equivalent to the params, encoded variously."""
    pieces = []
    for name, value in params:
        lower = random.random() < 0.3
        esc = random.random() < 0.2
        n = encode_variant(name, keep="!$'()*,;:@/?+", lower_hex=lower, escape_unreserved=esc)
        v = encode_variant(value, keep="!$'()*,;:@/?+=", lower_hex=lower, escape_unreserved=esc)
        if value == '' and name != '' and random.random() < 0.5:
            pieces.append(n)  # "name" without '=' means an empty value
        else:
            pieces.append(n + '=' + v)
    if pieces and random.random() < 0.1:
        pieces.insert(random.randint(0, len(pieces)), '')  # "&&" is skipped
    return '&'.join(pieces)


def header_value():
    words = [random.choice(VALUE_WORDS) for _ in range(random.randint(0, 3))]
    seps = [' ', '  ', '\t', ' \t ']
    v = random.choice(seps).join(words)
    if random.random() < 0.3:
        v = random.choice(['', ' ', '  ', '\t']) + v + random.choice(['', ' ', '\t '])
    return v


def body_bytes():
    r = random.random()
    if r < 0.7:
        n = random.randint(0, 512)
    elif r < 0.95:
        n = random.randint(513, 64 * 1024)
    else:
        n = random.randint(64 * 1024, 1024 * 1024)
    return random.randbytes(n)


def timestamp():
    start = datetime.datetime(2013, 1, 1)
    return start + datetime.timedelta(seconds=random.randint(0, 22 * 365 * 86400))


def make_case(i):
    """One random request: (botocore signer, AWSRequest, tool JSON, extras)."""
    service = random.choice(SERVICES)
    s3 = service == 's3'
    region = random.choice(REGIONS)
    query_mode = random.random() < 0.25
    method = random.choice(METHODS)
    akid = 'AKIA' + rnd_string('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16, 16)
    secret = rnd_string(B64, 40, 40)
    token = rnd_string(B64 + '=', 16, 600) if random.random() < 0.3 else None
    creds = Credentials(akid, secret, token)
    host = random.choice(['examplebucket.s3.amazonaws.com', 'abc.execute-api.eu-west-1.'
                          'amazonaws.com:8443', 'sts.amazonaws.com', '127.0.0.1:9000'])
    path = wire_path(service)
    params = query_params(unique=query_mode)
    body = b'' if query_mode else body_bytes()
    ts = timestamp()
    FixedDatetime.fixed = ts
    amz_date = ts.strftime('%Y%m%dT%H%M%SZ')

    headers = [(rnd_case('host'), host)]
    for _ in range(random.randint(0, 8)):
        name = random.choice(HEADER_NAMES)
        headers.append((rnd_case(name) if random.random() < 0.3 else name, header_value()))
    if random.random() < 0.2:
        headers.append((random.choice(['User-Agent', 'Expect', 'X-Amzn-Trace-Id']), 'skipped'))
    if not query_mode and random.random() < 0.2:  # a request being re-signed
        headers.append(('Authorization', 'AWS4-HMAC-SHA256 Credential=old'))
        headers.append(('X-Amz-Date', '20000101T000000Z'))
        if token:
            headers.append(('X-Amz-Security-Token', 'stand-in'))
    random.shuffle(headers)

    tool = {'mode': 'query' if query_mode else 'header', 'method': method, 'path': path,
            'access_key_id': akid, 'secret_access_key': secret, 'region': region,
            'service': service, 'amz_date': amz_date}
    if token:
        tool['session_token'] = token
    url = 'https://' if random.random() < 0.5 else 'http://'
    context = {}
    payload = None
    if query_mode:
        signer = (CS3Query if s3 else CQuery)(creds, service, region,
                                               expires=random.randint(1, 604800))
        tool['expires'] = signer._expires
        if s3:
            payload = 'UNSIGNED-PAYLOAD'
        url = 'http://'
    elif s3:
        r = random.random()
        if r < 0.15:
            signer = CS3Streaming(creds, service, region)
            payload = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
        elif r < 0.3:
            signer = CS3(creds, service, region)
            context['client_config'] = types.SimpleNamespace(
                s3={'payload_signing_enabled': False})
            payload = 'UNSIGNED-PAYLOAD'
        else:
            signer = CS3(creds, service, region)
            url = 'http://'
            if random.random() < 0.5:
                payload = hashlib.sha256(body).hexdigest()
            else:
                headers = [h for h in headers if h[0].lower() != 'x-amz-content-sha256']
        tool['add_content_sha256'] = True
    else:
        signer = CSigV4(creds, service, region)
        r = random.random()
        if r < 0.15:
            url = 'https://'
            context['payload_signing_enabled'] = False
            payload = 'UNSIGNED-PAYLOAD'
            tool['add_content_sha256'] = True
        elif r < 0.25:  # the client's own X-Amz-Content-Sha256 is the payload hash
            headers.append(('X-Amz-Content-Sha256', random.choice([
                'UNSIGNED-PAYLOAD', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
                hashlib.sha256(body).hexdigest()])))
            url = 'http://'
        else:
            url = 'http://'
    if payload:
        tool['payload_hash'] = payload

    req = AWSRequest(method=method, url=url + host + path, data=body, params=params)
    for name, value in headers:
        req.headers[name] = value
    req.context.update(context)
    tool['headers'] = [list(h) for h in headers]
    tool['query'] = wire_query(params)
    if body:
        tool['body_b64'] = base64.b64encode(body).decode()
    return signer, req, tool


def decoded_pairs(query):
    out = []
    for piece in query.split('&'):
        if piece:
            name, _, value = piece.partition('=')
            out.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return sorted(out)


def diff(what, want, got):
    lines = difflib.unified_diff(str(want).splitlines(), str(got).splitlines(), 'botocore',
                                 'sigv4_tool', lineterm='')
    return '%s differs:\n%s' % (what, '\n'.join(lines))


def compare(i, signer, req, tool, res):
    if not res.get('ok'):
        return 'sigv4_tool refused it: %s (%s)' % (res.get('message'), res.get('error'))
    for what, want, got in (('canonical request', signer.creq, res.get('canonical_request')),
                            ('string to sign', signer.sts, res.get('string_to_sign')),
                            ('signature', signer.sig, res.get('signature'))):
        if want != got:
            return diff(what, want, got)
    if tool['mode'] == 'query':
        want = decoded_pairs(urlsplit(req.url).query)
        got = decoded_pairs(res['query'])
        if want != got:
            return diff('presigned query (decoded, sorted)', '\n'.join(map(repr, want)),
                        '\n'.join(map(repr, got)))
        return None
    if req.headers['Authorization'] != res.get('authorization'):
        return diff('Authorization', req.headers['Authorization'], res.get('authorization'))
    for name, value in res['set_headers']:
        if req.headers.get(name) != value:
            return diff('header ' + name, req.headers.get(name), value)
    return None


def describe(tool):
    t = dict(tool)
    if 'body_b64' in t:
        t['body_b64'] = '<%d bytes>' % len(base64.b64decode(t['body_b64']))
    t['secret_access_key'] = '<test key>'
    return json.dumps(t, ensure_ascii=False, indent=1)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    tool_path = sys.argv[1]
    if os.path.isdir(tool_path):
        tool_path = os.path.join(tool_path, 'tests', 'sigv4_tool')
    if not os.access(tool_path, os.X_OK):
        sys.exit('sigv4_tool not found or not executable: %s' % tool_path)
    count = int(sys.argv[2]) if len(sys.argv) > 2 else COUNT
    random.seed(SEED)
    cases = []
    for i in range(count):
        signer, req, tool = make_case(i)
        FixedDatetime.fixed = datetime.datetime.strptime(tool['amz_date'], '%Y%m%dT%H%M%SZ')
        signer.add_auth(req)
        cases.append((signer, req, tool))
        # Re-signing with the SDK's list: the tool also sees a header botocore
        # never did, and must leave it unsigned because it is not listed.
        if tool['mode'] == 'header' and random.random() < 0.15:
            listed = req.headers['Authorization'].split('SignedHeaders=')[1].split(',')[0]
            t2 = dict(tool, signed_headers=listed,
                      headers=tool['headers'] + [['X-Proxy-Added', 'not signed']])
            cases.append((signer, req, t2))
    lines = '\n'.join(json.dumps(t) for _, _, t in cases) + '\n'
    proc = subprocess.run([tool_path], input=lines.encode(), capture_output=True, timeout=600)
    if proc.returncode != 0:
        sys.exit('sigv4_tool failed (%d): %s' % (proc.returncode, proc.stderr.decode()[-2000:]))
    results = [json.loads(l) for l in proc.stdout.decode().splitlines()]
    if len(results) != len(cases):
        sys.exit('sigv4_tool answered %d of %d requests' % (len(results), len(cases)))
    passed = 0
    for i, ((signer, req, tool), res) in enumerate(zip(cases, results)):
        problem = compare(i, signer, req, tool, res)
        if problem:
            print('case %d: %s\nrequest given to sigv4_tool:\n%s' % (i, problem, describe(tool)))
            print('%d passed, 1 failed' % passed)
            sys.exit(1)
        passed += 1
    tools = [t for _, _, t in cases]
    print('covered: %d presigned, %d S3, %d with a session token, %d UNSIGNED-PAYLOAD, '
          '%d streaming seeds, %d caller-chosen header lists, %d bodies over 64 KiB (largest '
          '%d bytes)' % (
              sum(t['mode'] == 'query' for t in tools), sum(t['service'] == 's3' for t in tools),
              sum('session_token' in t for t in tools),
              sum(t.get('payload_hash') == 'UNSIGNED-PAYLOAD' for t in tools),
              sum(t.get('payload_hash', '').startswith('STREAMING') for t in tools),
              sum('signed_headers' in t for t in tools),
              sum(len(t.get('body_b64', '')) * 3 // 4 > 65536 for t in tools),
              max(len(base64.b64decode(t.get('body_b64', ''))) for t in tools)))
    print('%d passed, 0 failed' % passed)


if __name__ == '__main__':
    main()
