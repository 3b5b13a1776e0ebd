#!/usr/bin/env bash
# `make run`: a local Notify stack. Uses the Redis at REDIS_URL if one
# answers, otherwise starts a local redis-server (installing Debian's
# package first if needed); then write-api on :8080 and two read-api
# replicas on :8081 and :8082. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
# Dev-only secret: never use it outside a laptop.
export JWT_HS256_SECRET="${JWT_HS256_SECRET:-dev-only-secret-change-me-0123456789abcdef}"
export LOG_FORMAT="${LOG_FORMAT:-console}"
RUN_DIR="$(mktemp -d -t notify-run-XXXXXX)"
pids=()

cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping…"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN_DIR"
}
trap cleanup INT TERM EXIT

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
  redis-server --port "$port" --bind 127.0.0.1 --dir "$RUN_DIR" --appendonly yes --save "" \
    --logfile "$RUN_DIR/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis_answers "$REDIS_URL" && break; sleep 0.1; done
  redis_answers "$REDIS_URL" || { echo "redis-server did not start; see $RUN_DIR/redis.log"; exit 1; }
  echo "started redis-server on port $port (AOF in $RUN_DIR)"
fi
export REDIS_URL

HTTP_ADDR=:8080 ./bin/write-api & pids+=($!)
HTTP_ADDR=:8081 CONSOLE_ENABLED=true ./bin/read-api & pids+=($!)
HTTP_ADDR=:8082 CONSOLE_ENABLED=true ./bin/read-api & pids+=($!)

for port in 8080 8081 8082; do
  for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done

SUB=$(go run ./pkg/cmd/devtoken -sub seller-42 -topics seller:42,device:7f3a-01,fleet:acme)
PUB=$(go run ./pkg/cmd/devtoken -sub dev-publisher -scope "notifications:publish notifications:broadcast")

cat <<MSG

Notify is running: write-api :8080, read-api :8081 and :8082.

Subscriber token (seller:42, device:7f3a-01, fleet:acme):
  $SUB
Publisher token (publish + broadcast):
  $PUB

Subscribe:
  curl -N "http://localhost:8081/v1/stream?access_token=$SUB"

Publish:
  curl -X POST http://localhost:8080/v1/notifications -H "Authorization: Bearer $PUB" -H 'Content-Type: application/json' -d '{"topics":["seller:42"],"type":"task.assigned","data":{"taskId":7}}'

Device status (keyed state): each device.status with a key replaces that key's
last one; a stream with snapshot=true starts with every key, the state read
returns them with a cursor to resume from:
  curl -X POST http://localhost:8080/v1/notifications/batch -H "Authorization: Bearer $PUB" -H 'Content-Type: application/json' -d '{"notifications":[{"topics":["device:7f3a-01"],"type":"device.status","key":"door","data":{"open":true}},{"topics":["device:7f3a-01"],"type":"device.status","key":"battery","data":{"level":87}}]}'
  curl -N "http://localhost:8081/v1/stream?topic=device:7f3a-01&snapshot=true&access_token=$SUB"
  curl "http://localhost:8081/v1/state?topic=device:7f3a-01&access_token=$SUB"

Console:
  http://localhost:8081/console/#token=$SUB&topics=seller:42,device:7f3a-01,fleet:acme&types=task.assigned,device.status

Ctrl-C stops everything.
MSG
wait
