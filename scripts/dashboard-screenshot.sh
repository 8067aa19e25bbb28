#!/usr/bin/env bash
# The dashboard screenshot of docs/operators.md, from real data: runs
# `make demo` with its node held for a few minutes, scrapes the node's
# /metrics?format=prometheus with a real Prometheus (Debian's `prometheus`
# package), then renders the panels of docs/grafana/nomtstore.json from
# that Prometheus with scripts/dashboard (Debian has no Grafana package).
#
#   bash scripts/dashboard-screenshot.sh [out.png]    # default docs/img/dashboard.png
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-docs/img/dashboard.png}
HOLD=${DEMO_HOLD_SECONDS:-240}
RPC_PORT=${DEMO_RPC_PORT:-36657}
PROM_PORT=${PROM_PORT:-9190}
command -v prometheus >/dev/null || { echo "needs prometheus (apt-get install prometheus)"; exit 1; }

WORK=$(mktemp -d /tmp/nomtstore-dashboard.XXXXXX)
PROM_PID=""
cleanup() {
	if [[ -n "$PROM_PID" ]] && kill -0 "$PROM_PID" 2>/dev/null; then kill "$PROM_PID"; wait "$PROM_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: nomtsimd
    metrics_path: /metrics
    params: {format: [prometheus]}
    static_configs:
      - targets: ['127.0.0.1:$((RPC_PORT + 3))']
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
	--web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DEMO_HOLD_SECONDS=$HOLD DEMO_RPC_PORT=$RPC_PORT bash scripts/demo.sh
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)

mkdir -p "$(dirname "$OUT")"
go run ./scripts/dashboard --prometheus "http://127.0.0.1:$PROM_PORT" --start "$START" --end "$END" --out "$OUT"
echo "wrote $OUT ($START .. $END, Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'))"
