# Developer entry points. `make test` is what CI runs (through .ci/run).

GO        ?= go
BENCHTIME ?= 1s
BENCHPKGS ?= ./pkg/...

.PHONY: test vet fmt-check fmt bench bench-compare kafka-up kafka-down kafka-status

## test: go vet + go test -race against the embedded and a real (local) Kafka
test:
	bash scripts/test.sh

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

## kafka-up: start a local single-node Kafka (KRaft) on 127.0.0.1:39092
kafka-up:
	@bash scripts/kafka-local.sh up
	@echo "run: export KAFKA_BROKERS=$$(bash scripts/kafka-local.sh brokers)"

## kafka-down: stop the local Kafka and delete its data
kafka-down:
	bash scripts/kafka-local.sh down

## kafka-status: tell whether the local Kafka runs and answers
kafka-status:
	@bash scripts/kafka-local.sh status
