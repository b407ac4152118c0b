#!/usr/bin/env bash
# Installs what `npm run bench` needs: load generators and peer proxies from
# Debian, npm packages from the lockfile. Idempotent: safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy redis-server:redis-server taskset:util-linux ps:procps; do
  bin=${pair%%:*}
  pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# The Debian nginx/haproxy packages may start system services; the benchmark
# starts its own instances on ephemeral loopback ports and does not use them.

if [ ! -d node_modules/http-proxy ] || [ ! -d node_modules/http2-proxy ] || [ ! -d node_modules/tsx ]; then
  npm ci --ignore-scripts
fi

echo "versions:"
echo "  node    $(node -v)"
echo "  nginx   $(nginx -v 2>&1)"
echo "  haproxy $(haproxy -v | head -1)"
echo "  wrk     $(wrk -v 2>&1 | head -1)"
echo "  h2load  $(h2load --version)"
echo "  redis   $(redis-server --version)"
echo "  taskset $(taskset --version)"
echo "  http-proxy  $(node -p "require('./node_modules/http-proxy/package.json').version")"
echo "  http2-proxy $(node -p "require('./node_modules/http2-proxy/package.json').version")"
echo "  cores   $(nproc)"

ok=1
nginx_minor=$(nginx -v 2>&1 | sed -E 's#.*nginx/([0-9]+)\.([0-9]+).*#\1\2#')
# cleartext HTTP/2 (prior knowledge) via `listen ... http2` exists since 1.9.5;
# the separate `http2 on;` directive needs >= 1.25.1 (not used here).
[ "${nginx_minor:-0}" -ge 19 ] || { echo "nginx too old for listen ... http2" >&2; ok=0; }
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores; proxy and load generator will share a core" >&2
ulimit -n 20000 2>/dev/null || true
[ "$ok" = 1 ] && echo "bench setup ok"
