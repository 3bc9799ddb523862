#!/usr/bin/env bash
# Try secretproxy on this machine: install what is missing, build, start a
# local Redis if none answers (in the background: it outlives this script,
# and the banner says how to stop it), create the key ring and a bootstrap
# admin key on first run (kept in .secretproxy/, mode 0600), print how to use
# it, and run the proxy in the foreground with conf/secretproxy.conf.
#
# Environment: SECRETPROXY_* overrides any config key as usual.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

bash scripts/deps.sh
mkdir -p build
echo "building (build/)..." >&2
build_into "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo

STATE=$ROOT/.secretproxy
mkdir -p "$STATE"
chmod 700 "$STATE"

# Redis: use the configured one if it answers, else start a local one that
# keeps its data in .secretproxy/redis (append-only file).
REDIS_URL=${SECRETPROXY_REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${REDIS_URL#redis://}; hostport=${hostport##*@}; hostport=${hostport%%/*}
rhost=${hostport%:*}; rport=${hostport##*:}
if ! redis-cli -h "$rhost" -p "$rport" ping >/dev/null 2>&1; then
  if [[ "$REDIS_URL" != redis://127.0.0.1:* && "$REDIS_URL" != redis://localhost:* ]]; then
    echo "run.sh: Redis at $REDIS_URL does not answer" >&2; exit 1
  fi
  mkdir -p "$STATE/redis"
  echo "starting a local redis-server on port $rport (data in .secretproxy/redis)" >&2
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$STATE/redis" --appendonly yes \
    --save "" --daemonize yes --logfile "$STATE/redis/redis.log" --pidfile "$STATE/redis/redis.pid"
  for _ in $(seq 1 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
  if ! redis-cli -p "$rport" ping >/dev/null 2>&1; then
    echo "run.sh: redis-server did not start (see .secretproxy/redis/redis.log)" >&2; exit 1
  fi
fi
# A Redis that this script (now or on an earlier run) started keeps running
# after the proxy stops: say how to stop it.
REDIS_NOTE=
if [ -s "$STATE/redis/redis.pid" ] && kill -0 "$(cat "$STATE/redis/redis.pid")" 2>/dev/null; then
  REDIS_NOTE="  redis:     started by run.sh (pid $(cat "$STATE/redis/redis.pid"), data in .secretproxy/redis);
             it keeps running after Ctrl-C: stop it with  redis-cli -p $rport shutdown
"
fi

# The bootstrap admin key: generated once, never printed again by the proxy.
if [ ! -s "$STATE/bootstrap.key" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr -d '=+/\n' > "$STATE/bootstrap.key")
fi
export SECRETPROXY_API_BOOTSTRAP_KEY=${SECRETPROXY_API_BOOTSTRAP_KEY:-$(cat "$STATE/bootstrap.key")}
export SECRETPROXY_REDIS_URL=$REDIS_URL

PROXY=${SECRETPROXY_PROXY_LISTEN:-127.0.0.1:8080}
API=${SECRETPROXY_API_LISTEN:-127.0.0.1:8081}
cat <<EOT

secretproxy is starting (Ctrl-C stops it).
  proxy:     http://$PROXY      API: http://$API
  key ring:  .secretproxy/keyring.json (0600)
  admin key: .secretproxy/bootstrap.key (workspace "default", every permission)
$REDIS_NOTE
Use it (from $ROOT, in another shell):
  export SECRETPROXY_API_URL=http://$API
  export SECRETPROXY_API_KEY=\$(cat .secretproxy/bootstrap.key)
  printf %s 'sk_live_example' | build/secretctl secrets set DEMO_TOKEN --hosts httpbin.org
  KEY=\$(build/secretctl keys create --name demo --permissions proxy --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -x "http://x:\$KEY@$PROXY" -H 'Authorization: Bearer \$Secret{DEMO_TOKEN}' \\
       http://httpbin.org/headers
  (README.md, "First request through the proxy")

EOT
exec "$ROOT/build/secretproxy" -c conf/secretproxy.conf
