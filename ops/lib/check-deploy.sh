#!/usr/bin/env bash
# Checks what can be checked here of ops/deploy/: `nginx -t` on the nginx config (rendered with local
# ports), the alert rules parse as Prometheus rule groups with the agreed thresholds, the dashboard is
# JSON. (The metric names they query are checked against live services by tests/tests/metrics.rs.)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/pressroom-deploy-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
mkdir -p "$work/cache" "$work/logs"
sed -e "s|__LISTEN__|127.0.0.1:18880|" -e "s|__QUERY_1__|127.0.0.1:18881|" -e "s|__QUERY_2__|127.0.0.1:18882|" -e "s|__COMMAND__|127.0.0.1:18883|" \
    -e "s|__CACHE_DIR__|$work/cache|" -e "s|__PID__|$work/nginx.pid|" -e "s|__LOGS__|$work/logs|" \
    ops/deploy/nginx.conf >"$work/nginx.conf"
"$nginx_bin" -t -q -p "$work" -c "$work/nginx.conf" -g "error_log $work/logs/startup.log;"

python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml >&2
python3 - <<'PY'
import json, yaml
rules = yaml.safe_load(open("ops/deploy/pressroom-alerts.yml"))
alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
for name, r in alerts.items():
    assert r["expr"] and r["labels"]["severity"] in ("warning", "critical"), name
expect = {"PressroomLatencyP95High": "> 0.2", "PressroomLatencyP95Critical": "> 0.5",
          "Pressroom5xxRatioHigh": "> 0.005", "Pressroom5xxRatioCritical": "> 0.02",
          "PressroomCacheHitRatioLow": "< 0.85", "PressroomCacheHitRatioCritical": "< 0.70"}
for name, threshold in expect.items():
    assert alerts[name]["expr"].rstrip().endswith(threshold), (name, alerts[name]["expr"])
for name in ("PressroomProjectionLagging", "PressroomReplicaLagging"):
    assert name in alerts, name
prom = yaml.safe_load(open("ops/deploy/prometheus.yml"))
assert prom["rule_files"] == ["pressroom-alerts.yml"] and len(prom["scrape_configs"]) == 3
dash = json.load(open("ops/deploy/grafana-dashboard.json"))
assert all(t["expr"] for p in dash["panels"] for t in p["targets"])
print(f"deploy: nginx -t ok, {len(alerts)} alert rules, {len(dash['panels'])} dashboard panels")
PY
