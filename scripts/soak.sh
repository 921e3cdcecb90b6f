#!/usr/bin/env bash
# Soak test: run `emostream run` on the embedded broker under a steady load
# for DURATION, sample its memory and goroutines, and say whether they stay
# flat. Exits 0 when they do, 1 when they grow (or the app dies), 2 on bad
# usage.
#
#   scripts/soak.sh                      # 10 minutes, 2000 emojis/s, batch 10
#   DURATION=2m INTERVAL=5s scripts/soak.sh
#
# Knobs (environment):
#   DURATION   how long the load runs (default 10m; Go-style 90s, 10m, 1h)
#   INTERVAL   sampling period (default 15s)
#   WARMUP     samples taken before this are shown but not judged (default 60s)
#   RATE       emojis per second in total (default 2000)
#   BATCH      emojis per request (default 10)
#   CLIENTS    concurrent load clients (default 8)
#   HTTP_PORT  port of the app's HTTP server (default 18080)
#   KAFKA_PORT port of the embedded broker (default 19092)
#   DATA_DIR   --data-dir of the app (default: a fresh temporary directory,
#              removed at the end); set MEMORY=1 to run without one
#   SPLIT      1 runs the embedded broker as a process of its own
#              (`emostream broker`) and `emostream run --brokers` against it,
#              so the app's memory is judged without the broker's; the
#              broker's RSS is shown in an extra column
#   RETENTION  --retention of the app's topics on the embedded broker
#              (default 2m, so a 10-minute soak reaches the steady state
#              where old records expire as fast as new ones arrive)
#   RSS_GROWTH allowed ratio of the last third's max RSS to the first
#              third's (default 1.25)
#   OUT        also write the table to this file
#
# Verdict: after WARMUP the samples are split into thirds. Memory is flat
# when the last third's highest RSS is at most RSS_GROWTH times the first
# third's highest; goroutines are flat when the last third's highest count is
# at most 10% + 20 above the first third's. The load must also get its emojis
# accepted with (almost) no errors.
set -euo pipefail

DURATION=${DURATION:-10m}
RETENTION=${RETENTION:-2m}
INTERVAL=${INTERVAL:-15s}
WARMUP=${WARMUP:-60s}
RATE=${RATE:-2000}
BATCH=${BATCH:-10}
CLIENTS=${CLIENTS:-8}
HTTP_PORT=${HTTP_PORT:-18080}
KAFKA_PORT=${KAFKA_PORT:-19092}
RSS_GROWTH=${RSS_GROWTH:-1.25}
MEMORY=${MEMORY:-0}
SPLIT=${SPLIT:-0}
OUT=${OUT:-}

# seconds converts 90, 90s, 10m or 1h to seconds.
seconds() {
	local v=$1
	case $v in
	*h) echo $((${v%h} * 3600)) ;;
	*m) echo $((${v%m} * 60)) ;;
	*s) echo "${v%s}" ;;
	*) echo "$v" ;;
	esac
}
for v in DURATION INTERVAL WARMUP; do
	if ! [[ $(seconds "${!v}") =~ ^[0-9]+$ ]]; then
		echo "soak: $v=${!v} is not a duration like 90s, 10m or 1h" >&2
		exit 2
	fi
done
duration_s=$(seconds "$DURATION")
interval_s=$(seconds "$INTERVAL")
warmup_s=$(seconds "$WARMUP")
if ((interval_s < 1 || duration_s < 3 * interval_s)); then
	echo "soak: DURATION ($DURATION) must be at least 3 INTERVALs ($INTERVAL)" >&2
	exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/emostream-soak.XXXXXX")
bin=$work/emostream
app_pid=
load_pid=
broker_pid=

