#!/usr/bin/env bash
# Every test nmiface has, as README.md gives it and as CI (.ci/run) runs it.
#
# 1. Installs what the tests need (Debian packages; needs root). Without root, checks that need
#    NetworkManager or libvirt skip with a banner; under CI=true a skip is a failure.
# 2. Lints: rustfmt, clippy and rustdoc with warnings as errors.
# 3. cargo test: unit tests, the sample suite (golden files, round trips, invalid samples, the
#    libvirt oracle, the compat corpus in ../shared), the CLI tests, hostile input, and the tests
#    against a real NetworkManager in a namespace sandbox.
# 4. The Debian package: built with cargo-deb, installed with dpkg -i into a throwaway root
#    (a mount namespace), its nmiface --version and man pages checked (integration/deb.sh);
#    it builds while the tests of 3 run (they mostly wait on NetworkManager).
# 5. The real-kernel tier: a qemu guest with Debian's kernel runs bonds and VLANs for real
#    (integration/vm/run.sh; NMIFACE_SKIP_VM=1 skips it locally, never under CI).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 ]]; then
    bash integration/install-deps.sh
elif [[ ${CI:-} == true ]]; then
    echo "test-all.sh: CI needs root to install packages and run NetworkManager" >&2
    exit 1
else
    echo "*** test-all.sh: not root: not installing packages; NM and libvirt checks will skip ***" >&2
fi

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --locked --all-targets --quiet -- -D warnings
echo "== docs (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet
echo "== tests"
cargo test --locked --no-run --quiet 2>&1
# The Debian package needs a release build. Most of the test time is spent waiting on
# NetworkManager, so the package is built and checked meanwhile.
deb_log=$(mktemp /tmp/nmiface-deb.XXXXXX.log)
trap 'rm -f "$deb_log"' EXIT
( nice -n 5 bash integration/deb.sh >"$deb_log" 2>&1; echo "deb.sh exit $?" >>"$deb_log" ) &
deb_pid=$!
cargo test --locked 2>&1
echo "== Debian package (cargo-deb, dpkg -i in a throwaway root)"
# Waited for before the real-kernel tier: software emulation is CPU-bound, and a build beside it
# would only slow both.
wait "$deb_pid" || true
cat "$deb_log"
tail -n 1 "$deb_log" | grep -qx 'deb.sh exit 0' || { echo "test-all.sh: the Debian package check failed" >&2; exit 1; }
echo "== real-kernel tier (qemu guest, Debian's kernel)"
bash integration/vm/run.sh --binary target/debug/nmiface
