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
CACHE=${NMIFACE_VM_CACHE:-/var/cache/nmiface-vm}
TIMEOUT=${NMIFACE_VM_TIMEOUT:-300}
KEEP=${NMIFACE_VM_KEEP:-0}
SUITE=bookworm
NICS=4
# The guest's packages (on top of --variant=essential) and kernel modules (with their dependencies).
# Wi-Fi (mac80211_hwsim radios, WPA2's ciphers, hostapd and wpa_supplicant) and NAT sharing (NM's
# dnsmasq, nft and the nf_tables NAT modules) are for the laptop tests. crc32c_generic is
# libcrc32c's soft dependency (nf_tables needs it), which modules.dep does not list.
PACKAGES=network-manager,dbus,udev,iproute2,kmod,busybox,jq,wpasupplicant,hostapd,iw,dnsmasq-base,nftables
MODULES="bonding 8021q bridge veth macvlan virtio_net virtio_pci 9p 9pnet_virtio
 mac80211_hwsim ccm ctr gcm ghash_generic gf128mul cmac ecb
 nf_tables nft_chain_nat nft_masq nft_ct nft_reject_ipv4 nft_reject_inet nf_conntrack nf_nat crc32c_generic"

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
apt_updated=0
apt_update() {
    ((apt_updated)) && return 0
    apt-get update -qq >&2 || return 1
    apt_updated=1
}

T_PKG0=$(now)
installed=
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v cpio >/dev/null || missing+=(cpio)
command -v xz >/dev/null || missing+=(xz-utils)
command -v timeout >/dev/null || missing+=(coreutils)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || skip "not root: cannot install ${missing[*]}"
    echo "$PROG: installing ${missing[*]}" >&2
    apt_update || skip "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || skip "apt-get install ${missing[*]} failed"
    installed="${missing[*]}"
fi
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
# The kernel package is the one Debian's linux-image-amd64 depends on, at its candidate version.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
KPKG=$(kernel_package)
if [[ -z $KPKG ]]; then
    [[ $(id -u) -eq 0 ]] || skip "not root, and apt knows no linux-image-amd64 (apt-get update needed)"
    apt_update || skip "apt-get update failed"
    KPKG=$(kernel_package)
