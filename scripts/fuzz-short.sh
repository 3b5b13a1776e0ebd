#!/usr/bin/env bash
# Runs every fuzz target for a fixed number of executions on top of its
# committed seed corpus (f.Add seeds and testdata/fuzz/<Name>/). Called by
# `make test`; about a minute in total. A crash leaves its input under the
# package's testdata/fuzz/<Name>/ and fails the script.
#
# Budgets are execution counts ("Nx"), not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when the deadline fires (golang/go#75804, fixed in Go 1.27);
# it failed CI once on FuzzValidateTopic. Counts are sized for about 2 s
# each on 2 cores. FUZZTIME=30s (or 100000x) overrides every budget.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-}"

targets=(
	"./pkg/sse FuzzFrame 6000x"
	"./pkg/sse FuzzComment 30000x"
	"./pkg/notification FuzzValidateTopic 15000x"
	"./pkg/notification FuzzValidateType 60000x"
	"./pkg/notification FuzzNormalizeTopics 30000x"
	"./pkg/notification FuzzDecodePublished 60000x"
	"./pkg/auth FuzzFromRequest 30000x"
	"./read-api/internal/cursor FuzzParse 15000x"
	"./read-api/internal/cursor FuzzRoundTrip 60000x"
	"./write-api/internal/httpapi FuzzDecodePublish 4500x"
	"./write-api/internal/httpapi FuzzDecodeBatch 12000x"
)

# Every Fuzz function in the tree must be listed above.
listed=$(printf '%s\n' "${targets[@]}" | awk '{print $2}' | sort)
found=$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' --include='*_test.go' pkg write-api read-api | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort)
if [[ "$listed" != "$found" ]]; then
	echo "fuzz-short.sh: fuzz targets in the tree differ from the list:" >&2
	diff <(echo "$listed") <(echo "$found") >&2 || true
	exit 1
fi

for t in "${targets[@]}"; do
	read -r pkg name budget <<<"$t"
	budget="${FUZZTIME:-$budget}"
	echo "== $name ($pkg, $budget)"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$budget" "$pkg"
done
