#!/usr/bin/env python3
"""secretctl end to end: a private redis-server and the real secretproxy,
driven only through build/secretctl. Every command; exit status 0 (done),
1 (refused by the server, or unreachable) and 2 (bad usage); --json output
parsed; values with newlines, binary bytes, NUL and unicode round-trip
exactly from --value, --value-file and standard input; tables; a new API
key's permissions enforced; the API key and values never printed in
messages; HTTP_PROXY ignored for the API itself; groups created, listed
and deleted, and API keys bound only to groups that exist. Values carry the
CANARY marker and Redis is scanned for it at the end.

usage: test_secretctl.py BUILD_DIR
"""
import base64
import json
import os
import select
import secrets
import socket
import string
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt  # noqa: E402

CTL = os.path.join(spt.BUILD, "secretctl")
PROXY = os.path.join(spt.BUILD, "secretproxy")
ROOT_KEY = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
C = spt.CANARY


class Env:
    def __init__(self, res):
        self.res = res
        self.d = spt.tmpdir()
        self.redis_port, _ = spt.redis_server()
        self.api_port, self.proxy_port = spt.free_port(), spt.free_port()
        self.api = "http://127.0.0.1:%d" % self.api_port
        self.runs = []   # every (args, result) for the hygiene checks
        self.values = []  # every value set, to look for in messages

    def start(self):
        conf = os.path.join(self.d, "empty.conf")
        with open(conf, "w") as f:
            f.write("# every key from the environment or its default\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETPROXY_")}
        env.update({
            "SECRETPROXY_REDIS_URL": "redis://127.0.0.1:%d/0" % self.redis_port,
            "SECRETPROXY_API_LISTEN": "127.0.0.1:%d" % self.api_port,
            "SECRETPROXY_PROXY_LISTEN": "127.0.0.1:%d" % self.proxy_port,
            "SECRETPROXY_KEYRING_FILE": os.path.join(self.d, "keyring.json"),
            "SECRETPROXY_LOG_FILE": os.path.join(self.d, "sp.log"),
            "SECRETPROXY_API_BOOTSTRAP_KEY": ROOT_KEY,
            # a rotation waits keyring.retire_grace (15 s by default) before it
            # finishes; t_keyring waits for the end, so keep the wait short
            "SECRETPROXY_KEYRING_RETIRE_GRACE": "1s",
        })
        self.err = open(os.path.join(self.d, "stderr"), "wb")
        spt.start([PROXY, "-c", conf], env=env, cwd=self.d, stdout=self.err, stderr=self.err)
        if not spt.wait_port(self.api_port, 10):
            return False
        end = time.time() + 10
        while time.time() < end:
            try:
                with urllib.request.urlopen(self.api + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def ctl(self, *args, key=ROOT_KEY, api=None, stdin=None, env=None, timeout=30):
        """Run secretctl; stdin is bytes (or None: /dev/null). Returns the
        CompletedProcess with bytes stdout/stderr and .json (stdout parsed,
        or None)."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("SECRETPROXY_")}
        e["SECRETPROXY_API_URL"] = api or self.api
        if key is not None:
            e["SECRETPROXY_API_KEY"] = key
        e.update(env or {})
        r = subprocess.run([CTL] + list(args), input=stdin,
                           stdin=None if stdin is not None else subprocess.DEVNULL,
                           capture_output=True, env=e, timeout=timeout)
        try:
            r.json = json.loads(r.stdout)
        except ValueError:
            r.json = None
        self.runs.append((args, r))
        return r

    def set_value(self, value, *args):
        self.values.append(value)
        return value


def text(b):
    return b.decode("utf-8", "replace")


def t_usage(env, res):
    r = env.ctl("--version")
    res.check(r.returncode == 0 and r.stdout.startswith(b"secretctl "), "--version")
    r = env.ctl("--help")
    res.check(r.returncode == 0 and b"secrets" in r.stdout and b"keyring" in r.stdout, "--help")
    r = env.ctl("secrets", "set", "--help")
    res.check(r.returncode == 0 and b"--strip-newline" in r.stdout and b"--value-file" in
              r.stdout, "secrets set --help documents --value-file and --strip-newline")
    r = env.ctl("help", "keys", "create")
    res.check(r.returncode == 0 and b"--permissions" in r.stdout, "help keys create")
    bad = [
        ([], "no command"),
        (["bogus"], "unknown group"),
        (["secrets", "bogus", "X"], "unknown command"),
        (["secrets"], "group without command"),
        (["secrets", "get"], "missing NAME"),
        (["secrets", "get", "A", "B"], "too many arguments"),
        (["secrets", "get", "X", "--bogus"], "unknown flag"),
        (["secrets", "get", "X", "-x"], "unknown short flag"),
        (["secrets", "get", "X", "--scope"], "flag without its value"),
        (["secrets", "get", "X", "--value", "v"], "flag of another command"),
        (["secrets", "set", "X", "--value", "a", "--value-file", "/etc/hostname"],
         "--value with --value-file"),
        (["secrets", "set", "X", "--value", "a", "-"], "--value with -"),
        (["secrets", "set", "X", "--value", "a", "--ttl", "5", "--expires-at",
          "2099-01-01T00:00:00Z"], "--ttl with --expires-at"),
        (["secrets", "set", "X", "--value", "a", "--ttl", "soon"], "--ttl not a number"),
        (["secrets", "set", "X", "--value", "a", "--value", "b"], "a flag twice"),
        (["secrets", "set", "X", "extra"], "stray argument after NAME"),
        (["secrets", "update", "X"], "update with nothing to change"),
        (["secrets", "update", "X", "--revoked", "maybe"], "--revoked not a boolean"),
        (["secrets", "complete", "X", "--scope", "workspace"], "complete takes no --scope"),
        (["secrets", "list", "--limit", "-3"], "--limit negative"),
        (["keys", "create", "--permissions", "proxy"], "keys create without --name"),
        (["keys", "create", "--name", "n"], "keys create without --permissions"),
        (["--timeout", "0", "keyring", "status"], "--timeout 0"),
    ]
    for args, what in bad:
        r = env.ctl(*args)
        res.check(r.returncode == 2 and b"usage:" in r.stderr,
                  "bad usage exits 2 with a usage line: %s (rc %d, %r)" %
                  (what, r.returncode, r.stderr[:200]))
    r = env.ctl("secrets", "list", key=None)
    res.check(r.returncode == 2 and b"SECRETPROXY_API_KEY" in r.stderr,
              "no API key -> exit 2 naming SECRETPROXY_API_KEY")
    r = env.ctl("secrets", "set", "X")  # stdin is /dev/null: empty
    res.check(r.returncode == 2, "set with empty standard input and no value flag -> 2")


def t_values(env, res):
    cases = [
        ("nl", b"line1\n" + C.encode() + b"-nl\n\n"),
        ("crlf", C.encode() + b"-crlf\r\n"),
        ("binary", bytes(range(256)) + C.encode()),
        ("nul", C.encode() + b"\x00after-nul"),
        ("unicode", ("%s-ünïcødé ✓ 😀 \u2028" % C).encode()),
        ("bad_utf8", C.encode() + b"\xc3\x28\xed\xa0\x80"),
        ("spaces", b"  " + C.encode() + b" \t "),
    ]
    for label, v in cases:
        env.values.append(v)
        name = "v_" + label
        r = env.ctl("secrets", "set", name, "--json", stdin=v)
        ok = r.returncode == 0 and r.json and r.json["secret"]["name"] == name
        res.check(ok, "set %s from standard input (rc %d %r)" % (label, r.returncode, r.stderr))
        r = env.ctl("secrets", "value", name)
        res.check(r.returncode == 0 and r.stdout == v,
                  "value %s from stdin round-trips exactly (%r)" % (label, r.stdout[:80]))
        path = os.path.join(env.d, "value_" + label)
        with open(path, "wb") as f:
            f.write(v)
        r = env.ctl("secrets", "set", name + "_f", "--value-file", path)
        res.check(r.returncode == 0, "set %s from --value-file" % label)
        r = env.ctl("secrets", "value", name + "_f")
        res.check(r.returncode == 0 and r.stdout == v,
                  "value %s from --value-file round-trips exactly" % label)
        r = env.ctl("secrets", "value", name + "_f", "--json")
        got = None
        if r.json and "value" in r.json:
            got = r.json["value"].encode("utf-8", "surrogatepass")
        elif r.json and "value_base64" in r.json:
            got = base64.b64decode(r.json["value_base64"])
        res.check(r.returncode == 0 and got == v, "value %s --json gives the same bytes" % label)
    # explicit "-", and --value with unicode
    r = env.ctl("secrets", "set", "v_dash", "-", stdin=b"")
    r2 = env.ctl("secrets", "value", "v_dash")
    res.check(r.returncode == 0 and r2.returncode == 0 and r2.stdout == b"",
              "an empty value with explicit - is stored as empty")
    v = "%s-flag-ü✓" % C
    env.values.append(v.encode())
    r = env.ctl("secrets", "set", "v_flag", "--value", v)
    r2 = env.ctl("secrets", "value", "v_flag")
    res.check(r.returncode == 0 and r2.stdout == v.encode(), "--value unicode round-trips")
    # --strip-newline drops exactly one trailing LF or CRLF
    for raw, want in [(b"X" + C.encode() + b"\n", b"X" + C.encode()),
                      (b"Y" + C.encode() + b"\r\n", b"Y" + C.encode()),
                      (b"Z" + C.encode() + b"\n\n", b"Z" + C.encode() + b"\n")]:
        env.values.append(raw)
        r = env.ctl("secrets", "set", "v_strip", "--strip-newline", stdin=raw)
        r2 = env.ctl("secrets", "value", "v_strip")
        res.check(r.returncode == 0 and r2.stdout == want,
                  "--strip-newline: %r -> %r (got %r)" % (raw, want, r2.stdout))
    # the server's 64 KiB limit is the server's answer: exit 1 with its code
    big = C.encode() * (70000 // len(C) + 1)
    r = env.ctl("secrets", "set", "v_big", stdin=big)
    res.check(r.returncode == 1 and (b"bad_request" in r.stderr or
                                     b"payload_too_large" in r.stderr),
              "a value over 64 KiB is refused by the server: exit 1 (%r)" % r.stderr[:200])


def header_cols(line, heads):
    return [line.index(h) for h in heads]


def t_secrets(env, res):
    v = C + "-crud-1"
    env.values.append(v.encode())
    r = env.ctl("secrets", "set", "crud", "--value", v, "--type", "bearer", "--apps", "a, b",
                "--envs", "prod", "--hosts", "api.example.com", "--description", "desc ü",
                "--ttl", "3600", "--ref-ttl", "120")
    out = text(r.stdout)
    res.check(r.returncode == 0 and "name:" in out and "reference:" in out and "$secret:" in out,
              "set prints a key: value block with the $secret: reference (%r)" % r.stderr)
    lines = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
    res.check(lines.get("type", "").strip() == "bearer" and
              lines.get("apps", "").strip() == "a, b" and
              lines.get("description", "").strip() == "desc ü", "set's block shows metadata")
    res.check(v not in out, "set does not print the value")
    r = env.ctl("secrets", "get", "crud", "--json")
    j = r.json or {}
    s = j.get("secret", {})
    res.check(r.returncode == 0 and s.get("apps") == ["a", "b"] and s.get("envs") == ["prod"] and
              s.get("hosts") == ["api.example.com"] and s.get("type") == "bearer" and
              s.get("expires_at") and str(j.get("reference", "")).startswith("$secret:") and
              "value" not in s, "get --json: metadata, a reference, no value")
    ref1 = j.get("reference")
    r = env.ctl("secrets", "get", "crud", "--json")
    res.check(r.json and r.json.get("reference") != ref1, "get mints a fresh reference each time")
    r = env.ctl("secrets", "create", "crud", "--value", v)
    res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: secret_exists: "),
              "create on an existing name: exit 1, 'secretctl: secret_exists: ...' (%r)" %
              r.stderr)
    r = env.ctl("secrets", "create", "crud", "--value", v, "--json")
    res.check(r.returncode == 1 and r.json and r.json["error"]["code"] == "secret_exists",
              "create duplicate --json prints the error object")
    v2 = C + "-created"
    env.values.append(v2.encode())
    r = env.ctl("secrets", "create", "crud2", "--json", stdin=v2.encode())
    res.check(r.returncode == 0 and r.json and r.json["secret"]["name"] == "crud2" and
              r.json["secret"]["version"] == 1, "create a new secret from stdin: exit 0")
    # update: metadata, then the value from "-"
    ver = s.get("version", 0)
    r = env.ctl("secrets", "update", "crud", "--description", "changed", "--apps", "", "--json")
    s2 = (r.json or {}).get("secret", {})
    res.check(r.returncode == 0 and s2.get("description") == "changed" and s2.get("apps") == []
              and s2.get("version") == ver + 1 and s2.get("type") == "bearer",
              "update changes only what is given; --apps '' clears; version +1")
    v3 = C + "-updated\n"
    env.values.append(v3.encode())
    r = env.ctl("secrets", "update", "crud", "-", stdin=v3.encode())
    r2 = env.ctl("secrets", "value", "crud")
    res.check(r.returncode == 0 and r2.stdout == v3.encode(), "update's value from - round-trips")
    r = env.ctl("secrets", "update", "nope_missing", "--description", "x")
    res.check(r.returncode == 1 and b"secret_not_found" in r.stderr,
              "update of a missing secret: exit 1 secret_not_found")
    # scopes, complete
    v4 = C + "-alice"
    env.values.append(v4.encode())
    r = env.ctl("secrets", "set", "crud", "--scope", "user:alice", "--value", v4, "--json")
    res.check(r.returncode == 0 and r.json["secret"]["scope"] == "user:alice",
              "set in scope user:alice")
    r = env.ctl("secrets", "value", "crud", "--scope", "user:alice")
    res.check(r.stdout == v4.encode(), "value --scope user:alice")
    r = env.ctl("secrets", "complete", "crud", "--json")
    scopes = [x.get("scope") for x in (r.json or {}).get("secrets", [])]
    res.check(r.returncode == 0 and scopes == ["user:alice", "workspace"],
              "complete --json lists the name in every scope, most specific first: %r" % scopes)
    r = env.ctl("secrets", "complete", "crud")
    res.check(r.returncode == 0 and b"user:alice" in r.stdout and v4.encode() not in r.stdout,
              "complete's table shows scopes, not values")
    # revoke, delete
    r = env.ctl("secrets", "revoke", "crud2", "--json")
    res.check(r.returncode == 0 and r.json["secret"]["revoked"] is True, "revoke --json")
    r = env.ctl("secrets", "revoke", "crud2")
    res.check(r.returncode == 0 and b"revoked:" in r.stdout and b"yes" in r.stdout,
              "revoke prints the block with revoked: yes")
    r = env.ctl("secrets", "delete", "crud2", "--json")
    res.check(r.returncode == 0 and r.json == {"deleted": True}, "delete --json")
    for cmd in ("get", "value", "delete", "revoke"):
        r = env.ctl("secrets", cmd, "crud2")
        res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: secret_not_found: "),
                  "%s after delete: exit 1 secret_not_found (%r)" % (cmd, r.stderr))
    r = env.ctl("secrets", "delete", "crud", "--scope", "user:alice")
    res.check(r.returncode == 0 and b"deleted" in r.stdout, "delete in a scope")
    # names are percent-encoded; invalid names are the server's to refuse
    for name in ("a b", "../keys", "x?scope=user:bob", "."):
        r = env.ctl("secrets", "set", name, "--value", "x")
        res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: "),
                  "name %r is refused by the server (exit 1): %r" % (name, r.stderr[:120]))


def t_list(env, res):
    names = ["ls_%02d" % i for i in range(7)]
    for n in names:
        env.ctl("secrets", "set", n, "--value", C + "-list", "--type", "api_key")
    r = env.ctl("secrets", "list")
    out = text(r.stdout).splitlines()
    heads = ["NAME", "SCOPE", "TYPE", "VERSION", "UPDATED", "EXPIRES", "REVOKED"]
    res.check(r.returncode == 0 and out and all(h in out[0] for h in heads),
              "list prints a table with NAME SCOPE TYPE VERSION UPDATED EXPIRES REVOKED")
    if out:
        cols = header_cols(out[0], heads)
        rows = [l for l in out[1:] if l.startswith("ls_")]
        aligned = all(l[cols[1]:].startswith("workspace") and l[cols[2]:].startswith("api_key")
                      for l in rows)
        res.check(len(rows) == 7 and aligned, "list's columns are aligned under their headings")
    res.check(C.encode() not in r.stdout, "list never shows values")
    r = env.ctl("secrets", "list", "--json")
    got = [s["name"] for s in (r.json or {}).get("secrets", [])]
    res.check(r.returncode == 0 and all(n in got for n in names) and
              not any("value" in s for s in r.json["secrets"]), "list --json: names, no values")
    r = env.ctl("secrets", "list", "--limit", "2", "--json")
    res.check(r.returncode == 0 and len(r.json["secrets"]) == 2 and r.json.get("next_cursor"),
              "list --limit 2: one page and a next_cursor")
    r = env.ctl("secrets", "list", "--limit", "2")
    res.check(r.returncode == 0 and b"--cursor" in r.stderr, "a partial page says how to go on")
    r = env.ctl("secrets", "list", "--limit", "2", "--all", "--json")
    got2 = [s["name"] for s in (r.json or {}).get("secrets", [])]
    res.check(r.returncode == 0 and got2 == got and r.json.get("next_cursor") is None,
              "list --all follows next_cursor to the same list as one page (%d vs %d)" %
              (len(got2), len(got)))
    r = env.ctl("secrets", "list", "--limit", "3", "--all")
    res.check(r.returncode == 0 and sum(l.startswith(b"ls_") for l in r.stdout.splitlines()) == 7,
              "list --all table holds every row")
    r = env.ctl("secrets", "list", "--scope", "user:nobody", "--json")
    res.check(r.returncode == 0 and r.json["secrets"] == [], "list in an empty scope")
    # another workspace (root only)
    env.ctl("secrets", "set", "ws_only", "--workspace", "other", "--value", C + "-ws")
    r = env.ctl("secrets", "list", "--workspace", "other", "--json")
    r2 = env.ctl("secrets", "list", "--all", "--json")
    res.check(r.returncode == 0 and [s["name"] for s in r.json["secrets"]] == ["ws_only"] and
              "ws_only" not in [s["name"] for s in r2.json["secrets"]],
              "--workspace: a root key acts in another workspace")
    r = env.ctl("secrets", "value", "ws_only", "--workspace", "other")
    res.check(r.stdout == (C + "-ws").encode(), "value --workspace other")


def t_keys(env, res):
    r = env.ctl("keys", "create", "--name", "reader", "--permissions", "secrets:read", "--json")
    tok = (r.json or {}).get("token")
    kid = (r.json or {}).get("key", {}).get("id")
    res.check(r.returncode == 0 and isinstance(tok, str) and kid and
              r.json["key"]["permissions"] == ["secrets:read"], "keys create --json: key and token")
    r = env.ctl("keys", "create", "--name", "writer", "--permissions",
                "secrets:read,secrets:write", "--app", "billing", "--env", "prod")
    out = text(r.stdout)
    wtok = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("token:")),
                None)
    res.check(r.returncode == 0 and wtok and wtok.startswith("sp.") and
              b"only" in r.stderr and "app:" in out,
              "keys create prints the token once, clearly, with a warning on stderr")
    r = env.ctl("keys", "list")
    res.check(r.returncode == 0 and r.stdout.startswith(b"ID") and b"reader" in r.stdout and
              (tok or "?").encode() not in r.stdout, "keys list: a table, never tokens")
    r = env.ctl("keys", "list", "--json")
    ids = [k.get("id") for k in (r.json or {}).get("keys", [])]
    res.check(r.returncode == 0 and kid in ids, "keys list --json has the new key")
    if not tok:
        return
    # the new key: read yes, value/write/keys/keyring no
    r = env.ctl("secrets", "list", "--json", key=tok)
    res.check(r.returncode == 0, "--key with the new token: list works (%r)" % r.stderr)
    r = env.ctl("secrets", "get", "ls_00", key=tok)
    res.check(r.returncode == 0, "secrets:read may get metadata")
    for args in (["secrets", "value", "ls_00"], ["secrets", "set", "x", "--value", "y"],
                 ["secrets", "delete", "ls_00"], ["keys", "list"], ["keyring", "status"]):
        r = env.ctl(*args, key=tok)
        res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: forbidden: "),
                  "secrets:read key: %s -> exit 1 forbidden (%r)" % (" ".join(args), r.stderr))
    r = env.ctl("--key", tok, "secrets", "value", "ls_00", key="wrong")
    res.check(r.returncode == 1 and b"forbidden" in r.stderr, "--key wins over the environment")
    r = env.ctl("keys", "create", "--name", "x", "--permissions", "proxy", key=wtok)
    res.check(r.returncode == 1 and b"forbidden" in r.stderr, "no keys:admin, no keys create")
    r = env.ctl("keys", "delete", kid)
    res.check(r.returncode == 0 and kid.encode() in r.stdout, "keys delete")
    ok = False
    for _ in range(30):
        r = env.ctl("secrets", "list", key=tok)
        if r.returncode == 1 and b"unauthorized" in r.stderr:
            ok = True
            break
        time.sleep(0.1)
    res.check(ok, "a deleted key is refused: exit 1 unauthorized")
    r = env.ctl("keys", "delete", kid)
    res.check(r.returncode == 1, "deleting it again: exit 1")
    r = env.ctl("secrets", "list", key="sp.default.nope.nope")
    res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: unauthorized: "),
              "a wrong key: exit 1 unauthorized")



def t_groups(env, res):
    r = env.ctl("--help")
    res.check(r.returncode == 0 and b"groups  create" in r.stdout and
              b"{secrets|keys|groups|keyring}" in r.stdout, "--help lists the groups commands")
    r = env.ctl("help", "groups", "create")
    res.check(r.returncode == 0 and b"--name" in r.stdout and b"--description" in r.stdout and
              b"--workspace" in r.stdout, "help groups create documents its options")
    r = env.ctl("groups", "delete", "--help")
    res.check(r.returncode == 0 and b"conflict" in r.stdout,
              "groups delete --help says a group with keys is refused")
    r = env.ctl("keys", "create", "--help")
    res.check(r.returncode == 0 and b"groups create" in r.stdout,
              "keys create --help says a --group must exist first")
    bad = [
        (["groups"], "groups without a command"),
        (["groups", "bogus"], "an unknown groups command"),
        (["groups", "create"], "groups create without ID"),
        (["groups", "create", "a", "b"], "groups create with two IDs"),
        (["groups", "create", ""], "groups create with an empty ID"),
        (["groups", "create", "a", "--name"], "--name without its value"),
        (["groups", "create", "a", "--scope", "workspace"], "groups create takes no --scope"),
        (["groups", "create", "a", "--permissions", "proxy"],
         "groups create takes no --permissions"),
        (["groups", "create", "a", "--name", "x", "--name", "y"], "--name twice"),
        (["groups", "create", "a", "--name", b"\xff\xfe"], "a --name that is not UTF-8"),
        (["groups", "create", "a", "--description", b"\xc3\x28"],
         "a --description that is not UTF-8"),
        (["groups", "list", "extra"], "groups list with an argument"),
        (["groups", "list", "--name", "x"], "groups list takes no --name"),
        (["groups", "delete"], "groups delete without ID"),
        (["groups", "delete", ""], "groups delete with an empty ID"),
        (["groups", "delete", "a", "b"], "groups delete with two IDs"),
        (["groups", "delete", "a", "--description", "d"], "groups delete takes no --description"),
    ]
    for args, what in bad:
        r = env.ctl(*args)
        res.check(r.returncode == 2 and b"usage:" in r.stderr,
                  "bad usage exits 2 with a usage line: %s (rc %d, %r)" %
                  (what, r.returncode, r.stderr[:200]))
    r = env.ctl("groups", "list", "--json")
    res.check(r.returncode == 0 and r.json == {"groups": []},
              "groups list --json before any group: {\"groups\": []} (%r)" % r.stdout[:200])
    r = env.ctl("groups", "list")
    res.check(r.returncode == 0 and r.stdout.splitlines() ==
              [b"ID  NAME  DESCRIPTION  CREATED"], "groups list with no groups: the heading only")
    # create: a key: value block, and --json
    r = env.ctl("groups", "create", "eng", "--name", "Engineering ü", "--description",
                "the platform team")
    out = text(r.stdout)
    lines = dict((k.strip(), v.strip()) for k, v in
                 (l.split(":", 1) for l in out.splitlines() if ":" in l))
    res.check(r.returncode == 0 and lines.get("id") == "eng" and
              lines.get("name") == "Engineering ü" and
              lines.get("description") == "the platform team" and
              out.splitlines()[0].startswith("id:") and "created_at" in lines,
              "groups create prints an id/name/description/created_at block (%r %r)" %
              (out, r.stderr))
    r = env.ctl("groups", "create", "ops", "--json")
    g = (r.json or {}).get("group") or {}
    res.check(r.returncode == 0 and set(r.json or {}) == {"group"} and g.get("id") == "ops" and
              g.get("name") == "ops" and g.get("description") == "" and
              isinstance(g.get("created_at"), str),
              "groups create --json: {group: ...}, the name defaults to the id (%r)" % r.stdout)
    r = env.ctl("groups", "create", "empty_desc", "--description", "", "--json")
    res.check(r.returncode == 0 and (r.json or {}).get("group", {}).get("description") == "",
              "groups create with --description '' is fine")
    # refusals are the server's: exit 1 with its code
    r = env.ctl("groups", "create", "eng")
    res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: conflict: ") and
              r.stdout == b"", "groups create on an existing id: exit 1, secretctl: conflict: "
              "(%r)" % r.stderr)
    r = env.ctl("groups", "create", "eng", "--json")
    res.check(r.returncode == 1 and r.json and r.json["error"]["code"] == "conflict" and
              r.json["error"].get("request_id"), "groups create duplicate --json: the error "
              "object on stdout")
    for args, what in [(["a.b"], "an id with a dot"), (["a b"], "an id with a space"),
                       (["x" * 129], "a 129-character id"),
                       (["n129", "--name", "n" * 129], "a 129-character --name"),
                       (["nempty", "--name", ""], "an empty --name"),
                       (["d1025", "--description", "d" * 1025], "a 1025-byte --description")]:
        r = env.ctl("groups", "create", *args)
        res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: bad_request: "),
                  "groups create with %s: exit 1 bad_request (%r)" % (what, r.stderr[:120]))
    r = env.ctl("groups", "create", "x" * 128, "--name", "n" * 128, "--description", "d" * 1024)
    res.check(r.returncode == 0, "groups create at the limits (128/128/1024) works (%r)" %
              r.stderr[:200])
    # list: a table and --json
    r = env.ctl("groups", "list")
    out = text(r.stdout).splitlines()
    heads = ["ID", "NAME", "DESCRIPTION", "CREATED"]
    res.check(r.returncode == 0 and out and out[0].split() == heads,
              "groups list prints a table with ID NAME DESCRIPTION CREATED (%r)" % out[:1])
    if out:
        cols = header_cols(out[0], heads)
        row = next((l for l in out[1:] if l.startswith("eng ")), "")
        ops = next((l for l in out[1:] if l.startswith("ops ")), "")
        res.check(row[cols[1]:].startswith("Engineering ü") and
                  row[cols[2]:].startswith("the platform team") and
                  row[cols[3]:].startswith(g.get("created_at", "?")[:4]) and
                  ops[cols[2]:].startswith("- "),
                  "groups list's columns are aligned; an empty description shows '-' (%r)" % out)
    r = env.ctl("groups", "list", "--json")
    ids = sorted(x.get("id") for x in (r.json or {}).get("groups", []))
    res.check(r.returncode == 0 and ids == sorted(["eng", "ops", "empty_desc", "x" * 128]) and
              all(set(x) == {"id", "name", "description", "created_at"}
                  for x in r.json["groups"]), "groups list --json: every group, id/name/"
              "description/created_at (%r)" % ids)
    # another workspace (root only)
    r = env.ctl("groups", "create", "eng", "--workspace", "other", "--json")
    res.check(r.returncode == 0 and r.json["group"]["id"] == "eng",
              "--workspace: the same id in another workspace is a different group")
    r = env.ctl("groups", "create", "other_only", "--workspace", "other")
    r = env.ctl("groups", "list", "--workspace", "other", "--json")
    r2 = env.ctl("groups", "list", "--json")
    res.check(r.returncode == 0 and
              sorted(x["id"] for x in r.json["groups"]) == ["eng", "other_only"] and
              "other_only" not in [x["id"] for x in r2.json["groups"]],
              "groups list --workspace other shows other's groups only")
    # keys bind only to groups that exist
    r = env.ctl("keys", "create", "--name", "gk", "--permissions", "proxy", "--group", "late")
    res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: bad_request: ") and
              b"late" in r.stderr and b"token" not in r.stdout,
              "keys create --group <missing group>: exit 1 bad_request naming it (%r)" % r.stderr)
    r = env.ctl("keys", "list", "--json")
    res.check(not any(k.get("name") == "gk" for k in (r.json or {}).get("keys", [])),
              "the refused key was not created")
    r = env.ctl("groups", "create", "late", "--description", "made after the key was refused")
    res.check(r.returncode == 0, "groups create late")
    r = env.ctl("keys", "create", "--name", "gk", "--permissions", "proxy", "--group", "late",
                "--json")
    gkid = (r.json or {}).get("key", {}).get("id")
    res.check(r.returncode == 0 and gkid and r.json["key"]["group"] == "late",
              "keys create --group late once the group exists: exit 0, bound (%r)" % r.stderr)
    r = env.ctl("keys", "list")
    res.check(r.returncode == 0 and b"GROUP" in r.stdout and b"late" in r.stdout,
              "keys list shows the key's group")
    r = env.ctl("keys", "create", "--name", "gk2", "--permissions", "proxy", "--group",
                "other_only")
    res.check(r.returncode == 1 and b"bad_request" in r.stderr,
              "a group of another workspace cannot be bound (exit 1 bad_request)")
    r = env.ctl("keys", "create", "--name", "gk3", "--permissions", "proxy", "--group", "eng",
                "--workspace", "other", "--json")
    res.check(r.returncode == 0 and r.json["key"]["workspace"] == "other" and
              r.json["key"]["group"] == "eng", "keys create --group --workspace binds to the "
              "group of that workspace (%r)" % r.stderr)
    # delete: refused while a key is bound
    r = env.ctl("groups", "delete", "late")
    res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: conflict: "),
              "groups delete while a key is bound: exit 1 conflict (%r)" % r.stderr)
    r = env.ctl("groups", "list", "--json")
    res.check("late" in [x.get("id") for x in (r.json or {}).get("groups", [])],
              "the refused delete left the group in place")
    r = env.ctl("keys", "delete", gkid or "none")
    res.check(r.returncode == 0, "delete the bound key (exit %d, %r %r)"
              % (r.returncode, r.stdout, r.stderr))
    r = env.ctl("groups", "delete", "late")
    res.check(r.returncode == 0 and r.stdout == b"deleted group late\n",
              "groups delete once no key is bound: exit 0, 'deleted group late' (%r)" % r.stdout)
    r = env.ctl("groups", "delete", "ops", "--json")
    res.check(r.returncode == 0 and r.json == {"deleted": True}, "groups delete --json")
    r = env.ctl("groups", "delete", "ops")
    res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: not_found: "),
              "groups delete of a deleted group: exit 1 not_found (%r)" % r.stderr)
    r = env.ctl("groups", "delete", "nope", "--json")
    res.check(r.returncode == 1 and r.json and r.json["error"]["code"] == "not_found",
              "groups delete of an unknown id --json: the error object")
    r = env.ctl("groups", "delete", "../keys")
    res.check(r.returncode == 1 and b"not_found" in r.stderr,
              "an id like ../keys is sent as one path segment: exit 1 not_found (%r)" % r.stderr)
    r = env.ctl("groups", "list", "--json")
    ids = [x.get("id") for x in (r.json or {}).get("groups", [])]
    res.check("late" not in ids and "ops" not in ids and "eng" in ids,
              "deleted groups are gone from the list")
    r = env.ctl("groups", "delete", "eng", "--workspace", "other")
    res.check(r.returncode == 1 and b"conflict" in r.stderr,
              "groups delete --workspace: other's eng still has gk3 bound (exit 1 conflict)")
    # permissions: keys:admin
    r = env.ctl("keys", "create", "--name", "greader", "--permissions", "secrets:read", "--json")
    rtok = (r.json or {}).get("token")
    r = env.ctl("keys", "create", "--name", "gadmin", "--permissions", "keys:admin", "--json")
    atok = (r.json or {}).get("token")
    if not (rtok and atok):
        res.check(False, "set-up: keys for the groups permission checks")
        return
    for args in (["groups", "list"], ["groups", "create", "nope2"], ["groups", "delete", "eng"]):
        r = env.ctl(*args, key=rtok)
        res.check(r.returncode == 1 and r.stderr.startswith(b"secretctl: forbidden: "),
                  "a key without keys:admin: %s -> exit 1 forbidden (%r)" %
                  (" ".join(args), r.stderr))
    r = env.ctl("groups", "create", "by_admin", "--json", key=atok)
    r2 = env.ctl("groups", "list", "--json", key=atok)
    r3 = env.ctl("groups", "delete", "by_admin", key=atok)
    res.check(r.returncode == 0 and "by_admin" in [x["id"] for x in r2.json["groups"]] and
              r3.returncode == 0, "a keys:admin key creates, lists and deletes groups")
    r = env.ctl("groups", "list", "--workspace", "other", key=atok)
    res.check(r.returncode == 1 and b"forbidden" in r.stderr,
              "a keys:admin key without root: groups list --workspace other -> exit 1 forbidden")


def t_keyring(env, res):
    r = env.ctl("keyring", "status", "--json")
    cur = (r.json or {}).get("current")
    res.check(r.returncode == 0 and isinstance(cur, int), "keyring status --json has current")
    r = env.ctl("keyring", "status")
    res.check(r.returncode == 0 and b"current:" in r.stdout and b"VERSION" in r.stdout,
              "keyring status: a block and a versions table")
    r = env.ctl("keyring", "rotate", "--json")
    res.check(r.returncode == 0 and isinstance((r.json or {}).get("rotation"), dict),
              "keyring rotate --json: the rotation object (%r)" % r.stderr)
    new = None
    for _ in range(100):
        r = env.ctl("keyring", "status", "--json")
        j = r.json or {}
        if j.get("current", 0) > (cur or 0) and not j.get("rotation", {}).get("running"):
            new = j["current"]
            break
        time.sleep(0.1)
    res.check(new == (cur or 0) + 1, "the rotation finishes with a new current version")
    r = env.ctl("secrets", "value", "v_binary")
    res.check(r.stdout == bytes(range(256)) + C.encode(), "values read back after rotation")
    r = env.ctl("keyring", "rotate")
    res.check(r.returncode == 0 and b"rotation" in r.stdout, "keyring rotate (human)")


def read_pty(fd, until, timeout=10):
    buf, end = b"", time.time() + timeout
    while time.time() < end and until not in buf:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def t_tty(env, res):
    """On a terminal: set asks for the value without echo; value ends with a
    newline for the prompt's sake."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("SECRETPROXY_")}
    e.update(SECRETPROXY_API_URL=env.api, SECRETPROXY_API_KEY=ROOT_KEY)
    v = (C + "-typed-ü").encode()
    env.values.append(v)
    m, s = os.openpty()
    p = subprocess.Popen([CTL, "secrets", "set", "v_tty"], stdin=s, stdout=subprocess.PIPE,
                         stderr=s, env=e)
    os.close(s)
    seen = read_pty(m, b"not echoed): ")
    os.write(m, v + b"\n")
    out, _ = p.communicate(timeout=30)
    seen += read_pty(m, b"\n", 1)
    os.close(m)
    res.check(p.returncode == 0 and b"not echoed" in seen and v not in seen and
              b"reference:" in out, "a terminal is prompted, and the typed value not echoed")
    r = env.ctl("secrets", "value", "v_tty")
    res.check(r.stdout == v, "the typed value is stored without the Enter (%r)" % r.stdout)
    m, s = os.openpty()
    p = subprocess.Popen([CTL, "secrets", "value", "v_tty"], stdin=subprocess.DEVNULL,
                         stdout=s, stderr=subprocess.PIPE, env=e)
    os.close(s)
    got = read_pty(m, v + b"\r\n", 10)
    p.wait(timeout=30)
    os.close(m)
    res.check(p.returncode == 0 and got.endswith(v + b"\r\n"),
              "value on a terminal ends with a newline (%r)" % got)


def silent_port():
    """A listener that accepts and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def t_transport(env, res):
    dead = "http://127.0.0.1:%d" % spt.free_port()
    r = env.ctl("secrets", "list", api=dead)
    res.check(r.returncode == 1 and b"cannot reach the API" in r.stderr,
              "unreachable server: exit 1 with a clear message (%r)" % r.stderr)
    r = env.ctl("secrets", "list", "--json", api=dead)
    res.check(r.returncode == 1 and r.json and r.json["error"]["code"] == "unreachable",
              "unreachable --json: an error object")
    r = env.ctl("--api", env.api, "secrets", "list", api=dead)
    res.check(r.returncode == 0, "--api wins over SECRETPROXY_API_URL")
    r = env.ctl("secrets", "list", api=env.api + "/")
    res.check(r.returncode == 0, "a trailing slash on the API URL is fine")
    s = silent_port()
    t0 = time.time()
    r = env.ctl("--timeout", "1", "secrets", "list", api="http://127.0.0.1:%d" %
                s.getsockname()[1])
    s.close()
    res.check(r.returncode == 1 and time.time() - t0 < 5 and b"1 s" in r.stderr,
              "--timeout 1 against a silent server: exit 1 in time (%r)" % r.stderr)
    deadproxy = {"HTTP_PROXY": "http://127.0.0.1:1", "http_proxy": "http://127.0.0.1:1",
                 "ALL_PROXY": "http://127.0.0.1:1", "all_proxy": "http://127.0.0.1:1"}
    r = env.ctl("secrets", "list", env=deadproxy)
    res.check(r.returncode == 0, "HTTP_PROXY in the environment is not used for the API")
    r = env.ctl("--verbose", "secrets", "value", "v_nl")
    res.check(r.returncode == 0 and b"> GET" in r.stderr and b"< 200" in r.stderr,
              "--verbose shows the request and status on stderr")
    r = env.ctl("--verbose", "--key", ROOT_KEY, "secrets", "set", "verbose_v", "--value",
                C + "-verbose")
    res.check(r.returncode == 0 and b"> PUT" in r.stderr, "--verbose on a set")


def t_hygiene(env, res):
    leaks = []
    for args, r in env.runs:
        err = r.stderr
        if ROOT_KEY.encode() in err or ROOT_KEY.encode() in r.stdout:
            leaks.append(("root key", args))
        if C.encode() in err:
            leaks.append(("a value on stderr", args))
    res.check(not leaks, "no API key in any output, no value on stderr: %r" % leaks[:5])
    rc = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "leak_scan.py"),
                         str(env.redis_port)], capture_output=True, text=True)
    res.check(rc.returncode == 0, "no CANARY in Redis: %s" % rc.stdout.strip())


def main():
    res = spt.Results()
    env = Env(res)
    if not res.check(env.start(), "secretproxy starts and is ready"):
        res.finish()
    for t in (t_usage, t_values, t_secrets, t_list, t_keys, t_groups, t_keyring, t_tty,
              t_transport, t_hygiene):
        try:
            t(env, res)
        except Exception as e:  # a crash in one group must not hide the others
            res.check(False, "%s raised %r" % (t.__name__, e))
    res.finish()


if __name__ == "__main__":
    main()