fi
[[ -n $KPKG ]] || die "apt knows no linux-image-amd64 dependency"
KVER=$(apt-cache policy "$KPKG" | awk '$1 == "Candidate:" { print $2 }')
[[ -n $KVER && $KVER != "(none)" ]] || die "no candidate version of $KPKG"
KREL=${KPKG#linux-image-}

# build_image DIR: writes DIR/vmlinux and DIR/initrd.cpio. Its own text is part of the cache key.
build_image() {
    local dir=$1 work
    work=$dir/work
    mkdir -p "$work"

    # The kernel: unpacked, never installed. vmlinuz is a bzImage holding an xz stream: the
    # uncompressed ELF boots through PVH and saves the in-guest decompression.
    (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$KPKG=$KVER") >&2
    dpkg-deb -x "$work/${KPKG}_"*.deb "$work/kernel"
    local vmlinuz off
    vmlinuz=$work/kernel/boot/vmlinuz-$KREL
    # shellcheck disable=SC2013
    for off in $(LC_ALL=C grep -aboP '\xFD7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
        tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$dir/vmlinux" 2>/dev/null || true
        [[ $(head -c 4 "$dir/vmlinux" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] && break
        rm -f "$dir/vmlinux"
    done
    [[ -s $dir/vmlinux ]] || { echo "no xz-compressed ELF found in $vmlinuz" >&2; return 1; }

    # The root file system, from the machine's own apt sources.
    local sources=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && grep -qE '^[[:space:]]*(deb|Types:)' "$f" && sources+=("$f")
    done
    ((${#sources[@]})) || { echo "no apt sources on this host" >&2; return 1; }
    mmdebstrap --variant=essential --include="$PACKAGES" --quiet \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        "$SUITE" "$work/root" "${sources[@]}" >&2

    # Only the modules asked for, with everything they depend on (the guest's own depmod, so the
    # host needs no kmod): the whole tree goes in, depmod, keep the closure, depmod again.
    local kmods=$work/root/usr/lib/modules/$KREL
    mkdir -p "$work/root/usr/lib/modules"
    cp -a "$work/kernel/lib/modules/$KREL" "$kmods"
    chroot "$work/root" /usr/sbin/depmod "$KREL"
    local m path keep=" " queue=()
    for m in $MODULES; do
        path=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n);
                                     if (n == m) { print $1; exit } }' "$kmods/modules.dep")
        [[ -n $path ]] || { echo "module $m not in $KPKG" >&2; return 1; }
        queue+=("$path")
    done
    while ((${#queue[@]})); do
        path=${queue[0]}; queue=("${queue[@]:1}")
        [[ $keep == *" $path "* ]] && continue
        keep+="$path "
        # shellcheck disable=SC2207
        queue+=($(awk -F: -v p="$path" '$1 == p { print $2; exit }' "$kmods/modules.dep"))
    done
    (cd "$kmods" && find kernel -name '*.ko*' -type f) | while read -r path; do
        [[ $keep == *" $path "* ]] || rm -f "$kmods/$path"
    done
    find "$kmods/kernel" -depth -type d -empty -delete
    chroot "$work/root" /usr/sbin/depmod "$KREL"
    echo "$PROG: modules:$keep" >&2

    # What the tests never use: apt state, docs, udev's hardware database, perl beyond perl-base.
    rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/var/cache/apt/* \
        "$work/root"/usr/share/doc "$work/root"/usr/share/man "$work/root"/usr/share/info \
        "$work/root"/usr/share/locale "$work/root"/usr/lib/udev/hwdb.bin "$work/root"/usr/lib/udev/hwdb.d \
        "$work/root"/usr/share/perl "$work/root"/usr/lib/x86_64-linux-gnu/perl
    # Debian's dispatcher script runs ifupdown's hooks, which fail without /etc/network.
    rm -f "$work/root/etc/NetworkManager/dispatcher.d/01-ifupdown"
    install -m 0755 "$HERE/init" "$work/root/init"
    [[ -c $work/root/dev/console ]] || mknod -m 600 "$work/root/dev/console" c 5 1

    # One uncompressed newc cpio: decompressing under TCG costs more than reading it.
    (cd "$work/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$dir/initrd.cpio"
    echo "$KPKG $KVER" >"$dir/kernel-package"
    rm -rf "$work"
}

KEY=$( {
    echo "suite=$SUITE packages=$PACKAGES modules=$MODULES kernel=$KPKG=$KVER"
    cat "$HERE/init"
    declare -f build_image
} | sha256sum | cut -c1-16)
IMAGE=$CACHE/image-$KEY

# ---- 4. build the image (cached) ---------------------------------------------------------------
T_BUILD0=$(now)
built=cached
if [[ ! -f $IMAGE/ready ]]; then
    [[ $(id -u) -eq 0 ]] || skip "not root: cannot build the guest image (mmdebstrap, mknod)"
    mkdir -p "$CACHE" || die "cannot create $CACHE"
    exec 9>"$CACHE/lock"
    flock 9
    if [[ ! -f $IMAGE/ready ]]; then
        echo "$PROG: building the guest image $IMAGE ($KPKG $KVER)" >&2
        rm -rf "$IMAGE.tmp"
        mkdir -p "$IMAGE.tmp"
        if ! build_image "$IMAGE.tmp"; then
            rm -rf "$IMAGE.tmp"
            die "building the guest image failed (see above)"
        fi
        touch "$IMAGE.tmp/ready"
        rm -rf "$IMAGE"
        mv "$IMAGE.tmp" "$IMAGE"
        built=built
        # Other images not used for two weeks are garbage.
        find "$CACHE" -mindepth 1 -maxdepth 1 -name 'image-*' ! -name "image-$KEY" -mtime +14 \
            -exec rm -rf {} + 2>/dev/null || true
    fi
    flock -u 9
fi
touch "$IMAGE/ready"
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
