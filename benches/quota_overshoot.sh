#!/usr/bin/env bash
# How far past an app's limit two nodes on one PostgreSQL database go when both are offered far
# more calls than it allows (issue 16, item 5), and report what they admitted together.
# - KIND=quota (default): an app quota of LIMIT calls; the nodes share counts through the
#   database, or through Redis with QUOTA_REDIS=1 (`--rate-limit-store REDIS_URL`): each call
#   counted there, or in batches at least once a second with BATCH set above 1
#   (`--rate-limit-store-batch BATCH`).
# - KIND=rate: `--rate-limit RATE/s` counted in Redis (`--rate-limit-store REDIS_URL`, with
#   `--rate-limit-store-batch BATCH` when set); the limit over the run is RATE per second plus
#   the burst of RATE, measured against wrk's own duration.
#
# Usage (from the project root, after `cargo build --release --all-features`):
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test LIMIT=200000 DURATION=30s \
#     benches/quota_overshoot.sh
#   KIND=rate RATE=2000 REDIS_URL=redis://127.0.0.1:6379/0 benches/quota_overshoot.sh
# Knobs: APIG_BIN (target/release/apig-appcode), LIMIT, RATE, BATCH, DURATION (wrk -d),
# CONNS (connections per node), ROUNDS (each on a fresh schema).
set -euo pipefail
bin=${APIG_BIN:-target/release/apig-appcode}
db_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
kind=${KIND:-quota}
limit=${LIMIT:-200000}
rate=${RATE:-2000}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
extra=()
if [ "$kind" = rate ]; then
    extra=(--rate-limit "$rate/s" --rate-limit-store "$redis_url"
           --rate-limit-store-prefix "apig:overshoot:$$:")
    [ -z "${BATCH:-}" ] || extra+=(--rate-limit-store-batch "$BATCH")
elif [ -n "${QUOTA_REDIS:-}" ]; then
    # The quota's counts shared through Redis rather than the database.
    extra=(--rate-limit-store "$redis_url" --rate-limit-store-prefix "apig:overshoot:$$:")
    [ -z "${BATCH:-}" ] || extra+=(--rate-limit-store-batch "$BATCH")
fi
duration=${DURATION:-30s}
conns=${CONNS:-16}
rounds=${ROUNDS:-1}
token=quota-overshoot-admin-token-0123456789
P=00000000000000000000000000000001
base="/v2/$P/apigw/instances/$P"
work=$(mktemp -d /tmp/quota-overshoot.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The upstream: nginx answering 200 to everything.
cat >"$work/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log /dev/null;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:19500; location / { return 200 "ok"; } } }
EOF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)

admin() { # METHOD PORT PATH [BODY]
    curl -sf -X "$1" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
        ${4:+--data "$4"} "http://127.0.0.1:$2$base$3"
}
field() { python3 -c "import sys, json; print(json.load(sys.stdin)['$1'])"; }
admitted() { # wrk output -> 2xx answers
    python3 -c '
import re, sys
t = sys.stdin.read()
total = int(re.search(r"(\d+) requests in", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(total - (int(bad.group(1)) if bad else 0), total)'
}

for round in $(seq 1 "$rounds"); do
    schema="quota_overshoot_${round}_$$"
    psql -q "$db_url" -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
    url="$db_url?options=-c%20search_path%3D$schema"
    nodes=()
    for n in 0 1; do
        APIG_DATABASE="$url" "$bin" serve --gateway-listen "127.0.0.1:$((19510 + n))" \
            --admin-listen "127.0.0.1:$((19520 + n))" --upstream http://127.0.0.1:19500 \
            --admin-token "$token" --log warn "${extra[@]}" >"$work/node$n.log" 2>&1 &
        pids+=($!); nodes+=($!)
        for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$((19520 + n))/readyz" && break; sleep 0.1; done
    done
    app=$(admin POST 19520 /apps '{"name":"overshoot_app"}' | field id)
    code=$(admin PUT 19520 "/apps/$app/app-codes" | field app_code)
    if [ "$kind" = quota ]; then
        # An hour's window that began ten minutes ago: it does not end during the run.
        reset=$(date -u -d '-10 min' '+%Y-%m-%d %H:%M:%S')
        quota=$(admin POST 19520 /app-quotas "{\"name\":\"overshoot\",\"call_limits\":$limit,\"time_unit\":\"HOUR\",\"time_interval\":1,\"reset_time\":\"$reset\"}" | field app_quota_id)
        admin POST 19520 "/app-quotas/$quota/binding-apps" "{\"app_ids\":[\"$app\"]}" >/dev/null
    fi
    sleep 1 # the binding (or the code) reaches node B by announcement
    wrk -t1 -c"$conns" -d"$duration" -H "X-Apig-AppCode: $code" http://127.0.0.1:19510/ >"$work/wrk0" &
    w0=$!
    wrk -t1 -c"$conns" -d"$duration" -H "X-Apig-AppCode: $code" http://127.0.0.1:19511/ >"$work/wrk1"
    wait $w0
    read -r a0 t0 < <(admitted <"$work/wrk0")
    read -r a1 t1 < <(admitted <"$work/wrk1")
    if [ "$kind" = rate ]; then
        secs=$(python3 -c 'import re,sys; print(max(float(re.search(r"requests in ([0-9.]+)s", open(p).read()).group(1)) for p in sys.argv[1:]))' "$work/wrk0" "$work/wrk1")
        limit=$(python3 -c "print(int($rate * ($secs + 1)))")
    fi
    python3 -c "
a0, a1, t0, t1, limit = $a0, $a1, $t0, $t1, $limit
print(f'round $round: limit {limit}, offered {t0 + t1} ({(t0 + t1) / limit:.2f}x), '
      f'admitted {a0} + {a1} = {a0 + a1} ({(a0 + a1) / limit:.4f}x the limit)')"
    kill "${nodes[@]}"; wait "${nodes[@]}" 2>/dev/null || true
    psql -q "$db_url" -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE" >/dev/null
done
