#!/usr/bin/env bash
# update-sshfork.sh: rebuild warren's fork of golang.org/x/crypto/ssh
# (internal/sshfork) from an upstream x/crypto release plus
# internal/sshfork/PATCH.diff.
#
#   scripts/update-sshfork.sh [apply] [VERSION]  rebuild the fork from x/crypto@VERSION
#                                                (default: the version go.mod requires)
#                                                and apply PATCH.diff to it; refuses while
#                                                the fork has edits PATCH.diff lacks (FORCE=1)
#   scripts/update-sshfork.sh diff [VERSION]     regenerate PATCH.diff from the fork as it
#                                                is now, against x/crypto@VERSION
#   scripts/update-sshfork.sh upstream-test [VERSION]
#                                                run x/crypto's own ssh tests with
#                                                PATCH.diff applied to x/crypto@VERSION
#   scripts/update-sshfork.sh pristine DIR [VERSION]
#                                                write the unpatched, import-rewritten
#                                                copy to DIR (for reading or testing)
#
# The fork holds the non-test Go files of x/crypto/ssh and the two
# internal packages it needs (ssh/internal/bcrypt_pbkdf and
# internal/poly1305), with import paths rewritten to the module. To move to a
# newer x/crypto: bump it in go.mod, run `scripts/update-sshfork.sh apply`,
# resolve any rejected hunk by hand, then `scripts/update-sshfork.sh diff`
# and run the fork's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

MOD=github.com/warrenhq/warren/internal/sshfork
FORK=internal/sshfork
PATCHFILE=$FORK/PATCH.diff

mode=apply
case "${1:-}" in
apply | diff | upstream-test) mode=$1; shift ;;
pristine) mode=pristine; out=${2:?pristine needs a directory}; shift 2 ;;
esac
version=${1:-$(go list -m -f '{{.Version}}' golang.org/x/crypto)}

src=$(go mod download -json "golang.org/x/crypto@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src/ssh" ] || { echo "update-sshfork: no x/crypto source for $version" >&2; exit 1; }

work=$(mktemp -d -t sshfork-XXXXXX)
trap 'rm -rf "$work"' EXIT

# pristine DIR: the upstream files the fork is made of, imports rewritten.
make_pristine() {
  local dst=$1
  mkdir -p "$dst/ssh/internal/bcrypt_pbkdf" "$dst/internal/poly1305"
  local f
  for f in "$src"/ssh/*.go; do
    case "$f" in *_test.go) continue ;; esac
    cp "$f" "$dst/ssh/"
  done
  for f in "$src"/ssh/internal/bcrypt_pbkdf/*.go; do
    case "$f" in *_test.go) continue ;; esac
    cp "$f" "$dst/ssh/internal/bcrypt_pbkdf/"
  done
  for f in "$src"/internal/poly1305/*; do
    case "$f" in *_test.go) continue ;; esac
    cp "$f" "$dst/internal/poly1305/"
  done
  chmod -R u+w "$dst"
  find "$dst" -name '*.go' -exec sed -i \
    -e "s#\"golang.org/x/crypto/ssh/internal/bcrypt_pbkdf\"#\"$MOD/ssh/internal/bcrypt_pbkdf\"#" \
    -e "s#\"golang.org/x/crypto/internal/poly1305\"#\"$MOD/internal/poly1305\"#" \
    -e 's#^\(package [a-z0-9_]*\) // import "golang.org/x/crypto/.*"$#\1#' {} +
  gofmt -w "$dst" # the rewritten imports sort differently
}

# unsaved_edits reports whether the fork's files differ from
# x/crypto@UPSTREAM + PATCH.diff: edits `apply` would throw away.
unsaved_edits() {
  local cur
  cur=$(cat "$FORK/UPSTREAM")
  src=$(go mod download -json "golang.org/x/crypto@$cur" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
    make_pristine "$work/cur"
  patch -s -p1 -d "$work/cur" --no-backup-if-mismatch <"$PATCHFILE" >/dev/null 2>&1 || return 0
  mkdir -p "$work/now"
  cp -r "$FORK/ssh" "$FORK/internal" "$work/now/"
  find "$work/now" -name '*_test.go' -delete
  find "$work/now" -type d -name testdata -prune -exec rm -rf {} +
  ! diff -rq "$work/cur" "$work/now" >/dev/null
}

case $mode in
upstream-test)
  # The patch's paths (ssh/..., internal/poly1305/...) are x/crypto's own,
  # and it touches no import line, so it applies to the module as is.
  cp -r "$src" "$work/xcrypto"
  chmod -R u+w "$work/xcrypto"
  patch -s -p1 -d "$work/xcrypto" --no-backup-if-mismatch <"$PATCHFILE"
  # The patch adds a parameter to newMux.
  sed -i 's/newMux(\([a-zA-Z0-9.]*\))/newMux(\1, nil)/g' "$work/xcrypto"/ssh/*_test.go
  (cd "$work/xcrypto" && GOFLAGS=-mod=mod go test -count=1 -short ./ssh/)
  ;;
pristine)
  make_pristine "$out"
  ;;
apply)
  if [ "${FORCE:-}" != 1 ] && unsaved_edits; then
    echo "update-sshfork: $FORK has edits that PATCH.diff does not hold; apply would drop them." >&2
    echo "  Run 'scripts/update-sshfork.sh diff' first to keep them (or FORCE=1 to drop them)." >&2
    exit 1
  fi
  make_pristine "$work/a"
  cp -r "$work/a" "$work/b"
  if ! patch -s -p1 -d "$work/b" --no-backup-if-mismatch <"$PATCHFILE"; then
    echo "update-sshfork: PATCH.diff does not apply cleanly to x/crypto $version;" >&2
    echo "  the partly patched tree is in $work/b (kept)" >&2
    trap - EXIT
    exit 1
  fi
  # warren's tests of the fork are not in the patch: carry them over.
  (cd "$FORK" && find ssh internal -name '*_test.go' -o -path '*/testdata/*' -type f 2>/dev/null) >"$work/keep" || true
  while read -r f; do mkdir -p "$work/b/$(dirname "$f")" && cp "$FORK/$f" "$work/b/$f"; done <"$work/keep"
  rm -rf "$FORK/ssh" "$FORK/internal"
  cp -r "$work/b/ssh" "$work/b/internal" "$FORK/"
  echo "$version" >"$FORK/UPSTREAM"
  gofmt -l "$FORK" | { ! grep .; } || { echo "update-sshfork: gofmt needed" >&2; exit 1; }
  echo "update-sshfork: $FORK rebuilt from golang.org/x/crypto@$version + PATCH.diff"
  ;;
diff)
  make_pristine "$work/a"
  mkdir -p "$work/b"
  cp -r "$FORK/ssh" "$FORK/internal" "$work/b/"
  # The fork's own tests are warren's, not part of the upstream diff.
  find "$work/b" -name '*_test.go' -delete
  find "$work/b" -type d -name testdata -prune -exec rm -rf {} +
  (cd "$work" && diff -ruN a b || true) |
    sed -e 's#^\(---\|+++\) \([ab]/[^\t]*\)\t.*#\1 \2#' >"$PATCHFILE"
  echo "update-sshfork: wrote $PATCHFILE ($(grep -c '^[+-][^+-]' "$PATCHFILE") changed lines)"
  ;;
esac
