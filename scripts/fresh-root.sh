#!/usr/bin/env bash
# Runs the README's test (or demo) command in a brand-new Debian 12 root, so
# that a missing install step fails here as it would on a new machine.
#
#   bash scripts/fresh-root.sh [test|demo|shell-check]   (as root)
#
# Makes a minbase bookworm root with debootstrap in a temporary folder (the
# mirror is read from this machine's apt configuration), clones the commit at
# HEAD into it, mounts /proc (the root keeps the /dev nodes debootstrap made;
# the host's /dev is never mounted), runs `bash scripts/test.sh` or
# `bash scripts/demo.sh` inside (with the host's CA bundle copied into the
# root and named by NODE_EXTRA_CA_CERTS there, for npm's HTTPS), and removes
# the root afterwards, on success and on failure. Nothing is deleted while
# anything is still mounted under the root. Set QFX_FRESH_ROOT_KEEP=1 to keep the root for inspection, and
# QFX_FRESH_ROOT_DIR to choose where the temporary folder goes.
set -euo pipefail

mode="${1:-test}"
case "$mode" in
  test | demo | shell-check) ;;
  *)
    echo "fresh-root: error: unknown mode '$mode' (expected test, demo or shell-check)" >&2
    exit 2
    ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
suite=bookworm

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-root: error: must run as root (debootstrap, chroot and mount need it)" >&2
  exit 2
fi

log() { echo "fresh-root: $*"; }

# The host needs debootstrap (and git, which cloned this repository).
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap on the host"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi

# The Debian mirror this machine's apt uses for the suite's main component:
# never written into the repository, so that each machine uses its own.
mirror_for() {
  # The $(...) are apt's format fields, not shell expansions.
  # shellcheck disable=SC2016
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT) $(ORIGIN)' \
    'Identifier: Packages' 2>/dev/null |
    awk -v want="$1" '$2 == want && $3 == "main" && $4 == "Debian" { print $1; exit }'
}
mirror="$(mirror_for "$suite")"
if [ -z "$mirror" ]; then
  # No index fetched yet: read the sources themselves.
  apt-get update >/dev/null 2>&1 || true
  mirror="$(mirror_for "$suite")"
fi
if [ -z "$mirror" ]; then
  echo "fresh-root: error: this machine's apt sources name no Debian '$suite' main mirror" >&2
  exit 1
fi
updates_mirror="$(mirror_for "$suite-updates")"
security_mirror="$(mirror_for "$suite-security")"

work="$(mktemp -d "${QFX_FRESH_ROOT_DIR:-/var/tmp}/qfx-fresh-root.XXXXXX")"
root="$work/root"
start=$(date +%s)

# Every mount point under the root, deepest first.
mounts_under_root() {
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts |
    sort -r
}

cleanup() {
  local status=$?
  set +e
  local m
  for m in $(mounts_under_root); do
    umount "$m" || umount -l "$m"
  done
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-root: error: still mounted under $root; not deleting it:" >&2
    mounts_under_root >&2
    exit 1
  fi
  if [ "${QFX_FRESH_ROOT_KEEP:-0}" = 1 ]; then
    log "kept $root"
  else
    rm -rf --one-file-system "$work"
  fi
  log "$mode finished with status $status after $(($(date +%s) - start)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap --variant=minbase $suite from $mirror into $root"
t0=$(date +%s)
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  echo "fresh-root: error: debootstrap failed (log above)" >&2
  exit 1
fi
log "debootstrap took $(($(date +%s) - t0)) s"

# The same archive areas as the host (updates and security when it has them).
{
  echo "deb $mirror $suite main"
  [ -z "$updates_mirror" ] || echo "deb $updates_mirror $suite-updates main"
  [ -z "$security_mirror" ] || echo "deb $security_mirror $suite-security main"
} >"$root/etc/apt/sources.list"
# A host that reads a dated archive snapshot accepts its old Release files;
# the root must too.
if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
  echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99qfx-snapshot"
fi

# The commit under test, cloned fresh (uncommitted changes are not tested).
head="$(git -C "$repo" rev-parse HEAD)"
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  log "warning: uncommitted changes in $repo are not part of this run"
fi
git clone --quiet --no-hardlinks "$repo" "$root/root/qfx"
git -C "$root/root/qfx" checkout --quiet --detach "$head"
log "testing commit $head"

# npm (scripts/install-ort.sh) reaches the registry over HTTPS; a network
# that inspects TLS needs the CA bundle this machine trusts. The bundle named
# by NODE_EXTRA_CA_CERTS (else the system bundle) is copied into the root -
# only into it, the host's files are not touched - and named to node there.
host_ca=/etc/ssl/certs/ca-certificates.crt
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then
  if [ -f "$NODE_EXTRA_CA_CERTS" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
    host_ca="$NODE_EXTRA_CA_CERTS"
  else
    log "warning: NODE_EXTRA_CA_CERTS names '$NODE_EXTRA_CA_CERTS', which is not a readable file; using $host_ca"
  fi
fi
root_ca=/usr/local/share/qfx-host-ca.crt
if [ -f "$host_ca" ] && [ -r "$host_ca" ]; then
  install -D -m 0644 "$host_ca" "$root$root_ca"
  log "host CA bundle $host_ca copied to $root_ca in the root"
else
  log "warning: no CA bundle at $host_ca; npm in the root trusts node's built-in CAs only"
  root_ca=""
fi

mount -t proc proc "$root/proc"

case "$mode" in
  test) cmd='bash scripts/test.sh' ;;
  demo) cmd='bash scripts/demo.sh' ;;
  shell-check) cmd='bash scripts/install-deps.sh && bash scripts/install-ort.sh && bash scripts/build.sh --configure-only' ;;
esac

# A clean environment: only what a new user's shell would have, plus the
# host's proxy settings, its CA bundle (copied above) and QFX_CI_SANITIZE
# (scripts/test.sh) if set.
env_args=(HOME=/root LANG=C.UTF-8 TERM=dumb
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
[ -z "$root_ca" ] || env_args+=("NODE_EXTRA_CA_CERTS=$root_ca")
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY \
  QFX_CI_SANITIZE; do
  [ -z "${!v:-}" ] || env_args+=("$v=${!v}")
done

log "running '$cmd' in the new root"
t0=$(date +%s)
chroot "$root" /usr/bin/env -i "${env_args[@]}" \
  /bin/bash -c "cd /root/qfx && $cmd"
log "'$cmd' passed in $(($(date +%s) - t0)) s"
