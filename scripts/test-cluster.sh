#!/usr/bin/env bash
# test-cluster.sh — the tests that need a Kafka cluster of three brokers
# (kafkatest.ClusterBrokers: replication of the topics the library and
# EmoStream create). Uses KAFKA_CLUSTER_BROKERS when set; else starts a
# 3-node cluster with `BROKERS=3 scripts/kafka-local.sh up` (127.0.0.1:29392,
# 29394, 29396) and deletes it again on exit (unless it already ran).
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
	if ! up_out=$(bash scripts/kafka-local.sh up); then
		# Seen once in CI (1 of 6 runs on 2026-12-02): node 3 never answered
		# and the cluster start gave up after 90 s. Its log went with the
		# cluster directory, so the cause is not known (one candidate: the
		# fixed ports lie in Linux's ephemeral range, 32768-60999). Start
		# once more before failing.
		echo "test-cluster.sh: the cluster did not start; stopping it and starting it once more" >&2
		bash scripts/kafka-local.sh down || true
		up_out=$(bash scripts/kafka-local.sh up)
	fi
	KAFKA_CLUSTER_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' <<<"$up_out" | tail -n 1)
	[[ -n $KAFKA_CLUSTER_BROKERS ]] || {
		echo "test-cluster.sh: kafka-local.sh up printed no KAFKA_BROKERS line" >&2
		exit 1
	}
fi
export KAFKA_CLUSTER_BROKERS
echo "test-cluster.sh: KAFKA_CLUSTER_BROKERS=$KAFKA_CLUSTER_BROKERS" >&2
go test -race -count=1 -timeout 10m -run '^TestCluster' "$@" ./pkg/stream/ ./examples/emostream/app/
