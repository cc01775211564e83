# shellcheck shell=bash disable=SC2034  # sourced: the VM_* results are the caller's to read
# integration/vm/image.sh: the real-kernel tier's guest image (Debian's kernel and an mmdebstrap
# initramfs), shared by run.sh and tap-guest.sh. Sourced, not run.
#
# The caller sets HERE (this directory: build_image installs $HERE/init) and PROG (for messages) and
# defines skip REASON (a missing prerequisite) and die MESSAGE (a failure); both must not return.
#
#   vm_host_packages   installs what is missing of qemu-system-x86, mmdebstrap, cpio, xz-utils
#                      (root); sets VM_INSTALLED to what it installed
#   vm_image_key       finds the kernel package (KPKG KVER KREL) and sets KEY and IMAGE, the cache
#                      directory $CACHE/image-KEY (KEY: a hash of the package list, the kernel
#                      package version, the module list, /init and build_image's own text)
#   vm_build_image     builds IMAGE when it is not there (root, under $CACHE/lock); sets VM_BUILT to
#                      "built" or "cached". IMAGE then holds vmlinux and initrd.cpio (world-readable,
#                      so an unprivileged user's qemu can boot them)
#
# Environment: NMIFACE_VM_CACHE (default /var/cache/nmiface-vm).

CACHE=${NMIFACE_VM_CACHE:-/var/cache/nmiface-vm}
SUITE=bookworm
# The guest's packages (on top of --variant=essential) and kernel modules (with their dependencies).
# Wi-Fi (mac80211_hwsim radios, WPA2's ciphers, hostapd and wpa_supplicant) and NAT sharing (NM's
# dnsmasq, nft and the nf_tables NAT modules) are for the laptop tests. crc32c_generic is
# libcrc32c's soft dependency (nf_tables needs it), which modules.dep does not list.
PACKAGES=network-manager,dbus,udev,iproute2,kmod,busybox,jq,wpasupplicant,hostapd,iw,dnsmasq-base,nftables
MODULES="bonding 8021q bridge veth macvlan virtio_net virtio_pci 9p 9pnet_virtio
 mac80211_hwsim ccm ctr gcm ghash_generic gf128mul cmac ecb
 nf_tables nft_chain_nat nft_masq nft_ct nft_reject_ipv4 nft_reject_inet nf_conntrack nf_nat crc32c_generic"

apt_updated=0
apt_update() {
    ((apt_updated)) && return 0
    apt-get update -qq >&2 || return 1
    apt_updated=1
}

vm_host_packages() {
    local missing=()
    VM_INSTALLED=
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
        VM_INSTALLED="${missing[*]}"
    fi
}

# The kernel package is the one Debian's linux-image-amd64 depends on, at its candidate version.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

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


vm_image_key() {
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
    KEY=$( {
        echo "suite=$SUITE packages=$PACKAGES modules=$MODULES kernel=$KPKG=$KVER"
        cat "$HERE/init"
        declare -f build_image
    } | sha256sum | cut -c1-16)
    IMAGE=$CACHE/image-$KEY
}

vm_build_image() {
    VM_BUILT=cached
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
            VM_BUILT=built
            # Other images not used for two weeks are garbage.
            find "$CACHE" -mindepth 1 -maxdepth 1 -name 'image-*' ! -name "image-$KEY" -mtime +14 \
                -exec rm -rf {} + 2>/dev/null || true
        fi
        flock -u 9
    fi
    touch "$IMAGE/ready" 2>/dev/null || true
}
