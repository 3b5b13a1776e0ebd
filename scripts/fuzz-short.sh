#!/usr/bin/env bash
# Runs every fuzz target for a few seconds (FUZZTIME, default 3s) on top
# of its committed seed corpus (f.Add seeds and testdata/fuzz/<Name>/).
# Called by `make test`; about a minute in total. A crash leaves its input
# under the package's testdata/fuzz/<Name>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-3s}"

targets=(
	"./pkg/sse FuzzFrame"
	"./pkg/sse FuzzComment"
	"./pkg/notification FuzzValidateTopic"
	"./pkg/notification FuzzValidateType"
	"./pkg/notification FuzzNormalizeTopics"
	"./pkg/notification FuzzDecodePublished"
	"./pkg/auth FuzzFromRequest"
	"./read-api/internal/cursor FuzzParse"
	"./read-api/internal/cursor FuzzRoundTrip"
	"./write-api/internal/httpapi FuzzDecodePublish"
	"./write-api/internal/httpapi FuzzDecodeBatch"
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
	read -r pkg name <<<"$t"
	echo "== $name ($pkg, $FUZZTIME)"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg"
done
