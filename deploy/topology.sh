#!/usr/bin/env bash
# The real topology on one machine: each service its own `nameko run` process on RabbitMQ and
# PostgreSQL, nginx in front. `up` is idempotent; `down` stops what `up` started.
set -euo pipefail
cd "$(dirname "$0")/.."
VAR_DIR=${VAR_DIR:-$PWD/var}
BIN=${BIN:-$PWD/.venv/bin}
SERVICES=(intake routing departments sla notify)
export AMQP_URI=${AMQP_URI:-amqp://guest:guest@127.0.0.1:5672/}
export DATABASE_URL=${DATABASE_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/gridflow}
export GRIDFLOW_PORT=${GRIDFLOW_PORT:-8000}
# Each service's own HTTP port (/healthz, /metrics), as services/<name>/config.yaml defaults them.
export INTAKE_HTTP=${INTAKE_HTTP:-127.0.0.1:8001}
export ROUTING_HTTP=${ROUTING_HTTP:-127.0.0.1:8002}
export DEPARTMENTS_HTTP=${DEPARTMENTS_HTTP:-127.0.0.1:8003}
export SLA_HTTP=${SLA_HTTP:-127.0.0.1:8004}
export NOTIFY_HTTP=${NOTIFY_HTTP:-127.0.0.1:8005}
# Intake reads a client's address from X-Forwarded-For only when the peer is the proxy.
export GRIDFLOW_TRUSTED_PROXIES=${GRIDFLOW_TRUSTED_PROXIES:-127.0.0.1}
# Rate limits shared by every intake replica.
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
mkdir -p "$VAR_DIR"
# The WeChat account's token, by reference (docs/channels.md): a token file in VAR_DIR serves
# when no reference is set; neither: the callback is not there (404).
if [[ -z ${GRIDFLOW_WECHAT_TOKEN_REF:-} && -f $VAR_DIR/wechat-token ]]; then
  export GRIDFLOW_WECHAT_TOKEN_REF=file:$VAR_DIR/wechat-token
fi

ensure_database() {
  "$BIN/python" - <<'PY'
import os
import sqlalchemy as sa
from sqlalchemy.engine import make_url
url = make_url(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1))
admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as conn:
    if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first():
        conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
PY
  "$BIN/gridflow" migrate --database-url "$DATABASE_URL" >/dev/null
  # An empty database gets the shipped default jurisdiction, so reports are not refused (503)
  # until someone finds `gridflow import`; one already installed is left as it is.
  "$BIN/gridflow" ensure-jurisdiction --database-url "$DATABASE_URL"
  # The first admin and a long-lived admin token in .gridflow/admin-token (or
  # GRIDFLOW_ADMIN_TOKEN_FILE), where `gridflow replay` and the other commands find it; a token
  # there that is still good is kept.
  "$BIN/gridflow" admin-token --database-url "$DATABASE_URL"
}

alive() {
  # A SIGKILLed child that nobody reaped is a zombie: kill -0 still succeeds on it.
  local pid=$1
  [[ -r /proc/$pid/stat ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

start_service() {
  local svc=$1 pidfile="$VAR_DIR/$1.pid"
  if [[ -f $pidfile ]] && alive "$(cat "$pidfile")"; then return; fi
  local cls="${svc^}Service"
  "$BIN/nameko" run --config "services/$svc/config.yaml" "gridflow_$svc.service:$cls" \
    >>"$VAR_DIR/$svc.log" 2>&1 &
  echo $! >"$pidfile"
}

ensure_nginx() {
  if ! command -v nginx >/dev/null; then
    echo "installing nginx from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light) >&2 \
      || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >&2
  fi
  mkdir -p "$VAR_DIR"/nginx-{body,proxy,fastcgi,uwsgi,scgi}
  local upstream=$INTAKE_HTTP rendered=$VAR_DIR/nginx.conf
  VAR_DIR=$VAR_DIR INTAKE_UPSTREAM=$upstream envsubst '${VAR_DIR} ${INTAKE_UPSTREAM} ${GRIDFLOW_PORT}' \
    <deploy/nginx.conf >"$rendered.new"
  if [[ -f $VAR_DIR/nginx.pid ]] && kill -0 "$(cat "$VAR_DIR/nginx.pid")" 2>/dev/null; then
    # A reload closes every idle keep-alive connection: only when the configuration changed.
    if cmp -s "$rendered.new" "$rendered"; then
      rm -f "$rendered.new"
    else
      mv "$rendered.new" "$rendered"
      nginx -c "$rendered" -s reload
      echo "nginx configuration changed: reloaded"
    fi
  else
    mv "$rendered.new" "$rendered"
    nginx -c "$rendered"
  fi
}

wait_for() {
  local url=$1
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing answered at $url" >&2
  return 1
}

wait_for_proxy() {
  # Through the proxy nothing answers without a credential but with 401: any answer but a
  # 502/504 from nginx says the proxy and intake behind it are up.
  local url=$1 code
  for _ in $(seq 1 150); do
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) || code=000
    [[ $code != 000 && $code != 502 && $code != 504 ]] && return 0
    sleep 0.2
  done
  echo "the proxy did not answer at $url" >&2
  return 1
}

case ${1:-up} in
  up)
    ensure_database
    # `gridflow amqp-users sync` makes the department systems' RabbitMQ users through the
    # management API (rabbitmqctl otherwise): enabled when this machine's broker can be told to.
    # Only when its port does not answer: the command takes seconds even when it has nothing to do.
    if ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && command -v rabbitmq-plugins >/dev/null; then
      rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 || true
    fi
    for svc in "${SERVICES[@]}"; do start_service "$svc"; done
    for svc in "${SERVICES[@]}"; do
      address=${svc^^}_HTTP
      wait_for "http://${!address}/healthz"
    done
    ensure_nginx
    wait_for_proxy "http://127.0.0.1:$GRIDFLOW_PORT/api/v1/admin/clock"
    echo "Gridflow (real topology) on http://127.0.0.1:$GRIDFLOW_PORT; logs in $VAR_DIR"
    ;;
  down)
    if [[ -f $VAR_DIR/nginx.pid ]]; then nginx -c "$VAR_DIR/nginx.conf" -s quit 2>/dev/null || true; fi
    # SIGTERM lets nameko finish its workers; whatever has not exited 20 s later is killed, so
    # `down` returns only once nothing of the topology runs (a test may delete its vhost next).
    pids=()
    for svc in "${SERVICES[@]}"; do
      pidfile="$VAR_DIR/$svc.pid"
      if [[ -f $pidfile ]]; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null && pids+=("$pid")
        rm -f "$pidfile"
      fi
    done
    for _ in $(seq 1 100); do
      running=()
      for pid in "${pids[@]}"; do alive "$pid" && running+=("$pid"); done
      ((${#running[@]})) || break
      sleep 0.2
    done
    for pid in "${pids[@]}"; do alive "$pid" && kill -9 "$pid" 2>/dev/null; done
    true
    ;;
  status)
    for svc in "${SERVICES[@]}"; do
      pidfile="$VAR_DIR/$svc.pid"
      if [[ -f $pidfile ]] && alive "$(cat "$pidfile")"; then echo "$svc: running ($(cat "$pidfile"))"; else echo "$svc: stopped"; fi
    done
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
