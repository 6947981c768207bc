# auditwatch — see README.md. Every target that needs services starts them
# with deploy/services/up.sh (installing ClickHouse and Kafka on first use).

GO        ?= go
BIN       := bin/auditwatch
STATE     ?= $(CURDIR)/.state
export AW_STATE := $(STATE)
TEST_ENV  := AUDITWATCH_TEST_CLICKHOUSE=127.0.0.1:$${AW_CH_PORT:-19000} AUDITWATCH_TEST_KAFKA=127.0.0.1:$${AW_KAFKA_PORT:-19092} AUDITWATCH_TEST_KAFKA_SASL=127.0.0.1:$${AW_KAFKA_SASL_PORT:-$$(($${AW_KAFKA_PORT:-19092}+2))} AUDITWATCH_TEST_KAFKA_SSL=127.0.0.1:$${AW_KAFKA_SSL_PORT:-$$(($${AW_KAFKA_PORT:-19092}+3))}

.PHONY: all build services services-down chdb test test-unit fuzz demo bench bench-rules bench-summary bench-rollup-cost anomaly-eval alert-noise bench-micro bench-alert-latency vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/auditwatch

services:
	deploy/services/up.sh

services-down:
	deploy/services/down.sh

chdb:
	deploy/chdb/install.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd ingest detect rules alerts deploy 2>/dev/null)" || { echo "gofmt needed:"; gofmt -l cmd ingest detect rules alerts deploy; exit 1; }

## test: everything, against real ClickHouse and Kafka (the README's test command)
test: services cluster-services chdb vet
	$(GO) test -race -count=1 -run '^TestUnit' ./ingest/
	$(TEST_ENV) $(CLUSTER_ENV) CI=$${CI:-true} $(GO) test -count=1 -timeout 20m ./...

## test-current: the suite again against current ClickHouse (26.x: chdb's engine as a server, deploy/services/clickhouse-current.sh,
## users from deploy/clickhouse/current/users.d); the server is stopped afterwards, pass or fail
.PHONY: test-current
test-current: services cluster-services chdb
	@trap 'deploy/services/clickhouse-current.sh stop' EXIT; \
	deploy/services/clickhouse-current.sh start && \
	$(TEST_ENV) $(CLUSTER_ENV) AUDITWATCH_TEST_CLICKHOUSE=127.0.0.1:$${AW_CHC_PORT:-29000} AUDITWATCH_TEST_CLICKHOUSE_HTTP=127.0.0.1:$${AW_CHC_HTTP_PORT:-28123} \
	CI=$${CI:-true} $(GO) test -count=1 -timeout 20m $${TEST_CURRENT_PKGS:-./...}

## test-unit: only what needs no services (integration tests skip)
test-unit:
	$(GO) test -count=1 ./...

## fuzz: run the decoder fuzzer for FUZZTIME (default 60s)
fuzz:
	$(GO) test -run XXX -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-60s} ./ingest/event/
	$(GO) test -run XXX -fuzz '^FuzzWireAgreesWithReflectiveDecoder$$' -fuzztime $${FUZZTIME:-60s} ./ingest/event/
	$(GO) test -run XXX -fuzz '^FuzzRoute$$' -fuzztime $${FUZZTIME:-60s} ./ingest/event/

## demo: the whole local pipeline: services, schema, generated traffic with incidents, ingest, queries
demo: services build
	deploy/demo.sh

## bench: 1M generated events drained from Kafka into ClickHouse RUNS times (default 5); median and range of events/s,
## ingester CPU s per 1M and peak RSS, ClickHouse and Kafka CPU s per 1M (out/bench.json). BENCH_ALTERNATE=1 alternates
## runs with and without the rollup's view; BENCH_NO_ROLLUPS=1 drops it in every run; BENCH_BASELINE=bin/old alternates
## runs between bin/auditwatch and that binary (an A/B on the same day), BENCH_BASELINE_CONFIG=f.yml between BENCH_CONFIG
## (or the defaults) and that configuration.
bench: services build
	$(GO) run ./deploy/bench/ingestbench -events $${EVENTS:-1000000} -runs $${RUNS:-5} \
		$${BENCH_ALTERNATE:+-alternate} $${BENCH_NO_ROLLUPS:+-no-rollup} $${BENCH_CONFIG:+-config $$BENCH_CONFIG} $${BENCH_BASELINE:+-baseline $$BENCH_BASELINE} $${BENCH_BASELINE_CONFIG:+-baseline-config $$BENCH_BASELINE_CONFIG}

