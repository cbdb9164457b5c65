#!/usr/bin/env bash
# The services the tests need: PostgreSQL and Redis, each a private instance on a
# free port, so CI runs side by side on one machine never share (or stop) each
# other's. Installs them with apt-get when missing (you are root in CI).
#
#   source .ci/services.sh && services_start && trap services_stop EXIT   (.ci/run)
#   eval "$(bash .ci/services.sh start)"   # by hand: prints the exports
#   bash .ci/services.sh stop "$INKLOOM_SERVICES_DIR"
#
# services_start exports TEST_POSTGRES_URL, TEST_REDIS_URL and INKLOOM_SERVICES_DIR
# (a temporary folder holding the PostgreSQL data directory and both pid files).

# A TCP port on 127.0.0.1 nobody listens on, from $1 upwards.
services_free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

services_install() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "services: installing ${missing[*]}" >&2
    # Installed, not started: the packages' own services would outlive the run
    # (policy-rc.d "101" tells Debian's maintainer scripts not to start them).
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || status=$?
    [ -z "$policy" ] || rm -f "$policy"
    return $status
  fi
}

services_start() {
  services_install || return 1
  local dir pg_bin pg_port redis_port
  dir=$(mktemp -d /tmp/inkloom-services.XXXXXX)
  chmod 755 "$dir"
  export INKLOOM_SERVICES_DIR=$dir

  # PostgreSQL: a throwaway cluster, trust auth, durability off (test data only).
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  mkdir "$dir/pg"
  chown postgres:postgres "$dir/pg"
  runuser -u postgres -- "$pg_bin/initdb" -D "$dir/pg" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  pg_port=$(services_free_port 5433)
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w -t 60 start \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >&2 || { cat "$dir/pg/server.log" >&2; return 1; }
  echo "$pg_bin" >"$dir/pg_bin"
  export TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"

  # Redis: in memory only.
  redis_port=$(services_free_port 6390)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
  local i
  for i in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    sleep 0.1
  done
  for i in $(seq 1 50); do
    [ -s "$dir/redis.pid" ] && break
    sleep 0.1
  done
  export TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
  echo "services: PostgreSQL at $TEST_POSTGRES_URL, Redis at $TEST_REDIS_URL" >&2
}

# Stops what services_start started (from its folder) and removes the folder.
services_stop() {
  local dir=${1:-${INKLOOM_SERVICES_DIR:-}}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  if [ -f "$dir/pg_bin" ] && [ -f "$dir/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$(cat "$dir/pg_bin")/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/redis.pid" ]; then
    local pid i
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -rf "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start)
      services_start
      echo "export INKLOOM_SERVICES_DIR=$INKLOOM_SERVICES_DIR TEST_POSTGRES_URL=$TEST_POSTGRES_URL TEST_REDIS_URL=$TEST_REDIS_URL"
      ;;
    stop) services_stop "${2:-}" ;;
    *)
      echo "usage: $0 start | stop <INKLOOM_SERVICES_DIR>" >&2
      exit 2
      ;;
  esac
fi
