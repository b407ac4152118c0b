#!/usr/bin/env bash
# Finds the real clients and servers the tests use; installs the missing Debian
# packages when it can (root + apt-get), otherwise stops at once with the exact
# command to run. Says what it did in one line. Run by `npm test` (pretest) and .ci/run.
set -euo pipefail

# command-or-check => Debian package (one list for npm test and CI)
checks=(
  "redis-server:redis-server"
  "h2load:nghttp2-client"
  "slowhttptest:slowhttptest"
  "curl:curl"
  "openssl:openssl"
  "chromium:chromium"
  "wrk:wrk"
  "systemd-analyze:systemd"
  "py:h2:python3-h2"
)

missing=()
for c in "${checks[@]}"; do
  pkg="${c##*:}"
  what="${c%:*}"
  if [ "${what%%:*}" = py ]; then
    mod="${what#py:}"
    /usr/bin/python3 -c "import ${mod}" >/dev/null 2>&1 || missing+=("$pkg")
  else
    command -v "$what" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "test-setup: found redis-server, h2load, slowhttptest, curl, openssl, chromium, wrk, systemd-analyze, python3-h2"
  exit 0
fi

cmd="apt-get update && apt-get install -y ${missing[*]}"
can_install=1
[ "$(id -u)" = 0 ] || can_install=0
command -v apt-get >/dev/null 2>&1 || can_install=0
[ "${SLUICE_TEST_SETUP_NO_INSTALL:-}" = 1 ] && can_install=0
if [ $can_install = 0 ]; then
  if [ "$(id -u)" = 0 ]; then echo "test-setup: missing ${missing[*]}; run: $cmd" >&2
  else echo "test-setup: missing ${missing[*]}; run: sudo sh -c '$cmd'" >&2; fi
  exit 1
fi
echo "test-setup: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
  tail -20 "$log" >&2
  echo "test-setup: installing failed; run: $cmd" >&2
  exit 1
fi
rm -f "$log"
