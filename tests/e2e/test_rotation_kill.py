#!/usr/bin/env python3
"""Key rotation survives being killed: seed records in three workspaces,
then 20 times start a rotation and SIGKILL it at a random moment; a final
run resumes and completes. Every record still decrypts to its value, the
key ring keeps exactly one live version, and Redis holds no plaintext.

usage: test_rotation_kill.py BUILD_DIR
"""
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt  # noqa: E402

TOOL = os.path.join(spt.BUILD, "tests", "store_tool")
N = 2000
WORKSPACES = ["rk-alpha", "rk-beta", "rk-gamma"]


def tool(url, ring, *args, check=True):
    r = subprocess.run([TOOL, url, ring] + list(args), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        print(r.stdout, r.stderr)
    return r


def main():
    res = spt.Results()
    port, _ = spt.redis_server()
    url = "redis://127.0.0.1:%d/0" % port
    d = spt.tmpdir()
    ring = os.path.join(d, "keyring.json")
    for ws in WORKSPACES:
        res.check(tool(url, ring, "seed", ws, str(N), spt.CANARY + "-" + ws).returncode == 0,
                  "seed " + ws)
    res.check(oct(os.stat(ring).st_mode & 0o777) == "0o600", "key ring is 0600")

    # How long one whole rotation takes here, so kills land inside one.
    t0 = time.time()
    res.check(tool(url, ring, "rotate").returncode == 0, "a rotation runs to completion")
    full = time.time() - t0

    rng = random.Random(1234)
    kills = 0
    for i in range(20):
        p = subprocess.Popen([TOOL, url, ring, "rotate"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, full))
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
        # Every record decrypts after every kill, mid-rotation or not.
        if i % 5 == 4:
            for ws in WORKSPACES:
                r = tool(url, ring, "verify", ws, str(N), spt.CANARY + "-" + ws)
                res.check(r.returncode == 0, "verify %s after kill %d: %s" % (ws, i, r.stderr[-300:]))
    res.check(kills >= 10, "at least 10 of 20 rotations were killed mid-way (%d)" % kills)

    r = tool(url, ring, "rotate")
    res.check(r.returncode == 0, "a final rotation resumes and completes: " + r.stderr[-300:])
    for ws in WORKSPACES:
        r = tool(url, ring, "verify", ws, str(N), spt.CANARY + "-" + ws)
        res.check(r.returncode == 0 and ("%d verified, 0 failed" % N) in r.stdout,
                  "all %d records of %s decrypt: %s" % (N, ws, r.stdout + r.stderr[-300:]))

    with open(ring) as f:
        kr = json.load(f)
    versions = kr.get("versions", [])
    live = [v for v in versions if v.get("key")]
    res.check(len(versions) > 1 and len(live) == 1 and live[0]["version"] == kr["current"],
              "exactly one version keeps key material, the current one: %r" %
              [(v.get("version"), bool(v.get("key"))) for v in versions])
    scan = subprocess.run([sys.executable, os.path.join(spt.ROOT, "tests/e2e/leak_scan.py"),
                           str(port)], capture_output=True, text=True)
    res.check(scan.returncode == 0, "no plaintext in Redis: " + scan.stdout)
    res.finish()


if __name__ == "__main__":
    main()
