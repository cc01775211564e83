#!/usr/bin/env bash
# The real-kernel tier: run a test script as root in a qemu guest booted from Debian's own kernel,
# against the guest's real NetworkManager, with bonding, 802.1q and bridge in the kernel (the
# machines' own kernel has no bonding and no 802.1q), and simulated Wi-Fi radios (mac80211_hwsim).
#
#   integration/vm/run.sh [--binary PATH] [--keep] [TEST_SCRIPT]
#
# TEST_SCRIPT defaults to integration/vm/guest-tests.sh. The binary defaults to
# target/release/nmiface, else target/debug/nmiface (built with `cargo build --release` when
# neither exists). The guest is Debian 12 like the host, so the host's binary runs inside as is.
#
# What it does:
#  1. installs its host packages when missing (qemu-system-x86, mmdebstrap, cpio, xz-utils; root),
#  2. builds the guest image on first use and caches it under $NMIFACE_VM_CACHE
#     (default /var/cache/nmiface-vm), keyed by a hash of the package list, the kernel package
#     version, the module list, /init and the build recipe: Debian's bookworm kernel unpacked with
#     dpkg-deb -x (never installed on the host), booted as the uncompressed vmlinux (PVH), and an
#     uncompressed cpio initramfs of an mmdebstrap --variant=essential root with NetworkManager,
#  3. boots it (-accel tcg, 4 virtio-net NICs on their own user networks, a 9p share holding the
#     binary, xml-samples/ and the test script), under a hard timeout ($NMIFACE_VM_TIMEOUT, 300 s),
#  4. streams the guest console to stdout, brings back the test's exit status and logs
#     (test.log, NetworkManager.log, dmesg.log, console.log), prints phase timings to stderr.
#
# Exit status: the test script's; 124 on timeout; 125 when the guest did not boot or the image
# did not build; 0 with a loud SKIP banner when NMIFACE_SKIP_VM=1 or the prerequisites cannot be
# had (not root, apt fails), except under CI=true, where every one of these is a failure.
#
# Environment: NMIFACE_VM_CACHE, NMIFACE_VM_TIMEOUT, NMIFACE_SKIP_VM, CI, NMIFACE_VM_KEEP=1 (keep
# the run directory even on success; it is always kept on failure and its path printed).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROG=integration/vm/run.sh
TIMEOUT=${NMIFACE_VM_TIMEOUT:-300}
KEEP=${NMIFACE_VM_KEEP:-0}
NICS=4
# The image: its packages, modules, kernel, cache key and build (also used by tap-guest.sh).
# shellcheck source=image.sh source-path=SCRIPTDIR
source "$HERE/image.sh"

