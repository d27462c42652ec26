#!/usr/bin/env bash
# A real S3-compatible server on 127.0.0.1 for blurgate's object-storage tests and for trying
# blurgate against buckets: s3s-fs, which serves a local folder (each sub-folder a bucket).
#
#   bash scripts/s3_server.sh install   # cargo install s3s-fs (pinned) into .cache/s3s, once
#   eval "$(bash scripts/s3_server.sh start)"   # start it, export its settings
#   bash scripts/s3_server.sh stop
#
# `start` prints only `export NAME=value` lines on stdout (endpoint, keys, region, and
# BLURGATE_ENDPOINT for blurgate's --endpoint); messages go to stderr. Settings:
# S3_PORT (default 8014), S3_ROOT (the data folder, default .cache/s3s-data), S3_BUCKETS
# (buckets made at start, default "blurgate-test").
#
# s3s-fs 0.14.1 is the last release that builds with Rust 1.95 (later ones need newer Rust);
# the build takes 4-8 minutes on 2 cores, once per machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=$ROOT/.cache/s3s
BIN=$PREFIX/bin/s3s-fs
VERSION=0.14.1
PORT=${S3_PORT:-8014}
DATA=${S3_ROOT:-$ROOT/.cache/s3s-data}
BUCKETS=${S3_BUCKETS:-blurgate-test}
PIDFILE=$DATA/.s3s-fs.pid
ACCESS_KEY=blurgate-test-access
SECRET_KEY=blurgate-test-secret-key

say() { printf 's3_server: %s\n' "$*" >&2; }

install() {
  if [[ -x $BIN ]] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
    return
  fi
  say "building s3s-fs $VERSION (once; 4-8 minutes on 2 cores)"
  cargo install s3s-fs --version "$VERSION" --features binary --locked --root "$PREFIX" --quiet >&2
}

start() {
  install
  mkdir -p "$DATA"
  for b in $BUCKETS; do mkdir -p "$DATA/$b"; done
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "already running (pid $(cat "$PIDFILE"))"
  else
    nohup "$BIN" --host 127.0.0.1 --port "$PORT" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$DATA" \
      >"$DATA/.s3s-fs.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
      sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { say "did not start; see $DATA/.s3s-fs.log"; exit 1; }
    say "listening on 127.0.0.1:$PORT, data in $DATA (pid $(cat "$PIDFILE"))"
  fi
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export BLURGATE_ENDPOINT=http://127.0.0.1:$PORT
ENV
}

stop() {
  if [[ -f $PIDFILE ]]; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
    say "stopped"
  fi
}

case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
