#!/usr/bin/env bash
# Installs the system packages the test suite drives for real: PostgreSQL (production store),
# Chromium + ChromeDriver (browser test of the explorer). Skips what is already present.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
# Without them the PostgreSQL and browser tests would be skipped: fail rather than let a partial
# run pass as the suite (KT_ALLOW_MISSING_SYSTEM_DEPS=1 runs it anyway, the skips listed).
missing() {
  echo "system-deps: missing ${need[*]}: $1" >&2
  if [ "${KT_ALLOW_MISSING_SYSTEM_DEPS:-0}" = "1" ]; then
    echo "system-deps: KT_ALLOW_MISSING_SYSTEM_DEPS=1: the tests that need them will be skipped" >&2
    exit 0
  fi
  echo "system-deps: install them (apt-get install ${need[*]}), or set KT_ALLOW_MISSING_SYSTEM_DEPS=1" >&2
  exit 1
}
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    missing "neither root nor sudo to install them"
  fi
fi
echo "system-deps: installing ${need[*]}"
$SUDO apt-get update -qq || missing "apt-get update failed"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || missing "apt-get install failed"
