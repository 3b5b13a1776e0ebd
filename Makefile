# Notify — build, run and test. See README.md.
SHELL := /bin/bash
GO ?= go
BIN := bin
MODULES := ./pkg/... ./write-api/... ./read-api/... ./e2e/... ./deploytest/... ./loadgen/...
export CGO_ENABLED ?= 0

.PHONY: build run test test-js console-js bench bench-fleet vet fmt clean

build: ## static binaries bin/write-api and bin/read-api
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/write-api ./write-api
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/read-api ./read-api

run: build ## local stack: Redis, write-api :8080, read-api :8081 and :8082
	./scripts/run-local.sh

test: test-js ## every test: the browser client, unit, integration (real redis-server), end-to-end, short fuzzing
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(MODULES)
	./scripts/fuzz-short.sh

test-js: ## the browser client (clients/js): build, size budget, node --test
	cd clients/js && npm ci --no-audit --no-fund && npm test

console-js: ## rebuild the console's copy of the browser client bundle
	cd clients/js && npm ci --no-audit --no-fund && npm run console

bench: build ## load scenarios against a local stack it starts; figures vs a plain net/http SSE baseline (docs/bench.md)
	$(GO) build -trimpath -o $(BIN)/loadgen ./loadgen
	./$(BIN)/loadgen bench -bin $(BIN) $(BENCH_FLAGS)

bench-fleet: build ## 90,000 seller streams on 5 read-api pods, the seller workload, a rolling restart; FLEET_FLAGS='-scale 0.1' for a short run (docs/bench.md)
	$(GO) build -trimpath -o $(BIN)/loadgen ./loadgen
	$(GO) build -trimpath -ldflags='-s -w' -tags pprof -o $(BIN)/pprof/read-api ./read-api
	./$(BIN)/loadgen fleet -bin $(BIN) $(FLEET_FLAGS)

vet:
	$(GO) vet $(MODULES)

fmt:
	gofmt -w pkg write-api read-api e2e deploytest loadgen

clean:
	rm -rf $(BIN)
