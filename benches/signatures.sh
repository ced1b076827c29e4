#!/usr/bin/env bash
# CPU per request of GETs signed with app keys (SDK-HMAC-SHA256) against GETs with AppCodes, on
# the real binary, in the same run (issue 17); and of floods of unknown keys against floods of
# unknown codes. Each round signs its requests afresh (a signature is good for 15 minutes), then
# runs wrk once per mode, in an order that alternates between rounds, and reads the binary's
# CPU time (utime + stime) around each run. Prints each run and the median ratios.
#
#   cargo build --release --all-features --bin apig-appcode
#   benches/signatures.sh                 # ROUNDS=3 DURATION=8 CONNS=32 APPS=200
#
# Needs nginx (the upstream, answering 200 on 127.0.0.1:19300), wrk, and the official Python
# SDK core in target/sdk-venv (made by `cargo test --all-features --test gateway_signatures`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8} CONNS=${CONNS:-32} APPS=${APPS:-200}
BIN=${APIG_BIN:-target/release/apig-appcode}
PY=${SDK_PYTHON:-target/sdk-venv/bin/python}
HERE=benches/signatures
GW=127.0.0.1:19320 ADMIN=127.0.0.1:19321 UP=127.0.0.1:19300
TOKEN=bench-admin-token-0123456789abcdef
tmp=$(mktemp -d /tmp/apig-sig-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cat >"$tmp/nginx.conf" <<NGINX
daemon off; worker_processes 1; pid $tmp/nginx.pid; error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off; client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp;
  uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen $UP; keepalive_requests 100000000; location / { return 200 "ok"; } }
}
NGINX
nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)

"$BIN" serve --gateway-listen $GW --admin-listen $ADMIN --upstream "http://$UP" \
  --database "sqlite://$tmp/apig.db" --admin-token $TOKEN --app-auth appcode,signature \
  --log warn >"$tmp/serve.log" 2>&1 & serve=$!; pids+=($serve)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$ADMIN/healthz" && break; sleep 0.1; done
"$PY" $HERE/prepare.py apps "${ADMIN#*:}" $TOKEN "$APPS" "$tmp"
# The keys reach the gateway's cache with the app's creation.

CLK_TCK=$(getconf CLK_TCK)
ticks() { local s; s=$(cat "/proc/$serve/stat"); set -- ${s##*) }; echo $((${12} + ${13})); }
tsv=$tmp/runs.tsv
printf 'round\tmode\trequests\trps\tp50_us\tp99_us\tnon2xx\tcpu_us_per_req\n' >"$tsv"
modes=(appcode signed invalid unknown)
for ((round = 1; round <= ROUNDS; round++)); do
  "$PY" $HERE/prepare.py sign $GW "$tmp"
  order=("${modes[@]}")
  ((round % 2 == 0)) && order=(unknown invalid signed appcode)
  for mode in "${order[@]}"; do
    HEADERS_FILE="$tmp/$mode.txt" wrk -t1 -c"$CONNS" -d2s -s $HERE/headers.lua "http://$GW/" >/dev/null
    before=$(ticks)
    out=$(HEADERS_FILE="$tmp/$mode.txt" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s $HERE/headers.lua "http://$GW/")
    after=$(ticks)
    line=$(grep '^BENCH ' <<<"$out")
    f() { sed -n "s/.*[[:space:]]$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    req=$(f requests)
    cpu=$(python3 -c "print(round(($after - $before) * 1e6 / $CLK_TCK / $req, 2))")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $round $mode "$req" "$(f rps)" "$(f p50_us)" \
      "$(f p99_us)" "$(f non2xx)" "$cpu" | tee -a "$tsv"
  done
done
python3 - "$tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["mode"]] = r
def ratios(a, b, field):
    return [float(m[a][field]) / float(m[b][field]) for m in by.values()]
for mode in ("appcode", "signed", "invalid", "unknown"):
    cpu = [float(m[mode]["cpu_us_per_req"]) for m in by.values()]
    rps = [float(m[mode]["rps"]) for m in by.values()]
    print("%-8s CPU us/req median %.2f (%s), req/s median %.0f" % (
        mode, statistics.median(cpu), ", ".join("%.2f" % c for c in cpu), statistics.median(rps)))
for a, b in (("signed", "appcode"), ("unknown", "invalid")):
    r = ratios(a, b, "cpu_us_per_req")
    print("CPU per request %s / %s: median %.2f (rounds: %s)" % (
        a, b, statistics.median(r), ", ".join("%.2f" % x for x in r)))
PY