# stop ends one child: SIGINT (graceful), then SIGKILL after 20 s.
stop() {
	local pid=$1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -INT "$pid" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "soak: pid $pid did not stop in 20 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop "$load_pid"
	stop "$app_pid"
	stop "$broker_pid"
	load_pid= app_pid= broker_pid=
	if [[ -n ${KEEP:-} ]]; then
		echo "soak: logs kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak: building emostream"
(cd "$root" && go build -o "$bin" ./examples/emostream)

data=${DATA_DIR:-$work/data}
args=(run --http "127.0.0.1:$HTTP_PORT")
if [[ $SPLIT == 1 ]]; then
	bargs=(broker --broker-listen "127.0.0.1:$KAFKA_PORT" --retention "$RETENTION")
	[[ $MEMORY != 1 ]] && bargs+=(--data-dir "$data/broker-process")
	"$bin" "${bargs[@]}" >"$work/broker.out" 2>"$work/broker.err" &
	broker_pid=$!
	for _ in $(seq 300); do
		grep -q 'listening on' "$work/broker.out" 2>/dev/null && break
		sleep 0.1
	done
	args+=(--brokers "127.0.0.1:$KAFKA_PORT")
else
	args+=(--broker-listen "127.0.0.1:$KAFKA_PORT" --retention "$RETENTION")
fi
if [[ $MEMORY != 1 ]]; then
	args+=(--data-dir "$data")
fi
base=http://127.0.0.1:$HTTP_PORT
# The app must not pick up EMOSTREAM_* settings from the caller's
# environment.
env $(env | awk -F= '/^EMOSTREAM_/ { printf "-u %s ", $1 }') "$bin" "${args[@]}" >"$work/app.out" 2>"$work/app.err" &
app_pid=$!
for _ in $(seq 600); do
	curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
	if ! kill -0 "$app_pid" 2>/dev/null; then
		echo "soak: emostream run exited at start:" >&2
		tail -5 "$work/app.err" >&2
		exit 1
	fi
	sleep 0.1
done
curl -fsS -o /dev/null "$base/healthz" || {
	echo "soak: $base/healthz not ready after 60 s" >&2
	exit 1
}
"$bin" load --target "$base" --clients "$CLIENTS" --rate "$RATE" --batch "$BATCH" --duration 0 \
	>"$work/load.out" 2>&1 &
load_pid=$!
what="emostream run (pid $app_pid) with its embedded broker"
[[ $SPLIT == 1 ]] && what="emostream run (pid $app_pid) against emostream broker (pid $broker_pid)"
echo "soak: $what on $base, Kafka 127.0.0.1:$KAFKA_PORT; load $RATE emojis/s, batch $BATCH, $CLIENTS clients; $DURATION, a sample every $INTERVAL"

# metric prints one metric's value (the sum over its label sets).
metric() {
	awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; f = 1 } END { if (f) printf "%.0f", s; else print "NA" }' "$work/metrics"
}

samples=()
header=$(printf '%8s %9s %10s %10s %12s %8s' elapsed rss_MiB heap_MiB goroutines accepted windows)
[[ $SPLIT == 1 ]] && header+=$(printf ' %14s' broker_rss_MiB)
echo "$header"
[[ -n $OUT ]] && echo "$header" >"$OUT"
start=$(date +%s)
next=$start
status=0
while :; do
	now=$(date +%s)
	if ((next > now)); then sleep $((next - now)); fi
	elapsed=$(($(date +%s) - start))
	if ! kill -0 "$app_pid" 2>/dev/null; then
		echo "soak: emostream run died after ${elapsed}s:" >&2
		tail -5 "$work/app.err" >&2
		app_pid=
		status=1
		break
	fi
	rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$app_pid/status")
	if ! curl -fsS -m 5 -o "$work/metrics" "$base/metrics"; then
		: >"$work/metrics"
	fi
	heap=$(metric go_memstats_heap_inuse_bytes)
	gor=$(metric go_goroutines)
	acc=$(metric emostream_api_emojis_accepted_total)
	win=$(metric emostream_dashboard_results_total)
	heap_mib=NA
	[[ $heap != NA ]] && heap_mib=$(awk -v b="$heap" 'BEGIN { printf "%.1f", b / 1048576 }')
	row=$(printf '%7ss %9.1f %10s %10s %12s %8s' "$elapsed" "$(awk -v k="$rss_kb" 'BEGIN { print k / 1024 }')" "$heap_mib" "$gor" "$acc" "$win")
	if [[ $SPLIT == 1 ]]; then
		if ! kill -0 "$broker_pid" 2>/dev/null; then
			echo "soak: emostream broker died after ${elapsed}s:" >&2
			tail -5 "$work/broker.err" >&2
			broker_pid=
			status=1
			break
		fi
		broker_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status")
		row+=$(printf ' %14.1f' "$(awk -v k="$broker_kb" 'BEGIN { print k / 1024 }')")
	fi
	echo "$row"
	[[ -n $OUT ]] && echo "$row" >>"$OUT"
	samples+=("$elapsed $rss_kb $gor $acc ${broker_kb:-0}")
	((elapsed >= duration_s)) && break
	next=$((next + interval_s))
