#!/usr/bin/env bash
# make bench: installs what the benchmark needs (Debian packages, the npm
# redis client into bench/node/) and runs bench/bench.pl.  Settings are
# environment variables, listed at the top of bench/bench.pl.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian 12: lua-nginx-redis provides the "nginx.redis" Lua module
# (lua-resty-redis); it depends on nginx-extras, which apt pulls in.
pkgs=(wrk redis-server redis-tools libnginx-mod-http-ndk libnginx-mod-http-lua
      lua-nginx-redis valgrind)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
        | grep -q '^install ok installed' || missing+=("$p")
done
# any Node.js >= 18 with npm: Debian's, or NodeSource's (which bundles npm)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "bench: missing Debian packages: ${missing[*]}" \
             "(run as root or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -d bench/node/node_modules/redis ]; then
    (cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
fi

exec perl bench/bench.pl "$@"
