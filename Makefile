# The two commands: `make run` runs the product with its embedded defaults (demo mode),
# `make test` runs the tests. Both install what is missing first.
GO ?= go
BIN := bin/opscenter

.PHONY: run test build deps-run deps-test bench soak vet

run: deps-run build
	./$(BIN) serve --demo

test: deps-test
	./scripts/test.sh

build:
	$(GO) build -o $(BIN) ./cmd/opscenter

deps-run:
	./scripts/install-deps.sh run

deps-test:
	./scripts/install-deps.sh test

vet:
	$(GO) vet ./...

# The province scenario for 60 s; appends its figures to docs/benchmarks.md.
bench: deps-run
	./scripts/bench.sh

# 190 synthetic endpoints with churn for SOAK_DURATION (default 30m).
soak: deps-run
	./scripts/soak.sh

# The election day replayed (docs/replay.md): the full day at speed 60, every endpoint with media.
.PHONY: replay
replay: deps-run build
	./$(BIN) replay --speed 60 --media all
