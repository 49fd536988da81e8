#!/usr/bin/env bash
# Create the benchmark environments: bench/.venv (roost from this checkout, uvicorn+Starlette,
# aiohttp, picows) and bench/.venv-robyn (Robyn 0.88 pins an older uvloop than roost does);
# install wrk (the HTTP load generator, a Debian package) if it is missing and apt-get is there;
# build bench/cload/cload (the C load generator) with the system's gcc.
set -euo pipefail
if ! command -v wrk >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y wrk
  else
    echo "wrk not found: install it for the http measurements" >&2
  fi
fi
here="$(cd "$(dirname "$0")" && pwd)"
cload="$here/cload/cload"
if [ ! -x "$cload" ] || [ "$here/cload/cload.c" -nt "$cload" ]; then
  gcc -O2 -Wall -Wextra -Werror -o "$cload" "$here/cload/cload.c" -lm
fi
make_env() {  # make_env DIR REQUIREMENTS [EXTRA PIP ARGS...]
  local env="$1" req="$2"; shift 2
  local stamp="$env/.installed-$(cat "$req" "$here/../pyproject.toml" | sha1sum | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  python3 -m venv "$env"
  "$env/bin/pip" install -q --upgrade pip
  "$env/bin/pip" install -q -r "$req" "$@"
  rm -f "$env"/.installed-*
  touch "$stamp"
}
make_env "$here/.venv" "$here/requirements.txt" -e "$here/.."
make_env "$here/.venv-robyn" "$here/requirements-robyn.txt"
echo "bench environments ready"