done

stop "$load_pid"
load_pid=
echo
sed 's/\x1b\[K//g; s/\r/\n/g' "$work/load.out" | grep -v '^\[' | sed '/^$/d' || true

if ((status == 0)); then
	printf '%s\n' "${samples[@]}" | awk -v warm="$warmup_s" -v growth="$RSS_GROWTH" -v apart="$((SPLIT == 1))" '
		$1 >= warm { n++; t[n] = $1; rss[n] = $2; gor[n] = $3; acc[n] = $4; brk[n] = $5 }
		END {
			if (n < 3) { print "verdict: NOT ENOUGH SAMPLES after warm-up (" n ")"; exit 1 }
			third = int(n / 3)
			for (i = 1; i <= third; i++) { if (rss[i] > r1) r1 = rss[i]; if (gor[i] > g1) g1 = gor[i] }
			for (i = n - third + 1; i <= n; i++) { if (rss[i] > r3) r3 = rss[i]; if (gor[i] > g3) g3 = gor[i] }
			ok = 1
			ratio = r3 / r1
			if (ratio > growth) ok = 0
			if (gor[1] == "NA" || g3 > g1 * 1.1 + 20) ok = 0
			rate = (acc[n] - acc[1]) / (t[n] - t[1])
			if (apart) printf "emostream broker RSS (not judged): %.1f MiB after warm-up, %.1f MiB at the end\n", brk[1] / 1024, brk[n] / 1024
			printf "judged: the emostream run process%s\n", apart ? " (the broker runs apart)" : ", embedded broker included"
			printf "first third (after %ds warm-up): max RSS %.1f MiB, max goroutines %s\n", warm, r1 / 1024, g1
			printf "last third:                      max RSS %.1f MiB, max goroutines %s\n", r3 / 1024, g3
			printf "accepted %.0f emojis/s on average over the judged samples\n", rate
			if (ok) printf "verdict: FLAT (RSS ratio %.2f <= %s, goroutines %s -> %s)\n", ratio, growth, g1, g3
			else printf "verdict: GROWING (RSS ratio %.2f, limit %s; goroutines %s -> %s, limit %.0f)\n", ratio, growth, g1, g3, g1 * 1.1 + 20
			exit !ok
		}' || status=1
	errs=$(awk '$1 == "errors" { print $2 }' "$work/load.out" | tail -1)
	reqs=$(awk '$1 == "requests" { gsub(",", "", $2); print $2 }' "$work/load.out" | tail -1)
	if [[ -z $errs || -z $reqs ]]; then
		echo "soak: no load summary (see $work/load.out)" >&2
		status=1
	elif awk -v e="$errs" -v r="$reqs" 'BEGIN { exit !(e * 100 > r) }'; then
		# A few 503s while the broker settles are tolerated; 1% is not.
		echo "soak: $errs of $reqs load requests failed" >&2
		status=1
	fi
fi
exit $status
