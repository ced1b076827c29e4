#!/usr/bin/env bash
# HTTP/2 over TLS: `serve` beside nginx (`nginx-auth-tls` of ../shared/bench with `http2` on its
# listener), with the same number of workers (one unless WORKERS says otherwise), driven by h2load with a valid AppCode on every request.
# Prints, per round and target: requests/s, CPU µs per request (the target's own user+system
# time over the run), and h2load's failed and errored counts.
#
# Usage: [WORKERS=N] benches/h2_vs_nginx.sh [BIN] [ROUNDS] [H2LOAD ARGS...]
#   defaults: target/release/apig-appcode, 3, -n 200000 -c 32 -m 10; WORKERS=1 (each server's
#   workers: serve --workers N, nginx worker_processes N; CPU is summed over nginx's workers)
# Needs ../shared/bench/run.sh to have run once (configs, codes, certificate in /tmp/apig-bench),
# h2load (Debian nghttp2-client), nginx, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/apig-appcode}
rounds=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
load=("$@")
[[ ${#load[@]} -gt 0 ]] || load=(-n 200000 -c 32 -m 10)
workers=${WORKERS:-1}
bench=/tmp/apig-bench
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

code=$(head -n 1 "$bench/codes-1000.txt")
cpu_ticks() { # user+system clock ticks of processes and their threads
    local p sum=0
    for p in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$sum"
}
wait_up() { for _ in $(seq 300); do curl -sk -o /dev/null "$1" && return; sleep 0.1; done; echo "no answer at $1" >&2; exit 1; }

nginx -c "$bench/upstream.conf" >/dev/null 2>&1 & pids+=($!)
# `listen ... http2` rather than `http2 on`: Debian 12's nginx is 1.22.
sed -e 's/listen 127.0.0.1:19005 ssl/listen 127.0.0.1:19007 ssl http2/' \
    -e "s#pid $bench/nginx-auth-tls.pid#pid $dir/nginx-h2.pid#" \
    -e "s/^worker_processes [0-9]*;/worker_processes $workers;/" \
    "$bench/nginx-auth-tls.conf" >"$dir/nginx-h2.conf"
nginx -c "$dir/nginx-h2.conf" >/dev/null 2>&1 & nginx_master=$!; pids+=($nginx_master)
TARGET_PORT=19070 TARGET_URL=https://127.0.0.1:19070/ UPSTREAM_URL=http://127.0.0.1:19000 \
    CODES_FILE=$bench/codes-1000.txt TLS_CERT=$bench/tls/cert.pem TLS_KEY=$bench/tls/key.pem \
    APIG_BIN=$bin SERVE_ARGS="--workers $workers" ../shared/bench/serve-target.sh >/dev/null 2>&1 & pids+=($!)
wait_up https://127.0.0.1:19007/
wait_up https://127.0.0.1:19070/
nginx_workers=$(pgrep -P "$nginx_master" | tr '\n' ' ')
# Without a worker, nginx's CPU would read as zero: stop rather than report it.
[[ -n ${nginx_workers// /} ]] || { echo "nginx started no worker" >&2; exit 1; }
serve_pid=$(pgrep -f "serve.*--gateway-listen 127.0.0.1:19070" | head -n 1)
hz=$(getconf CLK_TCK)

run() { # name url pids
    local before after out
    before=$(cpu_ticks $3)
    out=$(h2load "${load[@]}" -H "x-apig-appcode: $code" "$2" 2>&1)
    after=$(cpu_ticks $3)
    python3 - "$1" "$before" "$after" "$hz" <<PY
import re, sys
name, before, after, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = """$out"""
rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
done, ok, failed, errored = int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6))
codes = re.search(r"status codes: (.*)", out).group(1)
cpu_us = (after - before) / hz * 1e6 / max(done, 1)
print(f"{name}\t{rps:.0f} req/s\t{cpu_us:.1f} us/req\tsucceeded {ok}\tfailed {failed}\terrored {errored}\t[{codes}]")
PY
}

for r in $(seq "$rounds"); do
    echo "# round $r: h2load ${load[*]}; $workers worker(s) each"
    if (( r % 2 )); then
        run nginx-h2 https://127.0.0.1:19007/ "$nginx_workers"
        run serve-h2 https://127.0.0.1:19070/ "$serve_pid"
    else
        run serve-h2 https://127.0.0.1:19070/ "$serve_pid"
        run nginx-h2 https://127.0.0.1:19007/ "$nginx_workers"
    fi
done
