#!/usr/bin/env bash
# test.sh — vet and test the whole module, with a real Kafka when possible.
#
# Usage: scripts/test.sh [packages...]        (default ./...)
#
# Real-Kafka tests (kafkatest.RealBrokers) need KAFKA_BROKERS:
#   * if KAFKA_BROKERS is already set, it is used as is;
#   * else, if java and mvn are available, a local broker is started with
#     scripts/kafka-local.sh and stopped again on exit (unless it was already
#     running before this script, e.g. after `make kafka-up`);
#   * else the real-Kafka tests are SKIPPED — or, with CI=true, this script
#     fails, because CI must test against a real Kafka.
#
# Extra `go test` flags come from GOTESTFLAGS, e.g. GOTESTFLAGS='-run Foo -v'.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

banner() {
	cat >&2 <<'EOF_BANNER'

##########################################################################
##                                                                      ##
##   WARNING: REAL-KAFKA TESTS ARE SKIPPED                              ##
##                                                                      ##
##   KAFKA_BROKERS is not set and java/mvn were not found, so no local  ##
##   Kafka broker can be started. Only the embedded (in-process) broker ##
##   is tested.                                                         ##
##                                                                      ##
##   To run them: install a JDK (17+) and Maven, then `make test`;      ##
##   or point KAFKA_BROKERS at a broker (host:port[,host:port...]).     ##
##                                                                      ##
##########################################################################

EOF_BANNER
}

if [[ -n ${KAFKA_BROKERS:-} ]]; then
	echo "test.sh: using KAFKA_BROKERS=$KAFKA_BROKERS" >&2
elif command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
	if ! bash scripts/kafka-local.sh status >/dev/null 2>&1; then
		# We start it, so we stop it, whatever happens next.
		trap 'bash scripts/kafka-local.sh down || true' EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	else
		echo "test.sh: reusing the local Kafka that is already running (left running)" >&2
	fi
	up_out=$(bash scripts/kafka-local.sh up)
	KAFKA_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' <<<"$up_out" | tail -n 1)
	[[ -n $KAFKA_BROKERS ]] || {
		echo "test.sh: kafka-local.sh up printed no KAFKA_BROKERS line" >&2
		exit 1
	}
	export KAFKA_BROKERS
	echo "test.sh: using local Kafka KAFKA_BROKERS=$KAFKA_BROKERS" >&2
else
	banner
	if [[ ${CI:-} == true ]]; then
		echo "test.sh: CI=true requires a real Kafka broker; failing." >&2
		exit 1
	fi
fi

pkgs=("$@")
((${#pkgs[@]})) || pkgs=(./...)
read -r -a extra <<<"${GOTESTFLAGS:-}"

echo "test.sh: go vet ${pkgs[*]}" >&2
go vet "${pkgs[@]}"

echo "test.sh: go test -race -count=1 -timeout 30m ${extra[*]} ${pkgs[*]}" >&2
go test -race -count=1 -timeout 30m "${extra[@]}" "${pkgs[@]}"
