#!/usr/bin/env bash
# Install the system services the test suite runs for real, when they are missing:
# redis-server (rate limits), chromium + chromium-driver (dashboard browser tests),
# prometheus (promtool, to check alert rules). Debian/Ubuntu packages; needs root or sudo.
set -euo pipefail

want=()
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || want+=(prometheus)
[ ${#want[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: please install: ${want[*]} (no apt-get here)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "system-deps: not root and no sudo; please install: ${want[*]}" >&2
    exit 0
  fi
fi
echo "system-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# The package starts a system-wide redis on 6379; tests start their own on free ports.
if [[ " ${want[*]} " == *" redis-server "* ]]; then
  ($sudo service redis-server stop || $sudo systemctl stop redis-server) >/dev/null 2>&1 || true
fi
if [[ " ${want[*]} " == *" prometheus "* ]]; then
  ($sudo service prometheus stop || $sudo systemctl stop prometheus) >/dev/null 2>&1 || true
fi
