#!/usr/bin/env bash
# Seeds fuzz/corpus/parse with every sample document (valid and invalid), and the compat
# corpus when ../shared is beside the project. The corpus directory is gitignored.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
dest="$here/corpus/parse"
mkdir -p "$dest" "$here/corpus/roundtrip"
n=0
for dir in "$root/xml-samples" "$root/../shared/compat/interface-xml"; do
    [ -d "$dir" ] || continue
    while IFS= read -r -d '' f; do
        # Name by content so re-running adds nothing twice.
        cp "$f" "$dest/seed-$(sha1sum "$f" | cut -c1-16)"
        n=$((n + 1))
    done < <(find "$dir" -name '*.xml' -type f -print0)
done
echo "seeded $n files into $dest"
