#!/usr/bin/env bash
# Throughput and latency of secretproxy next to nginx as a keep-alive
# forward proxy, same machine, same run (not a test: it prints figures).
#
#   bench/proxy.sh [DURATION_SECONDS]   (default 10)
#
# Starts: a throw-away Redis, an nginx upstream (small and 16 KiB bodies),
# nginx as a keep-alive forward proxy, and secretproxy (Release build in
# build-bench/). Drives each with wrk (32 connections, 2 threads) for:
#   small GET without references, small GET with 3 references,
#   16 KiB POST with 2 references in the body.
# Prints requests/s, p50/p99 latency and CPU microseconds per request.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh
DUR=${1:-10}
bash scripts/deps.sh
build_into "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DSP_TESTS=OFF

W=$(mktemp -d /tmp/sp-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

RPORT=$(free_port); UPORT=$(free_port); NPORT=$(free_port); PPORT=$(free_port); APORT=$(free_port)
PIDS+=("$(start_redis "$RPORT" "$W/redis")")

head -c 16384 /dev/urandom | base64 -w0 | head -c 16384 > "$W/16k"
cat > "$W/nginx.conf" <<EOC
worker_processes 1;
error_log $W/nginx-error.log;
pid $W/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$UPORT; keepalive 64; }
  server { listen 127.0.0.1:$UPORT; keepalive_requests 1000000;
    location /small { return 200 "ok\n"; }
    location /big { alias $W/16k; }
    location /post { client_body_buffer_size 64k; return 200 "ok\n"; } }
  server { listen 127.0.0.1:$NPORT; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; } }
}
EOC
nginx -c "$W/nginx.conf" -p "$W" -g 'daemon off;' 2>>"$W/nginx-error.log" &
PIDS+=($!)

BOOT=bench-bootstrap-$(head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n')
env SECRETPROXY_REDIS_URL=redis://127.0.0.1:$RPORT/0 SECRETPROXY_PROXY_LISTEN=127.0.0.1:$PPORT \
    SECRETPROXY_API_LISTEN=127.0.0.1:$APORT SECRETPROXY_KEYRING_FILE=$W/keyring.json \
    SECRETPROXY_API_BOOTSTRAP_KEY=$BOOT SECRETPROXY_UPSTREAM_ALLOW_PRIVATE=true \
    SECRETPROXY_LOG_ACCESS=false SECRETPROXY_LOG_FILE=$W/sp.log \
    "$ROOT/build-bench/secretproxy" -c /dev/null &
SPPID=$!; PIDS+=($SPPID)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$APORT/readyz" >/dev/null && break; sleep 0.05; done
sleep 0.3
for n in A B C; do
  curl -sf -X PUT "http://127.0.0.1:$APORT/v1/secrets/BENCH_$n" -H "Authorization: Bearer $BOOT" \
       -H 'Content-Type: application/json' -d "{\"value\":\"bench-value-$n-0123456789\"}" >/dev/null
done
KEY=$(curl -sf -X POST "http://127.0.0.1:$APORT/v1/keys" -H "Authorization: Bearer $BOOT" \
      -H 'Content-Type: application/json' -d '{"name":"bench","permissions":["proxy"]}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
AUTH=$(printf 'x:%s' "$KEY" | base64 -w0)

# wrk script: absolute-form requests through a proxy, optional headers/body.
mk_lua() { # $1 path, $2 method, $3 extra headers (lua table body), $4 body file or ""
  cat > "$W/$5.lua" <<EOL
local body = nil
$( [ -n "$4" ] && echo "local f = io.open('$4'); body = f:read('*a'); f:close()" )
request = function()
  local h = { ["Proxy-Authorization"] = "Basic $AUTH", ["Host"] = "127.0.0.1:$UPORT" $3 }
  if body then h["Content-Type"] = "application/x-www-form-urlencoded" end
  return wrk.format("$2", "http://127.0.0.1:$UPORT$1", h, body)
end
EOL
}
printf 'a=$Secret{BENCH_A}&' > "$W/post16k"; head -c 16300 "$W/16k" >> "$W/post16k"
printf '&b=$Secret{BENCH_B}' >> "$W/post16k"
mk_lua /small GET "" "" small
mk_lua /small GET ', ["X-A"]="$Secret{BENCH_A}", ["X-B"]="$Secret{BENCH_B}", ["X-C"]="$Secret{BENCH_C}"' "" small3
mk_lua /post POST "" "$W/post16k" post16k

cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # name port lua pid
  local before after out rps
  before=$(cpu_of "$4")
  out=$(wrk -t2 -c32 -d"${DUR}s" --latency -s "$W/$3.lua" "http://127.0.0.1:$2" 2>&1)
  after=$(cpu_of "$4")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out"); [ -n "$bad" ] && echo "  ($1 $3: $bad non-2xx answers)"
  printf '%-12s %-26s %10s req/s  p50 %8s  p99 %8s  cpu %6.1f us/req\n' "$1" "$3" "$rps" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(awk -v a="$after" -v b="$before" -v r="$rps" -v d="$DUR" -v hz="$(getconf CLK_TCK)" \
       'BEGIN { if (r > 0) print (a - b) / hz * 1e6 / (r * d); else print 0 }')"
}
NGPID=$(pgrep -f "nginx: worker process" -n || echo "$SPPID")
echo "machine: $(nproc) cores, $(uname -r); wrk -t2 -c32 -d${DUR}s"
run nginx-ka "$NPORT" small "$NGPID"
run secretproxy "$PPORT" small "$SPPID"
run secretproxy "$PPORT" small3 "$SPPID"
run nginx-ka "$NPORT" post16k "$NGPID"
run secretproxy "$PPORT" post16k "$SPPID"