## bench-rules: each default rule's evaluation time over EVENTS stored events (default 10M; loaded once)
bench-rules: services
	$(TEST_ENV) AUDITWATCH_BENCH_EVENTS=$${EVENTS:-10000000} $(GO) test -run XXX -bench BenchmarkDefaultRules -benchtime 20x -timeout 60m ./detect/

## bench-summary: summary build + HTML render time over EVENTS stored events (default 10M; loaded once)
bench-summary: services
	$(TEST_ENV) AUDITWATCH_BENCH_EVENTS=$${EVENTS:-10000000} $(GO) test -run XXX -bench BenchmarkSummary -benchtime 10x -timeout 60m ./detect/summary/

## bench-rollup-cost: insert time of 50k-row batches with and without the rollups' materialized views
bench-rollup-cost: services
	$(TEST_ENV) $(GO) test -run XXX -bench BenchmarkWrite -benchtime 20x -count 3 ./ingest/chsink/

## anomaly-eval: the anomaly rules over 28 generated days: incidents found, false findings per 100 key-days
anomaly-eval: services
	$(TEST_ENV) $(GO) test -count=1 -run TestAnomalyRulesOnGeneratedHistory -v ./detect/ | grep -E "anomaly_eval_test|PASS|FAIL"

## alert-noise: the whole pack over 7 of 21 generated days with noise and every incident: noise alerts per 100 keys per day, incidents alerted
alert-noise: services
	@out=$$(mktemp); $(TEST_ENV) AUDITWATCH_ALERT_NOISE=1 $(GO) test -count=1 -timeout 60m -run TestAlertNoise -v ./detect/ >$$out 2>&1; rc=$$?; \
	grep -E "alertnoise_test|^(--- )?(PASS|FAIL)|^ok" $$out || cat $$out; rm -f $$out; exit $$rc

## bench-alert-latency: 20 invalid-signature bursts through Kafka → ingest → detect → Slack (local API server); p50/p95/max to out/bench-alert-latency.json
bench-alert-latency: services build
	$(TEST_ENV) AUDITWATCH_BENCH_ALERT_LATENCY=1 $(GO) test -count=1 -timeout 20m -run '^TestAlertLatencyBench$$' -v ./cmd/auditwatch/

## bench-micro: Go benchmarks (decoder, generator)
bench-micro:
	$(GO) test -run XXX -bench . -benchmem ./ingest/...

clean:
	rm -rf bin

.PHONY: helm-test
## helm-test: the Helm chart (deploy/helm): helm lint --strict, and helm template with the default, cluster and
## monitoring values decoded strictly into k8s.io/api types; builds the pinned helm once into $(STATE)/bin (no cluster)
helm-test:
	deploy/helm/install-helm.sh >/dev/null
	cd deploy/helm && $(GO) vet ./... && HELM=$(STATE)/bin/helm $(GO) test -count=1 ./...

# The two-server ClickHouse cluster of deploy/services/cluster.sh (docs/cluster.md).
CLUSTER_ENV := AUDITWATCH_TEST_CLICKHOUSE_CLUSTER=127.0.0.1:$${AW_CLUSTER_PORT1:-19100},127.0.0.1:$${AW_CLUSTER_PORT2:-19200} AUDITWATCH_TEST_CLICKHOUSE_CLUSTER_NAME=$${AW_CLUSTER_NAME:-aw_cluster}

.PHONY: cluster-services cluster-services-down test-cluster
## cluster-services: ZooKeeper (Debian's zookeeper) + two ClickHouse 18.16 servers, one shard with two replicas
cluster-services:
	deploy/services/cluster.sh install
	deploy/services/cluster.sh start

cluster-services-down:
	deploy/services/cluster.sh stop

## test-cluster: only the cluster-mode tests (migrations, ingest, retention, the default pack), one package at a time
test-cluster: services cluster-services
	$(TEST_ENV) $(CLUSTER_ENV) CI=$${CI:-true} $(GO) test -p 1 -count=1 -timeout 30m -run 'Cluster' ./deploy/migrations/ ./deploy/cluster/ ./ingest/ ./ingest/retention/ ./cmd/auditwatch/
