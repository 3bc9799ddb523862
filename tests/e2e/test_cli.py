#!/usr/bin/env python3
"""The secretproxy binary's command line: --version, --help, --check-config
(every kind of bad input gives file:line or a named key and a non-zero
exit), environment overrides, start-up against a real Redis (key ring
created 0600, bootstrap key stored hashed), SIGHUP reload and SIGTERM exit.

usage: test_cli.py BUILD_DIR
"""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt  # noqa: E402

BIN = os.path.join(spt.BUILD, "secretproxy")


def run(args, env=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SECRETPROXY_")}
    e.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=30)


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def redis_cmd(port, *args):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"".join([b"*%d\r\n" % len(args)] +
                       [b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args]))
    time.sleep(0.05)
    data = s.recv(65536)
    s.close()
    return data


def main():
    res = spt.Results()
    d = spt.tmpdir()
    r = run(["--version"])
    res.check(r.returncode == 0 and r.stdout.startswith("secretproxy "), "--version")
    r = run(["--help"])
    res.check(r.returncode == 0 and "--check-config" in r.stdout, "--help")
    r = run(["--bogus"])
    res.check(r.returncode == 2, "unknown option exits 2")

    sample = os.path.join(spt.ROOT, "conf", "secretproxy.conf")
    ring = os.path.join(d, "ring", "keyring.json")
    env = {"SECRETPROXY_KEYRING_FILE": ring}
    r = run(["-c", sample, "--check-config"], env)
    res.check(r.returncode == 0 and "valid" in r.stdout, "the sample config is valid: " + r.stderr)
    r = run(["--sample-config"])
    res.check(r.stdout == open(sample).read(), "conf/secretproxy.conf is --sample-config's output")

    bad = [
        ("[proxy]\nlisten = here\n", ":2: proxy.listen"),
        ("[redis]\nconnect_timeout = forever\n", ":2: redis.connect_timeout"),
        ("[nope]\n", ":1: unknown section"),
        ("[log]\nlevel = loud\n", ":2: log.level: must be one of"),
        ("[upstream]\nupgrade_hosts = api.example.com, (unclosed\n", "upstream.upgrade_hosts"),
        ("[redis]\nurl = http://x\n", "redis.url"),
        ("[keyring]\nmaster_key = not-base64-of-32\n", "keyring.master_key"),
        ("[upstream]\nca_file = /nonexistent/ca.pem\n", "upstream.ca_file"),
        ("[proxy]\nlisten = 127.0.0.1:9000\n[api]\nlisten = 127.0.0.1:9000\n", "must differ"),
    ]
    for text, expect in bad:
        path = write(os.path.join(d, "bad.conf"), text)
        r = run(["-c", path, "--check-config"], env)
        res.check(r.returncode != 0 and expect in r.stderr,
                  "bad config %r -> %r (got rc %d: %s)" % (text, expect, r.returncode, r.stderr))
    r = run(["-c", os.path.join(d, "missing.conf"), "--check-config"])
    res.check(r.returncode != 0 and "cannot read" in r.stderr, "missing config file")
    r = run(["-c", sample, "--check-config"], dict(env, SECRETPROXY_PROXY_WORKERS="x"))
    res.check(r.returncode != 0 and "SECRETPROXY_PROXY_WORKERS" in r.stderr, "bad env override")
    r = run(["-c", sample, "--print-config"],
            dict(env, SECRETPROXY_PROXY_LISTEN="127.0.0.1:18080",
                 SECRETPROXY_API_BOOTSTRAP_KEY="do-not-print-this-value"))
    res.check("listen = 127.0.0.1:18080" in r.stdout, "env override shows in --print-config")
    res.check("do-not-print-this-value" not in r.stdout + r.stderr, "secrets are not printed")

    # A group/world-readable key ring is refused.
    loose = os.path.join(d, "loose", "keyring.json")
    os.makedirs(os.path.dirname(loose), mode=0o700)
    write(loose, '{"format":1}', 0o644)
    r = run(["-c", sample, "--check-config"], {"SECRETPROXY_KEYRING_FILE": loose})
    res.check(r.returncode != 0 and "keyring.file" in r.stderr, "world-readable key ring refused: "
              + r.stderr)

    # Start for real against a private Redis.
    port, _ = spt.redis_server()
    boot = "e2e-bootstrap-key-0123456789"
    log = os.path.join(d, "sp.log")
    envr = {"SECRETPROXY_KEYRING_FILE": ring,
            "SECRETPROXY_REDIS_URL": "redis://127.0.0.1:%d/0" % port,
            "SECRETPROXY_PROXY_LISTEN": "127.0.0.1:%d" % spt.free_port(),
            "SECRETPROXY_API_LISTEN": "127.0.0.1:%d" % spt.free_port(),
            "SECRETPROXY_API_BOOTSTRAP_KEY": boot, "SECRETPROXY_LOG_FILE": log}
    e = {k: v for k, v in os.environ.items() if not k.startswith("SECRETPROXY_")}
    e.update(envr)
    p = spt.start([BIN, "-c", sample], env=e, stderr=subprocess.PIPE)
    stored = b""
    for _ in range(100):
        stored = redis_cmd(port, "HGETALL", "sp:{default}:k:bootstrap")
        if b"hash" in stored:
            break
        time.sleep(0.05)
    res.check(b"hash" in stored, "bootstrap key stored at start")
    res.check(boot.encode() not in stored, "bootstrap key stored hashed, not in clear")
    res.check(os.path.exists(ring) and oct(os.stat(ring).st_mode & 0o777) == "0o600",
              "key ring created 0600")
    res.check(oct(os.stat(os.path.dirname(ring)).st_mode & 0o777) == "0o700",
              "key ring directory created 0700")
    p.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    res.check(p.poll() is None, "SIGHUP reloads, process stays up")
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    res.check(rc == 0, "SIGTERM exits 0 (rc %r)" % rc)
    text = open(log).read()
    res.check("configuration reloaded" in text, "reload is logged")
    res.check(boot not in text, "bootstrap key never logged")
    res.finish()


if __name__ == "__main__":
    main()
