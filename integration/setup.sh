#!/bin/bash
# Idempotent setup of what the tests need: iproute2/nsenter for namespaces, iptables (legacy and nft)
# and nftables for the iptables-backend tests, containerd for the CRI harness (integration/src/cri.rs),
# prometheus for its promtool (integration/tests/metrics.rs checks our metrics with it; on a node
# running systemd the package also starts a Prometheus server on :9090).
# Installs Debian 12 packages and a Python venv with the CRI gRPC stubs; skips what is already there.
# Must run as root. Override the venv location with CALICO_PREFLIGHT_CRI_VENV (cri.rs reads the same).
set -euo pipefail

VENV=${CALICO_PREFLIGHT_CRI_VENV:-/var/tmp/calico-preflight-cri-venv}
PKGS=(containerd runc containernetworking-plugins busybox-static python3-venv iproute2 util-linux procps iptables nftables prometheus)

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: must run as root" >&2; exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: packages already installed"
fi

# Debian's interpreter explicitly: a pyenv/other python3 first on PATH may lack ensurepip/venv.
if ! "$VENV/bin/python" -c 'import grpc; from cri_api.v1 import api_pb2, api_pb2_grpc' 2>/dev/null; then
  echo "setup.sh: creating venv $VENV"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check container-runtime-interface-api
  "$VENV/bin/python" -c 'import grpc; from cri_api.v1 import api_pb2, api_pb2_grpc'
else
  echo "setup.sh: venv $VENV already usable"
fi
echo "setup.sh: ok"
