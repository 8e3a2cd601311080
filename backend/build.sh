#!/bin/sh
# Build the backend offline with Debian's Go and gin (no module proxy, no base image):
#
#   sh build.sh          compile the static binary bin/backend (BACKEND_OUTPUT overrides the path)
#   sh build.sh test     go vet + go test, with the same toolchain settings
#
# The pipeline runs it (pipeline.toml [image] prebuild) before `docker build -f Dockerfile`, with
# SOURCE_COMMIT set to the commit being released; it ends up in GET /version. Outside the pipeline the
# commit is `git rev-parse HEAD`, else "unknown".
#
# GO111MODULE=off: go.mod is for Dockerfile.multistage; here packages come from /usr/share/gocode
# (golang-github-gin-gonic-gin-dev, golang-github-lib-pq-dev) through a throwaway GOPATH that links this
# directory in as github.com/campus/backend. GOCACHE persists, so a rebuild with nothing changed takes
# well under a second and leaves bin/backend untouched (-trimpath makes the bytes reproducible).
set -eu

cd "$(dirname "$0")"
src=$(pwd -P)
gocode=${BACKEND_GOCODE:-/usr/share/gocode}
out=${BACKEND_OUTPUT:-bin/backend}
mode=${1:-build}

fail() {
	echo "build.sh: $*" >&2
	exit 1
}

case $mode in
build | test) ;;
*) fail "unknown mode '$mode' (use: build.sh [build|test])" ;;
esac

command -v go >/dev/null 2>&1 ||
	fail "go not found; install golang-go golang-github-gin-gonic-gin-dev golang-github-lib-pq-dev golang-github-rubenv-sql-migrate-dev"
for pkg in github.com/gin-gonic/gin github.com/lib/pq github.com/rubenv/sql-migrate; do
	[ -d "$gocode/src/$pkg" ] ||
		fail "$pkg not in $gocode; install golang-go golang-github-gin-gonic-gin-dev golang-github-lib-pq-dev golang-github-rubenv-sql-migrate-dev"
done

commit=${SOURCE_COMMIT:-}
if [ -z "$commit" ]; then
	commit=$(git rev-parse HEAD 2>/dev/null) || commit=unknown
fi
# The value goes into -ldflags unquoted: refuse anything that is not a plain ref-like word.
case $commit in
*[!0-9A-Za-z._-]*) fail "SOURCE_COMMIT='$commit' must be a git sha (letters, digits, . _ -)" ;;
esac

cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/campus-backend-go
mkdir -p "$cache"
gopath=$(mktemp -d "${TMPDIR:-/tmp}/campus-backend-gopath.XXXXXX")
trap 'rm -rf "$gopath"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$gopath/src/github.com/campus"
ln -s "$src" "$gopath/src/github.com/campus/backend"

export CGO_ENABLED=0 GO111MODULE=off GOFLAGS= GOPATH="$gopath:$gocode" GOCACHE="$cache/gocache"
export GOTOOLCHAIN=local # never let a newer go fetch the toolchain go.mod names
# Work from inside the GOPATH so that the package resolves as github.com/campus/backend.
cd "$gopath/src/github.com/campus/backend"

if [ "$mode" = test ]; then
	go vet -trimpath .
	go test -trimpath -count=1 .
	exit 0
fi

case $out in
/*) ;;
*) out=$src/$out ;;
esac
mkdir -p "$(dirname "$out")"
# Build beside the target and swap it in only when the bytes differ: a concurrent `docker build` never
# sees half a binary, and an unchanged rebuild leaves even the mtime alone.
go build -trimpath -ldflags "-s -w -X main.commit=$commit" -o "$gopath/backend" .
if cmp -s "$gopath/backend" "$out"; then
	echo "build.sh: $out is up to date (commit $commit)"
else
	mv -f "$gopath/backend" "$out.tmp.$$"
	mv -f "$out.tmp.$$" "$out"
	echo "build.sh: built $out (commit $commit)"
fi
