#!/usr/bin/env bash
# `make run`: a local Notify stack. Uses the Redis at REDIS_URL if one
# answers, otherwise starts a local redis-server (installing Debian's
# package first if needed); then write-api on :8080 and two read-api
# replicas on :8081 and :8082. Ctrl-C stops everything it started.
#
# It prints the ready banner only once each process it started is alive,
# holds its own port and answers /healthz. If one fails to start or dies
# later, it names it, shows the end of its log, stops the rest and exits
# non-zero. Logs stay in the run directory it prints.
#
# WRITE_PORT (8080) and READ_PORTS ("8081 8082") move the services; BIN
# (bin) is where the binaries are.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
WRITE_PORT="${WRITE_PORT:-8080}"
READ_PORTS="${READ_PORTS:-8081 8082}"
BIN="${BIN:-bin}"
# Dev-only secret, also documented in README.md so tokens can be minted by
# hand: never use it outside a laptop.
export JWT_HS256_SECRET="${JWT_HS256_SECRET:-dev-only-secret-change-me-0123456789abcdef}"
export LOG_FORMAT="${LOG_FORMAT:-console}"
RUN_DIR="$(mktemp -d -t notify-run-XXXXXX)"
names=() pids=() ports=() # what this script started, in order
helpers=()                # log followers: stopped, never checked
stopping=""

