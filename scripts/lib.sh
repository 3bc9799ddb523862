# Helpers shared by run.sh, test.sh and bench scripts. Source it.

# A free TCP port on 127.0.0.1 (the kernel picks; tiny race, fine for tests).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_redis PORT DIR: a throw-away redis-server (no persistence) in the
# background; prints its pid. Waits until it answers PING.
start_redis() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --daemonize no >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && { echo "$pid"; return 0; }
    sleep 0.05
  done
  echo "could not start redis-server on port $port (see $dir/redis.log)" >&2
  return 1
}

# Build into $1 with extra cmake arguments; quiet unless it fails.
build_into() {
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" "$@" >"$dir.cmake.log" 2>&1 || { cat "$dir.cmake.log"; return 1; }
  cmake --build "$dir" -j"$(nproc)" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}
