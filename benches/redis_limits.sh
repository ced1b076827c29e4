#!/usr/bin/env bash
# `serve` with rate limits counted on the node (`local`), in Redis for every request
# (`--rate-limit-store`) and in Redis 16 requests at a time (`--rate-limit-store-batch 16`),
# beside nginx-auth, through ../shared/bench/run.sh: requests/s and the gateway's own CPU µs per
# request (ratios to nginx-auth), for valid codes under a limit high enough that every request
# is admitted, so both count every request and only where they count differs. Then Redis's own
# CPU per script call, from its INFO (run.sh does not see Redis's process).
#
# Usage: benches/redis_limits.sh [BIN]   (default target/release/apig-appcode)
# Environment: ROUNDS [3], DURATION [8s], REDIS_URL [redis://127.0.0.1:6379/0], and run.sh's.
# Needs a Redis at REDIS_URL, and what ../shared/bench/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/apig-appcode}
redis=${REDIS_URL:-redis://127.0.0.1:6379/0}
limit="--workers 1 --rate-limit 1000000/s"

redis_cpu() { # seconds of CPU Redis has used, and the EVALSHA calls it has run
    redis-cli -u "$redis" info all | tr -d '\r' | awk -F'[:=,]' '
        /^used_cpu_(user|sys):/ { cpu += $2 }
        /^cmdstat_evalsha:/ { calls = $3 }
        END { printf "%s %d\n", cpu, calls }'
}
read -r cpu0 calls0 < <(redis_cpu)

export APIG_BIN=$bin
TARGETS=nginx-auth MODES=valid ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8s} \
    ../shared/bench/run.sh \
    --start "SERVE_ARGS='$limit' exec ../shared/bench/serve-target.sh" \
    serve-local=http://127.0.0.1:19020/ \
    --start "SERVE_ARGS='$limit --rate-limit-store-prefix apig:bench: --rate-limit-store $redis' exec ../shared/bench/serve-target.sh" \
    serve-redis=http://127.0.0.1:19030/ \
    --start "SERVE_ARGS='$limit --rate-limit-store-prefix apig:bench: --rate-limit-store $redis --rate-limit-store-batch 16' exec ../shared/bench/serve-target.sh" \
    serve-redis-batch16=http://127.0.0.1:19040/

read -r cpu1 calls1 < <(redis_cpu)
python3 - "$cpu0" "$calls0" "$cpu1" "$calls1" <<'PY'
import sys
cpu0, calls0, cpu1, calls1 = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
calls = calls1 - calls0
print(f"redis-server: {calls} EVALSHA calls, {(cpu1 - cpu0) * 1e6 / max(calls, 1):.1f} us CPU per call "
      "(all of Redis's CPU over the run, divided by the script calls)")
PY
redis-cli -u "$redis" --scan --pattern 'apig:bench:*' | xargs -r redis-cli -u "$redis" del >/dev/null
