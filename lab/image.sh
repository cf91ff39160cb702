#!/usr/bin/env bash
# Build the lab's host image from Debian packages: debootstrap bookworm
# (minbase), the packages below installed with apt in a chroot, then
# `podman import`. The tag is a hash of this file (the whole recipe lives
# here), so the image is built once, reused, and rebuilt when the recipe
# changes. Downloaded packages stay in lab/build/ (gitignored) for fast rebuilds.
#
#   bash lab/image.sh          build if missing; print the image reference
#   bash lab/image.sh --ref    print the reference only (no build)
#   bash lab/image.sh --force  rebuild even if the image exists
#
# Progress goes to stderr; stdout carries only the image reference.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/lab/containers.conf}"

SUITE=bookworm
MIRROR=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
REPO=localhost/srlab-debian
# Everything a lab host or a role might install: lab networks are internal,
# nothing can be downloaded inside a lab host.
PACKAGES=(
  # init and the basics Ansible needs
  systemd systemd-sysv dbus libnss-myhostname python3 python3-apt procps
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
DISABLE_UNITS=(dnsmasq.service nsd.service openvpn.service iperf3.service)

HASH="$(sha256sum lab/image.sh | cut -c1-12)"
REF="$REPO:$HASH"
BUILD="$PWD/lab/build"

log() { printf 'lab-image: %s\n' "$*" >&2; }

case "${1:-}" in
  --ref) echo "$REF"; exit 0 ;;
  --force) force=1 ;;
  '') force=0 ;;
  *) echo "usage: $0 [--ref|--force]" >&2; exit 2 ;;
esac

if ((!force)) && podman image exists "$REF"; then
  echo "$REF"
  exit 0
fi

start=$SECONDS
ROOT="$BUILD/rootfs-$HASH"
mkdir -p "$BUILD/debootstrap-cache" "$BUILD/apt-archives/partial"

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
debootstrap --variant=minbase --cache-dir="$BUILD/debootstrap-cache" \
  "$SUITE" "$ROOT" "$MIRROR" >"$BUILD/debootstrap.log" 2>&1 \
  || { tail -n 30 "$BUILD/debootstrap.log" >&2; exit 1; }

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
mount --bind "$BUILD/apt-archives" "$ROOT/var/cache/apt/archives"

log "apt-get install ${#PACKAGES[@]} packages"
chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c '
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
' bash "${PACKAGES[@]}" >"$BUILD/apt.log" 2>&1 || { tail -n 30 "$BUILD/apt.log" >&2; exit 1; }
chroot "$ROOT" systemctl disable --quiet "${DISABLE_UNITS[@]}" 2>/dev/null || true
chroot "$ROOT" systemctl mask --quiet systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer
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
printf 'options timeout:1 attempts:1\n' >"$ROOT/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo srlab >"$ROOT/etc/hostname"
rm -rf "$ROOT"/var/log/apt/* "$ROOT"/var/log/dpkg.log "$ROOT"/tmp/*

log "podman import $REF"
tar -C "$ROOT" --numeric-owner -c . | podman import --quiet \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL srlab.recipe=$HASH" \
  --message "splitroute lab image, recipe $HASH" \
  - "$REF" >/dev/null

# Older builds of the recipe are dead weight; keep any a container still uses.
while read -r old; do
  [[ $old == "$REF" ]] || podman rmi "$old" >/dev/null 2>&1 || true
done < <(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$REPO")

log "built $REF in $((SECONDS - start)) s ($(podman image inspect --format '{{.Size}}' "$REF" | numfmt --to=iec))"
echo "$REF"
