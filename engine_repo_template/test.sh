#!/usr/bin/env bash
# The oracle: build, unit tests, then every SQL case compared with sqlite3 (oracle/run.py).
#
#   ./test.sh            full tier, human-readable
#   ./test.sh --fast     smoke set + ~10% sample seeded by $AGENT_ID
#   ./test.sh --json     last line of stdout is one JSON summary
#   ./test.sh --strict   also fail when any SQL case fails (for humans; the swarm counts instead)
# Other arguments go to oracle/run.py (see `python3 oracle/run.py --help`).
#
# Exit status: 0 when the build and `cargo test` pass and the SQL oracle ran to completion, EVEN IF some SQL
# cases fail (they are counted; the swarm only requires the passing count never to drop). Non-zero when the
# build fails, a unit test fails, or the oracle itself crashes. Cargo's own output goes to stderr so that
# stdout holds only the oracle's report. Respects CARGO_TARGET_DIR (the runner looks for the engine there).
set -euo pipefail
cd "$(dirname "$0")"

json=0
for arg in "$@"; do
    [[ "$arg" == "--json" ]] && json=1
done

# With --json the swarm still gets a parsable last line when we stop before the oracle.
stop() {
    local what="$1" cargo_test="$2"
    echo "test.sh: $what" >&2
    if [[ $json == 1 ]]; then
        printf '{"passed":0,"failed":0,"skipped":0,"areas":{},"cargo_test":"%s","error":"%s"}\n' "$cargo_test" "$what"
    fi
    exit 1
}

cargo build --offline --workspace --quiet 1>&2 || stop "build failed" "not run"
cargo test --offline --workspace --quiet 1>&2 || stop "cargo test failed" "failed"
exec "${PYTHON:-python3}" oracle/run.py --cargo-test ok "$@"
