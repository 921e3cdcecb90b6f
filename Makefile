# Developer entry points. `make test` is what CI runs (through .ci/run).

GO        ?= go
BENCHTIME ?= 1s
BENCHPKGS ?= ./pkg/...
# staticcheck 2026.2.2, the first release line that reads Go 1.26 code; `go
# run` fetches it from the Go module proxy (checked against go.sum's
# database) and caches the build, so nothing needs installing.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test lint vet fmt-check fmt bench bench-compare bench-scale bench-latency bench-ingest bench-seed bench-plots screenshot kafka-up kafka-down kafka-status smoke smoke-rebalance smoke-failover soak

## test: go vet + go test -race against the embedded and a real (local) Kafka
test:
	bash scripts/test.sh

## lint: gofmt check, go vet and staticcheck ($(STATICCHECK)) on every
## package, and every exported name, field and interface method of pkg/
## documented (TestExportedDocumented); CI runs it (.ci/run)
lint: fmt-check vet
	$(GO) run $(STATICCHECK) ./...
	$(GO) test -count=1 -run '^TestExportedDocumented$$' ./pkg/stream/

## vet: go vet all packages
vet:
	$(GO) vet ./...

## fmt-check: fail if any Go file is not gofmt-formatted
fmt-check:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## fmt: gofmt all Go files in place
fmt:
	gofmt -w .

## bench: run benchmarks only (BENCHTIME=5s, BENCHPKGS=./pkg/stream/... to tune)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) $(BENCHPKGS)

## bench-compare: ours vs Kafka Streams 4.4 vs goka on a real local Kafka, writes
## bench/results/latest.json (QUICK=1: 200,000 records instead of 5,000,000;
## see bench/README.md for the other knobs). Needs java 17+ and mvn. Not in CI.
bench-compare:
	QUICK='$(QUICK)' $(GO) run ./bench/compare

## bench-scale: ours vs Kafka Streams over 16 / 10,000 / 1,000,000 distinct
## keys per window, stores in memory and on disk (pebble vs RocksDB), plus the
## restore of a 1,000,000-key store, on a broker of its own (127.0.0.1:30692);
## writes bench/results/scale.json and checks issue #14's targets (QUICK=1:
## 200,000 records per point, at least one per key). Needs java 17+ and mvn.
## Not in CI.
bench-scale:
	QUICK='$(QUICK)' $(GO) run ./bench/compare scale

## bench-latency: end-to-end latency of `emostream run` (embedded broker;
## BROKERS=host:port for a real Kafka): POSTs 2000 emojis/s for 60 s and times
## each window result on /events beyond window_end + grace; writes
## bench/results/latency.json (LATENCY_ARGS='-duration 20s', see -h).
## LATENCY_ARGS='-viewers 5000 -rate 1000 -duration 30s': 5,000 more viewers,
## each must get every result; writes bench/results/viewers.json. Not in CI.
bench-latency:
	$(GO) run ./bench/latency $(if $(BROKERS),-brokers $(BROKERS)) $(LATENCY_ARGS)

## bench-ingest: ingest API throughput, single POSTs and batches of 100, 20 s
## each (BROKERS=host:port for a real Kafka; INGEST_ARGS, see -h); writes
## bench/results/ingest.json. Not in CI.
bench-ingest:
	$(GO) run ./bench/ingest $(if $(BROKERS),-brokers $(BROKERS)) $(INGEST_ARGS)

## bench-seed: EmoStream side by side with the stack it replaces (Flask +
## kafka-python + PySpark 4.2.0, bench/seed/*.py) on a Kafka broker of its own
## (127.0.0.1:30592; BROKERS=host:port to use another): ingest req/s at 32
## connections, result delay, start-up, CPU, RSS, equal counts; writes
## bench/results/seed.json and seed.md (SEED_ARGS, see -h). Needs python3,
## java 17+, mvn; about 3 min (plus pyspark's install the first time). Not in CI.
bench-seed:
	$(GO) run ./bench/seed $(if $(BROKERS),-brokers $(BROKERS)) $(SEED_ARGS)

