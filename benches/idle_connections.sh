#!/usr/bin/env bash
# Memory per idle connection of `serve` and of nginx (../shared/bench's nginx-auth and
# nginx-auth-tls configurations, one worker), 10 000 connections of each kind; prints
# "target mode connections rss_before rss_after KiB_per_connection" (and, with TRIM=1, the same
# after malloc_trim: see benches/idle_connections.py).
#
# Usage: benches/idle_connections.sh [BIN] [N]
#   BIN  the apig-appcode binary (default target/release/apig-appcode)
#   N    connections per kind (default 10000)
# Needs ../shared/bench/run.sh to have run once (its nginx configs and certificate in
# /tmp/apig-bench), python3, curl, and a hard descriptor limit above N.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/apig-appcode}
n=${2:-10000}
bench=/tmp/apig-bench
ulimit -n "$(ulimit -Hn)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
tls=(--gateway-tls-cert "$bench/tls/cert.pem" --gateway-tls-key "$bench/tls/key.pem")

for mode in silent keepalive tls-silent tls-keepalive; do
    extra=()
    [[ $mode == tls-* ]] && extra=("${tls[@]}")
    "$bin" serve "${extra[@]}" --gateway-listen 127.0.0.1:19655 --admin-listen 127.0.0.1:19656 \
        --upstream http://127.0.0.1:9 --database "sqlite://$dir/apig.db" \
        --admin-token bench-admin-token-0123456789abcdef --log warn \
        --max-connections 20000 --header-timeout 60 --keepalive-timeout 60 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:19656/healthz && break; sleep 0.1; done
    printf 'serve\t%s\n' "$(python3 benches/idle_connections.py 19655 "$pid" "$mode" "$n")"
    kill "$pid"; wait "$pid" 2>/dev/null || true

    conf=nginx-auth.conf port=19001
    [[ $mode == tls-* ]] && conf=nginx-auth-tls.conf port=19005
    # The bench's configuration, with room for the connections.
    sed -e 's/worker_connections [0-9]*;/worker_connections 20000;/' \
        -e 's/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile 20000;/' \
        "$bench/$conf" >"$dir/$conf"
    nginx -c "$dir/$conf" >/dev/null 2>&1 &
    master=$!
    for _ in $(seq 100); do
        worker=$(pgrep -P "$master" | head -n 1 || true)
        [[ -n $worker ]] && break
        sleep 0.1
    done
    printf 'nginx\t%s\n' "$(python3 benches/idle_connections.py "$port" "$worker" "$mode" "$n")"
    kill "$master"; wait "$master" 2>/dev/null || true
done
