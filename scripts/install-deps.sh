#!/bin/bash
# Install the Debian packages berth's build, demo, tests and benchmarks use.
# Idempotent: only missing packages are installed. Run as root on Debian 12.
set -euo pipefail

PKGS=(
  busybox-static   # the rootfs of demo and test containers
  runc crun        # peers for the conformance comparison and benchmarks
  jq iproute2 util-linux procps cpio
  umoci skopeo     # image interop tests
  debootstrap libcap2-bin python3  # the Debian image of the rootfs comparison test (image-tool/tests/debian)
  docker-registry  # loopback registry for pull/push tests
  apache2-utils    # htpasswd (bcrypt) for the registry basic-auth tests
  qemu-system-x86 linux-image-amd64  # the pure cgroup-v2 guest
  debootstrap e2fsprogs  # the systemd guest's disk image (tests/systemdvm)
  hyperfine
  gcc libc6-dev    # static attacker programs of the escape tests
  containerd       # shim tests and benchmark (containerd-shim-berth-v2)
  podman conmon netavark iptables protobuf-compiler  # podman and CRI client tests (shim/tests)
  containernetworking-plugins  # CNI bridge/host-local/portmap/firewall: CRI test, berth-image networking
  tini             # /usr/bin/tini-static, the init of berth-image run --init
  strace           # the shim's start-action test delivers signals at chosen syscalls
  patchelf debian-archive-keyring  # unstable's runc/crun on its own loader (unstable-peers.sh)
  buildah          # the build benchmark's peer (its Debian base image: debootstrap, above)
  # Build dependencies of CRIU 4.2.1 (scripts/criu.sh builds it from source):
  # the libraries it links, from Debian 12.
  libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev
  libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler pkgconf uuid-dev make xz-utils
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The registry package starts a service on :5000; tests run their own instance.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
# containerd 2.x, runc 1.3 and crun 1.28 from Debian unstable, unpacked into a
# private prefix (never installed on the host): the shim's containerd matrix,
# the conformance comparison and the benchmarks use them.
bash "$(dirname "$0")/unstable-peers.sh" >/dev/null
if ! command -v cargo >/dev/null; then
  echo "cargo (Rust toolchain) is required" >&2
  exit 1
fi
