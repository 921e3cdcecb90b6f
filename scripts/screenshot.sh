#!/usr/bin/env bash
# Takes the README's dashboard screenshot (docs/img/dashboard.png) from a real
# `emostream run --load-clients 20`: builds emostream, starts it on free
# loopback ports with its embedded broker, lets the simulated clients fill
# the chart for WARMUP seconds (default 100), then has headless Chromium load
# the page and save it once live results arrive (scripts/screenshot). Needs
# chromium (Debian: apt-get install chromium fonts-noto-color-emoji). Used by
# `make screenshot`.
#
#   OUT=/tmp/shot.png WARMUP=30 bash scripts/screenshot.sh
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-docs/img/dashboard.png}
WARMUP=${WARMUP:-100}
WIDTH=${WIDTH:-1280}
HEIGHT=${HEIGHT:-720}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/emostream" ./examples/emostream
http_port=$(free_port)
broker_port=$(free_port)
url="http://127.0.0.1:$http_port/"
"$work/emostream" run --load-clients 20 --http "127.0.0.1:$http_port" --broker-listen "127.0.0.1:$broker_port" \
	>"$work/emostream.log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
	if curl -fsS "${url}healthz" >/dev/null 2>&1; then break; fi
	if ! kill -0 "$pid" 2>/dev/null; then cat "$work/emostream.log" >&2; exit 1; fi
	sleep 0.2
done
curl -fsS "${url}healthz" >/dev/null || { echo "screenshot: emostream never became healthy" >&2; cat "$work/emostream.log" >&2; exit 1; }
echo "screenshot: emostream run --load-clients 20 on $url; letting the chart fill for ${WARMUP}s..."
sleep "$WARMUP"

mkdir -p "$(dirname "$OUT")"
# Chromium's own --screenshot would shoot as soon as the page loads, before
# any live result; scripts/screenshot waits for them (same headless flags).
go run ./scripts/screenshot -url "$url" -out "$OUT" -width "$WIDTH" -height "$HEIGHT"
test -s "$OUT" || { echo "screenshot: nothing written" >&2; exit 1; }
echo "screenshot: wrote $OUT"
