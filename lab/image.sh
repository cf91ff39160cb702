#!/usr/bin/env bash
# Build a lab host image from Debian packages: debootstrap SUITE (minbase),
# the packages below installed with apt in a chroot, then `podman import`.
# Two suites: trixie (Debian 13, the main image every lab host runs) and
# bookworm (Debian 12, oldstable: the client-debian12 scenario's client). The
# tag is SUITE-HASH, HASH a hash of this file and the suite (the whole recipe
# lives here), so each image is built once, reused, and rebuilt when the
# recipe changes. Downloaded packages stay in lab/build/ (gitignored) for fast
# rebuilds.
#
#   bash lab/image.sh [SUITE]          build if missing; print the image reference
#   bash lab/image.sh [SUITE] --ref    print the reference only (no build)
#   bash lab/image.sh [SUITE] --force  rebuild even if the image exists
#
# Progress goes to stderr; stdout carries only the image reference.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/lab/containers.conf}"

SUITES=(trixie bookworm)
SUITE=trixie
if [[ ${1:-} != -* && -n ${1:-} ]]; then
  SUITE=$1
  shift
fi
if [[ " ${SUITES[*]} " != *" $SUITE "* ]]; then
  echo "lab-image: unknown suite '$SUITE' (known: ${SUITES[*]})" >&2
  exit 2
fi
MIRROR=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
REPO=localhost/srlab-debian
# Everything a lab host or a role might install: lab networks are internal,
# nothing can be downloaded inside a lab host.
PACKAGES=(
  # init and the basics Ansible needs
  systemd systemd-sysv dbus libnss-myhostname python3 python3-apt procps
  # the resolver and network managers a role meets on a host (the lab's
  # resolved, NetworkManager and networkd hosts enable them; disabled below)
  systemd-resolved network-manager
  # what the collection's modules and roles use
  python3-pyroute2 python3-nftables nftables iproute2 conntrack dnsmasq
  wireguard-tools wireguard-go openvpn openssl
  # internet host: authoritative DNS
  nsd
  # tests and diagnostics
  curl dnsutils tcpdump iperf3 dnsperf iputils-ping netcat-openbsd
)
# Units that packages enable on installation; the lab and the roles start
# what they need.
DISABLE_UNITS=(dnsmasq.service nsd.service openvpn.service iperf3.service
  systemd-resolved.service NetworkManager.service NetworkManager-wait-online.service
  NetworkManager-dispatcher.service)

HASH="$({ cat lab/image.sh; echo "$SUITE"; } | sha256sum | cut -c1-12)"
REF="$REPO:$SUITE-$HASH"
BUILD="$PWD/lab/build"

log() { printf 'lab-image: %s\n' "$*" >&2; }

case "${1:-}" in
  --ref) echo "$REF"; exit 0 ;;
  --force) force=1 ;;
  '') force=0 ;;
  *) echo "usage: $0 [SUITE] [--ref|--force]" >&2; exit 2 ;;
esac

if ((!force)) && podman image exists "$REF"; then
  echo "$REF"
  exit 0
fi

start=$SECONDS
ROOT="$BUILD/rootfs-$SUITE-$HASH"
mkdir -p "$BUILD/debootstrap-cache-$SUITE" "$BUILD/apt-archives-$SUITE/partial"

cleanup() {
  local m
  for m in "$ROOT/var/cache/apt/archives" "$ROOT/proc"; do
    if mountpoint -q "$m" 2>/dev/null; then umount -l "$m"; fi
  done
  rm -rf "$ROOT"
}
trap cleanup EXIT
cleanup

log "debootstrap $SUITE (minbase) into $ROOT"
debootstrap --variant=minbase --cache-dir="$BUILD/debootstrap-cache-$SUITE" \
  "$SUITE" "$ROOT" "$MIRROR" >"$BUILD/debootstrap-$SUITE.log" 2>&1 \
  || { tail -n 30 "$BUILD/debootstrap-$SUITE.log" >&2; exit 1; }

# No service may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount --bind "$BUILD/apt-archives-$SUITE" "$ROOT/var/cache/apt/archives"

log "apt-get install ${#PACKAGES[@]} packages"
chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c '
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
' bash "${PACKAGES[@]}" >"$BUILD/apt-$SUITE.log" 2>&1 || { tail -n 30 "$BUILD/apt-$SUITE.log" >&2; exit 1; }
chroot "$ROOT" systemctl disable --quiet "${DISABLE_UNITS[@]}" 2>/dev/null || true
# systemd-modules-load: trixie's fails in a container (no /lib/modules here,
# and the lab loads no module).
chroot "$ROOT" systemctl mask --quiet systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  systemd-modules-load.service
# The lab's per-host network settings: lab/playbooks/configure.yml writes the
# script; this unit replays it at every boot.
cat >"$ROOT/etc/systemd/system/srlab-net.service" <<'EOF'
[Unit]
Description=Lab addresses, routes, NAT and resolver (lab/playbooks/configure.yml)
ConditionFileIsExecutable=/usr/local/sbin/srlab-net
Before=network.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/srlab-net

[Install]
WantedBy=multi-user.target
EOF
chroot "$ROOT" systemctl enable --quiet srlab-net.service

umount "$ROOT/var/cache/apt/archives" "$ROOT/proc"
rm -f "$ROOT/usr/sbin/policy-rc.d"
# Each container gets its own machine id; DNS fails fast until the lab
# configures a resolver (podman runs hosts with --dns=none --no-hosts).
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
# systemd-resolved's postinst made resolv.conf its stub symlink: a plain file
# here, the resolved host's lab setup makes the link.
rm -f "$ROOT/etc/resolv.conf"
printf 'options timeout:1 attempts:1\n' >"$ROOT/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo srlab >"$ROOT/etc/hostname"
rm -rf "$ROOT"/var/log/apt/* "$ROOT"/var/log/dpkg.log "$ROOT"/tmp/*

log "podman import $REF"
tar -C "$ROOT" --numeric-owner -c . | podman import --quiet \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL srlab.recipe=$HASH" \
  --change "LABEL srlab.suite=$SUITE" \
  --message "splitroute lab image, recipe $HASH" \
  - "$REF" >/dev/null

# Older builds of the recipe are dead weight; keep any a container still uses.
while read -r old; do
  [[ $old == "$REF" ]] || podman rmi "$old" >/dev/null 2>&1 || true
done < <(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$REPO:$SUITE-*")

log "built $REF in $((SECONDS - start)) s ($(podman image inspect --format '{{.Size}}' "$REF" | numfmt --to=iec))"
echo "$REF"
