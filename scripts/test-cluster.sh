#!/usr/bin/env bash
# test-cluster.sh — the tests that need a Kafka cluster of three brokers
# (kafkatest.ClusterBrokers: replication of the topics the library and
# EmoStream create). Uses KAFKA_CLUSTER_BROKERS when set; else starts a
# 3-node cluster with `BROKERS=3 scripts/kafka-local.sh up` (127.0.0.1:39392,
# 39394, 39396) and deletes it again on exit (unless it already ran).
#
# Usage: scripts/test-cluster.sh [go test flags...]   (make test-cluster)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export BROKERS=3

if [[ -z ${KAFKA_CLUSTER_BROKERS:-} ]]; then
	if ! bash scripts/kafka-local.sh status >/dev/null 2>&1; then
		trap 'bash scripts/kafka-local.sh down || true' EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	else
		echo "test-cluster.sh: reusing the 3-node cluster that is already running (left running)" >&2
	fi
	up_out=$(bash scripts/kafka-local.sh up)
	KAFKA_CLUSTER_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' <<<"$up_out" | tail -n 1)
	[[ -n $KAFKA_CLUSTER_BROKERS ]] || {
		echo "test-cluster.sh: kafka-local.sh up printed no KAFKA_BROKERS line" >&2
		exit 1
	}
fi
export KAFKA_CLUSTER_BROKERS
echo "test-cluster.sh: KAFKA_CLUSTER_BROKERS=$KAFKA_CLUSTER_BROKERS" >&2
go test -race -count=1 -timeout 10m -run '^TestCluster' "$@" ./pkg/stream/ ./examples/emostream/app/
