#!/usr/bin/env bash
# Install what the integration sandbox (integration/nm-sandbox.sh) needs.
#
# Idempotent and quiet: when everything is already there it only runs one
# dpkg-query (well under a second). Otherwise it runs apt-get update + install
# and prints apt's output only if that fails. Must run as root.
set -euo pipefail

# man-db (man -l, with groff-base) and dpkg-dev (dpkg-shlibdeps for cargo-deb's $auto
# dependencies) are for the Debian package check, integration/deb.sh.
# python3-dbusmock runs the polkit stand-in of `nm-sandbox.sh up --users`; gdbus (libglib2.0-bin)
# and busctl (systemd) are the session tests' D-Bus clients. libvirt-daemon and its qemu driver run
# a user's session libvirt on the bridge helper (integration/vm/libvirt-guest.sh), qemu-system-x86
# the guests.
PACKAGES=(network-manager dnsmasq-base nftables busybox iproute2
          libvirt-clients libxml2-utils dbus hyperfine man-db dpkg-dev
          python3-dbusmock libglib2.0-bin systemd
          libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86)

die() { echo "install-deps.sh: $*" >&2; exit 1; }

# Keep Debian maintainer scripts from starting services (NetworkManager,
# dbus, ...) on the host: the sandbox starts its own private copies.
ensure_policy_rc_d() {
    local f=/usr/sbin/policy-rc.d
    if [[ ! -e $f ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$f"
        chmod 0755 "$f"
    fi
}

# Print the packages from PACKAGES that are not fully installed.
missing_packages() {
    local status
    # One dpkg-query for all packages; unknown packages go to stderr, and
    # dpkg-query exits non-zero, which is fine (they just count as missing).
    status=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
    local p
    for p in "${PACKAGES[@]}"; do
        grep -qx "$p ii *" <<<"$status" || echo "$p"
    done
}

# ansible-core from PyPI, for the Ansible module's test (tests/nm/ansible.rs): pinned, and only
# when this Python lacks it.
ANSIBLE_CORE=2.17.14
ensure_ansible() {
    local have
    have=$(python3 -c 'import ansible; print(ansible.__version__)' 2>/dev/null || true)
    [[ $have == "$ANSIBLE_CORE" ]] && return 0
    python3 -m pip install --quiet --disable-pip-version-check "ansible-core==$ANSIBLE_CORE" >&2 ||
        die "pip install ansible-core==$ANSIBLE_CORE failed"
    # pyenv's shims learn new commands on a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
}

main() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    ensure_policy_rc_d
    ensure_ansible

    local missing
    missing=$(missing_packages)
    [[ -z $missing ]] && return 0

    local log
    log=$(mktemp /tmp/install-deps.XXXXXX.log)
    if ! { apt-get update &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
               "${PACKAGES[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        die "apt-get failed (missing: ${missing//$'\n'/ }); log above and in $log"
    fi
    rm -f "$log"
}

main "$@"
