#!/usr/bin/env bash
# A ../shared/bench/run.sh target: `apig-appcode serve` on SQLite, loaded with $CODES_FILE (five
# codes per app) through its management API, every app bound to one app quota of 2 147 483 647
# calls a DAY (nothing is refused, every call is counted) and, with ACL=1, given the ACL
# `PERMIT 127.0.0.0/8, ::1`; then restarted in the foreground on $TARGET_PORT with $SERVE_ARGS.
# Usage (from the project root):
#   --start 'exec benches/policy_target.sh' quota=http://127.0.0.1:19040/
#   --start "SERVE_ARGS='--rate-limit-store redis://127.0.0.1:6379/0' exec benches/policy_target.sh" ...
set -eu
bin=${APIG_BIN:-target/release/apig-appcode}
db=$(mktemp -d /tmp/policy-target.XXXX)/apig.db
tok=bench-admin-token-0123456789abcdef
P=00000000000000000000000000000001
adm=$((TARGET_PORT + 100)); tmpgw=$((TARGET_PORT + 101))
"$bin" serve --gateway-listen 127.0.0.1:$tmpgw --admin-listen 127.0.0.1:$adm --upstream "$UPSTREAM_URL" \
  --database "sqlite://$db" --admin-token $tok --log warn >/dev/null 2>&1 & pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:$adm/healthz && break; sleep 0.1; done
python3 - "$CODES_FILE" $adm $tok $P "${ACL:-0}" <<'PY'
import sys, json, http.client
codes = [l.strip() for l in open(sys.argv[1]) if l.strip()]
port, tok, P, acl = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
c = http.client.HTTPConnection("127.0.0.1", port)
base = f"/v2/{P}/apigw/instances/{P}"
h = {"X-Auth-Token": tok, "Content-Type": "application/json"}
def req(m, p, b):
    c.request(m, base + p, json.dumps(b), h); r = c.getresponse(); d = r.read()
    assert r.status in (200, 201), (r.status, d[:200]); return json.loads(d)
quota = req("POST", "/app-quotas", {"name": "bench_quota", "call_limits": 2147483647,
                                    "time_unit": "DAY", "time_interval": 1})["app_quota_id"]
apps = []
for i in range(0, len(codes), 5):
    app = req("POST", "/apps", {"name": f"bench_app_{i}"})["id"]
    apps.append(app)
    for code in codes[i:i+5]:
        req("POST", f"/apps/{app}/app-codes", {"app_code": code})
    if acl:
        req("PUT", f"/apps/{app}/app-acl", {"app_acl_type": "PERMIT",
                                             "app_acl_values": ["127.0.0.0/8", "::1"]})
for i in range(0, len(apps), 100):
    req("POST", f"/app-quotas/{quota}/binding-apps", {"app_ids": apps[i:i+100]})
PY
kill $pid; wait $pid || true
exec "$bin" serve --gateway-listen 127.0.0.1:$TARGET_PORT --admin-listen 127.0.0.1:$adm --upstream "$UPSTREAM_URL" \
  --database "sqlite://$db" --admin-token $tok --log warn ${SERVE_ARGS:-}