die() { echo "$PROG: $*" >&2; exit 125; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

banner() {
    echo "************************************************************************" >&2
    echo "*** $PROG: $*" >&2
    echo "************************************************************************" >&2
}

# skip REASON: a missing prerequisite. Skips loudly, but fails under CI.
skip() {
    if [[ ${CI:-} == true ]]; then
        banner "FAIL (CI=true, nothing may skip): $*"
        exit 125
    fi
    banner "SKIPPED, NO REAL-KERNEL TESTS RAN: $*"
    exit 0
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

BINARY=
TEST_SCRIPT=
while (($#)); do
    case $1 in
    --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
    --binary=*) BINARY=${1#--binary=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "$PROG: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [[ -z $TEST_SCRIPT ]] || { echo "$PROG: one TEST_SCRIPT only" >&2; exit 2; }
       TEST_SCRIPT=$1; shift ;;
    esac
done
TEST_SCRIPT=${TEST_SCRIPT:-$HERE/guest-tests.sh}
[[ -f $TEST_SCRIPT ]] || { echo "$PROG: no test script $TEST_SCRIPT" >&2; exit 2; }

[[ ${NMIFACE_SKIP_VM:-} == 1 ]] && skip "NMIFACE_SKIP_VM=1"

T_START=$(now)

# ---- 1. host packages --------------------------------------------------------------------------
T_PKG0=$(now)
vm_host_packages
installed=$VM_INSTALLED
T_PKG1=$(now)

# ---- 2. the binary -----------------------------------------------------------------------------
if [[ -z $BINARY ]]; then
    for b in "$ROOT/target/release/nmiface" "$ROOT/target/debug/nmiface"; do
        [[ -x $b ]] && { BINARY=$b; break; }
    done
    if [[ -z $BINARY ]]; then
        echo "$PROG: no nmiface binary yet: cargo build --release" >&2
        (cd "$ROOT" && cargo build --release --locked >&2) || die "cargo build --release failed"
        BINARY=$ROOT/target/release/nmiface
    fi
fi
[[ -x $BINARY ]] || { echo "$PROG: --binary $BINARY is not an executable file" >&2; exit 2; }

# ---- 3. the image key --------------------------------------------------------------------------
vm_image_key

# ---- 4. build the image (cached) ---------------------------------------------------------------
T_BUILD0=$(now)
vm_build_image
built=$VM_BUILT
T_BUILD1=$(now)

# ---- 5. boot and test --------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/nmiface-vm.XXXXXX")
SHARE=$RUN/share
mkdir -p "$SHARE"
chmod 0755 "$RUN" "$SHARE"
cp "$BINARY" "$SHARE/nmiface"
cp -r "$ROOT/xml-samples" "$SHARE/xml-samples"
cp "$TEST_SCRIPT" "$SHARE/test.sh"

nic_args=()
for ((i = 0; i < NICS; i++)); do
    nic_args+=(-netdev "user,id=n$i"
        -device "virtio-net-pci,netdev=n$i,romfile=,mac=52:54:00:4e:4d:1$i")
done

echo "$PROG: booting $KPKG $KVER (tcg, $NICS NICs, timeout ${TIMEOUT}s); run directory $RUN" >&2
T_BOOT0=$(now)
: >"$RUN/console.log"
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg -machine pc -cpu max -smp 2 -m 1536 \
    -nodefaults -display none -monitor none -no-reboot \
    -kernel "$IMAGE/vmlinux" -initrd "$IMAGE/initrd.cpio" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init" \
    -serial "file:$RUN/console.log" \
    "${nic_args[@]}" \
    -virtfs "local,path=$SHARE,mount_tag=nmiface,security_model=none,id=share" \
    </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!

# Stream the console, noting when the guest's init reports each phase. The test's output goes to
# stdout (so its closing "N passed, M failed" line is stdout's last); init's and the kernel's lines
# go to stderr.
tail -n +1 -s 0.2 -F --pid=$QPID "$RUN/console.log" 2>/dev/null | while IFS= read -r line; do
    line=${line%$'\r'}
    case $line in
    *"NMIFACE-VM: NM ready"*) now >"$RUN/t-nm-ready" ;;
    *"NMIFACE-VM: tests start"*) now >"$RUN/t-tests-start" ;;
    *"NMIFACE-VM: tests end"*) now >"$RUN/t-tests-end" ;;
    esac
    if [[ $line == "NMIFACE-VM: "* || $line =~ ^\[\ *[0-9]+\.[0-9]+\]\  ]]; then
        printf '%s\n' "$line" >&2
    else
        printf '%s\n' "$line"
    fi
done
qrc=0
wait "$QPID" || qrc=$?
T_END=$(now)

# ---- 6. outcome --------------------------------------------------------------------------------
t() { [[ -f $RUN/$1 ]] && cat "$RUN/$1"; }
{
    echo "== $PROG timings"
    [[ -n $installed ]] && echo "   host packages:      $(secs "$T_PKG0" "$T_PKG1") s (installed $installed)"
    if [[ $built == built ]]; then
        echo "   image build:        $(secs "$T_BUILD0" "$T_BUILD1") s"
    else
        echo "   image build:        cached ($IMAGE)"
    fi
    [[ -f $RUN/t-nm-ready ]] && echo "   boot to NM ready:   $(secs "$T_BOOT0" "$(t t-nm-ready)") s"
    [[ -f $RUN/t-tests-end ]] && echo "   tests:              $(secs "$(t t-tests-start)" "$(t t-tests-end)") s"
    echo "   qemu total:         $(secs "$T_BOOT0" "$T_END") s"
    echo "   run.sh total:       $(secs "$T_START" "$T_END") s"
} >&2

status=125
if ((qrc == 124 || qrc == 137)); then
    banner "FAIL: qemu killed after ${TIMEOUT}s (timeout)"
    status=124
elif [[ ! -f $SHARE/status ]]; then
    banner "FAIL: the guest gave back no status (qemu exit $qrc; qemu.log and console.log in $RUN)"
    sed 's/^/qemu: /' "$RUN/qemu.log" >&2
    status=125
else
    status=$(cat "$SHARE/status")
    [[ $status =~ ^[0-9]+$ ]] || status=125
    if ((status == 125)); then
        banner "FAIL: the guest's init failed (see the console above; logs in $RUN)"
    elif ((status != 0)); then
        banner "FAIL: the test script exited $status (logs in $RUN)"
    fi
fi
if ((status != 0 && status != 124)) && [[ -f $SHARE/NetworkManager.log ]]; then
    echo "== last 40 lines of the guest's NetworkManager log" >&2
    tail -n 40 "$SHARE/NetworkManager.log" | sed 's/^/NM: /' >&2
fi
if ((status == 0)) && [[ $KEEP != 1 ]]; then
    rm -rf "$RUN"
else
    echo "$PROG: logs kept in $RUN (share/test.log, share/NetworkManager.log, share/dmesg.log, share/daemons.log, console.log)" >&2
fi
exit "$status"