## bench-plots: draw docs/img/perf-*.png from bench/results/*.json (a chart
## whose results are missing is skipped)
bench-plots:
	$(GO) run ./bench/plot

## screenshot: docs/img/dashboard.png from a real `emostream run
## --load-clients 20` in headless Chromium, once the chart has filled for
## WARMUP seconds (default 100); OUT=path to write elsewhere. Not in CI.
screenshot:
	WARMUP='$(WARMUP)' OUT='$(OUT)' bash scripts/screenshot.sh

## smoke: fault-injection smoke test of EmoStream on its own real Kafka
## (127.0.0.1:29192): aggregator SIGKILLs and a stop, a broker restart, an API
## SIGKILL under load, then exact checks of topic1, topic2 and the DLQ.
## LARGE=1: 1,000,000 emojis; SMOKE_ARGS=-exactly-once (and more, see -h).
## CLUSTER=3: on a 3-broker cluster of its own (127.0.0.1:29292,29294,29296)
## with, on top, a SIGKILL of the topics' busiest partition leader, a
## controlled restart of one broker and a 15 s SIGSTOP of the group coordinator.
smoke:
	$(GO) run ./examples/emostream/smoke $(if $(LARGE),-large) $(if $(CLUSTER),-cluster $(CLUSTER)) $(SMOKE_ARGS)

## smoke-rebalance: the smoke driver's rebalance scenario on its own Kafka
## (127.0.0.1:29194): aggregators scaled 1→2→1→2 (starts, SIGTERMs) under
## 400 emojis/s, no topic2 result written twice so far, then a SIGKILL and
## restart (repeats must be identical), then the exact checks. About 2 min.
## SMOKE_ARGS=-exactly-once (and more, see -h).
smoke-rebalance:
	$(GO) run ./examples/emostream/smoke -scenario rebalance $(SMOKE_ARGS)

## smoke-failover: the smoke driver's failover scenario on its own Kafka
## (127.0.0.1:29196): times, under 400 emojis/s, how long results are late
## after an aggregator SIGKILL (permanent, and with a restart under the same
## --instance-id), scale-out 2→3, scale-in 3→2 and rolling restarts, 5 trials
## each (SMOKE_ARGS='-trials N'); prints median and max per kind and writes
## bench/results/failover.json. About 6 min; not in CI.
smoke-failover:
	$(GO) run ./examples/emostream/smoke -scenario failover $(SMOKE_ARGS)

## test-cluster: the tests that need 3 brokers (replication of the created
## topics) on a 3-node cluster that it starts (or KAFKA_CLUSTER_BROKERS)
test-cluster:
	bash scripts/test-cluster.sh

## kafka-up: start a local single-node Kafka (KRaft) on 127.0.0.1:29092;
## BROKERS=3: a 3-node cluster on 127.0.0.1:29392,29394,29396 (see the
## header of scripts/kafka-local.sh for per-node stop/start/kill/pause)
KAFKA_NODES = $(if $(BROKERS),BROKERS=$(BROKERS))
kafka-up:
	@$(KAFKA_NODES) bash scripts/kafka-local.sh up
	@echo "run: export KAFKA_BROKERS=$$($(KAFKA_NODES) bash scripts/kafka-local.sh brokers)"

## kafka-down: stop the local Kafka and delete its data (BROKERS=3: the cluster)
kafka-down:
	$(KAFKA_NODES) bash scripts/kafka-local.sh down

## kafka-status: tell whether the local Kafka runs and answers (BROKERS=3: the cluster)
kafka-status:
	@$(KAFKA_NODES) bash scripts/kafka-local.sh status

## soak: run emostream under a steady load (DURATION=10m, RATE=2000, BATCH=10)
## and fail if its memory or goroutines grow; see scripts/soak.sh. Not in CI.
soak:
	bash scripts/soak.sh
