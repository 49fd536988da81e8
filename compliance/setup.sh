#!/usr/bin/env bash
# Install the Autobahn|Testsuite (wstest) in a Python 2.7 virtualenv: compliance/.venv-wstest.
# Idempotent: does nothing when wstest is already installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
env="$here/.venv-wstest"
if [ -x "$env/bin/wstest" ]; then exit 0; fi
py2="$(pyenv root 2>/dev/null)/versions/2.7.18/bin/python2.7"
if [ ! -x "$py2" ]; then
  py2="$(command -v python2.7 || true)"
fi
if [ -z "$py2" ] || [ ! -x "$py2" ]; then
  if command -v pyenv >/dev/null 2>&1; then
    pyenv install -s 2.7.18
    py2="$(pyenv root)/versions/2.7.18/bin/python2.7"
  else
    echo "compliance/setup.sh: Python 2.7 is needed for wstest (pyenv install 2.7.18)" >&2
    exit 1
  fi
fi
tools="$here/.venv-tools"
[ -x "$tools/bin/virtualenv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q 'virtualenv<20.22'; }
rm -rf "$env"
"$tools/bin/virtualenv" -q -p "$py2" "$env"
"$env/bin/pip" install -q --no-cache-dir \
  autobahntestsuite==25.10.1 'autobahn[twisted,accelerate]==0.10.9' txaio==2.1.0 \
  incremental==16.10.1 pyOpenSSL==19.1.0 cryptography==3.3.2 Twisted==19.10.0 \
  zope.interface==4.6.0 jinja2==2.11.3 markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 \
  service_identity==18.1.0 unittest2==1.1.0 six==1.16.0 2>&1 | grep -v -i "deprecat\|warning" || true
"$env/bin/wstest" --help >/dev/null
echo "wstest installed in $env"