stop_all() {
  stopping=1
  for p in "${helpers[@]}" "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  if [ -z "$stopping" ]; then
    echo; echo "stopping…"
    stop_all
  fi
  echo "logs kept in $RUN_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# fail NAME LOG WHY: say which process failed and why, show the end of its
# log, stop the rest and exit non-zero.
fail() {
  local name=$1 log=$2 why=$3
  trap - INT TERM
  echo >&2
  echo "$name failed: $why" >&2
  if [ -s "$log" ]; then
    echo "--- last lines of $log ---" >&2
    tail -n 20 "$log" >&2
    echo "---" >&2
  fi
  echo "stopping everything else…" >&2
  stop_all
  exit 1
}

alive() { # a live process, not a zombie waiting to be reaped
  [ -r "/proc/$1/stat" ] && ! grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

# holds_port PID PORT: whether process PID owns the listening TCP socket
# on PORT, so an answer on PORT comes from it and not from another process.
holds_port() {
  local pid=$1 hex inodes
  hex=$(printf '%04X' "$2")
  inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n')
  [ -n "$inodes" ] || return 1
  awk -v port="$hex" 'FNR > 1 && $4 == "0A" && substr($2, index($2, ":") + 1) == port { print $10 }' \
    "/proc/$pid/net/tcp" "/proc/$pid/net/tcp6" 2>/dev/null | grep -qxF "$inodes"
}

# why_exited LOG PORT: the likely reason a process exited, from its log.
why_exited() {
  if grep -qi 'address already in use' "$1" 2>/dev/null; then
    echo "it exited: port $2 is taken by another process"
  else
    echo "it exited"
  fi
}

# await NAME PID PORT LOG: wait until the process holds its port and
# answers /healthz; fail if it exits or does not answer within 15 s.
await() {
  local name=$1 pid=$2 port=$3 log=$4
  for _ in $(seq 150); do
    alive "$pid" || fail "$name" "$log" "$(why_exited "$log" "$port")"
    if holds_port "$pid" "$port" && curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  fail "$name" "$log" "it did not answer on port $port within 15 s"
}

# start NAME PORT CMD...: start a process with its output in its own log.
start() {
  local name=$1 port=$2; shift 2
  "$@" >"$RUN_DIR/$name.log" 2>&1 &
  names+=("$name") pids+=($!) ports+=("$port")
}

redis_answers() {
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$1" ping 2>/dev/null | grep -q PONG
  else
    # No redis-cli: speak RESP directly over bash's /dev/tcp.
    local hostport="${1#redis://}"; hostport="${hostport%%/*}"; hostport="${hostport##*@}"
    exec 3<>"/dev/tcp/${hostport%%:*}/${hostport##*:}" 2>/dev/null || return 1
    printf 'PING\r\n' >&3; local reply; read -r -t 2 reply <&3 || true; exec 3>&-
    [[ "$reply" == +PONG* ]]
  fi
}

if redis_answers "$REDIS_URL"; then
  echo "using Redis at $REDIS_URL"
else
  if ! command -v redis-server >/dev/null; then
    echo "redis-server not found: installing Debian's redis-server package…"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  hostport="${REDIS_URL#redis://}"; hostport="${hostport%%/*}"; port="${hostport##*:}"
  start redis-server "$port" redis-server --port "$port" --bind 127.0.0.1 --dir "$RUN_DIR" \
    --appendonly yes --save ""
  log="$RUN_DIR/redis-server.log"
  for _ in $(seq 50); do
    alive "${pids[-1]}" || fail redis-server "$log" "$(why_exited "$log" "$port")"
    redis_answers "$REDIS_URL" && break
    sleep 0.1
  done
  redis_answers "$REDIS_URL" || fail redis-server "$log" "it did not answer PING on port $port within 5 s"
  echo "started redis-server on port $port (AOF in $RUN_DIR)"
fi
export REDIS_URL

# POD_NAME tells the replicas' log lines apart.
start write-api "$WRITE_PORT" env HTTP_ADDR=":$WRITE_PORT" POD_NAME="write-api-$WRITE_PORT" "$BIN/write-api"
for p in $READ_PORTS; do
  start "read-api-$p" "$p" env HTTP_ADDR=":$p" POD_NAME="read-api-$p" CONSOLE_ENABLED=true "$BIN/read-api"
done
for i in "${!pids[@]}"; do
  [ "${names[$i]}" = redis-server ] && continue
  await "${names[$i]}" "${pids[$i]}" "${ports[$i]}" "$RUN_DIR/${names[$i]}.log"
done

read -r -a read_ports <<<"$READ_PORTS"
R=${read_ports[0]}
read_list=":${read_ports[0]}"
for p in "${read_ports[@]:1}"; do read_list+=" and :$p"; done
TOPICS=seller:42,device:7f3a-01,fleet:acme
go build -o "$RUN_DIR/devtoken" ./pkg/cmd/devtoken
SUB=$("$RUN_DIR/devtoken" -sub seller-42 -topics "$TOPICS")
PUB=$("$RUN_DIR/devtoken" -sub dev-publisher -scope "notifications:publish notifications:broadcast")

cat <<MSG

Notify is running: write-api :$WRITE_PORT, read-api $read_list.
Logs: $RUN_DIR (one file per process).

Subscriber token (seller:42, device:7f3a-01, fleet:acme) and publisher
token (publish + broadcast); paste into another shell:

  export SUB='$SUB' PUB='$PUB'

Subscribe:
  curl -N "http://localhost:$R/v1/stream?access_token=\$SUB"

Publish:
  curl -X POST http://localhost:$WRITE_PORT/v1/notifications -H "Authorization: Bearer \$PUB" -H 'Content-Type: application/json' -d '{"topics":["seller:42"],"type":"task.assigned","data":{"taskId":7}}'

Device status (keyed state): each device.status with a key replaces that key's
last one; a stream with snapshot=true starts with every key, the state read
returns them with a cursor to resume from:
  curl -X POST http://localhost:8080/v1/notifications/batch -H "Authorization: Bearer $PUB" -H 'Content-Type: application/json' -d '{"notifications":[{"topics":["device:7f3a-01"],"type":"device.status","key":"door","data":{"open":true}},{"topics":["device:7f3a-01"],"type":"device.status","key":"battery","data":{"level":87}}]}'
  curl -N "http://localhost:8081/v1/stream?topic=device:7f3a-01&snapshot=true&access_token=$SUB"
  curl "http://localhost:8081/v1/state?topic=device:7f3a-01&access_token=$SUB"

Console:
  http://localhost:$R/console/#token=$SUB&topics=$TOPICS&types=task.assigned,device.status

Ctrl-C stops everything.
MSG

# Show the services' logs here as they come, and watch every process.
logs=()
for n in "${names[@]}"; do logs+=("$RUN_DIR/$n.log"); done
tail -q -n 0 -F "${logs[@]}" 2>/dev/null &
helpers+=($!)
while sleep 1; do
  for i in "${!pids[@]}"; do
    alive "${pids[$i]}" || fail "${names[$i]}" "$RUN_DIR/${names[$i]}.log" "it exited while running"
  done
done
