#!/usr/bin/env bash
# One-time set-up of a fresh machine: LibreOffice, Chromium, the virtual environment from the
# lock files, and the source paths. (RabbitMQ is found or started by `make up` and the tests.)
# Safe to run again: each step checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
UV_VERSION=0.13.9

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing system packages ($*); install them with: sudo apt-get install -y $*" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# render-pdf drives LibreOffice through the UNO bridge of the system Python.
if ! command -v soffice >/dev/null || ! /usr/bin/python3 -c "import uno" 2>/dev/null; then
  echo "setup: installing LibreOffice (libreoffice-writer-nogui, python3-uno)"
  apt_install libreoffice-writer-nogui python3-uno fonts-dejavu-core
fi
# LibreOffice lays out a combined run about 13% faster on jemalloc (render-pdf preloads it when present).
if ! /sbin/ldconfig -p | grep -q libjemalloc.so.2; then
  echo "setup: installing jemalloc (libjemalloc2)"
  apt_install libjemalloc2
fi
# The web console's browser tests (tests/browser) drive Debian's Chromium through Playwright: Playwright's own
# browser download is not needed (nor always reachable).
if ! command -v chromium >/dev/null; then
  echo "setup: installing Chromium (chromium)"
  apt_install chromium
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/uv" --version 2>/dev/null | grep -q "$UV_VERSION"; then
  "$VENV/bin/pip" install -q "uv==$UV_VERSION"
fi
stamp="$VENV/.synced"
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ requirements-dev.lock -nt "$stamp" ]; then
  VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip sync -q requirements.lock requirements-dev.lock
  touch "$stamp"
fi

# The official AsyncAPI parser checks contracts/asyncapi.json (tests/contract/test_asyncapi.py), from npm.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing Node.js (nodejs, npm)"
  apt_install nodejs npm
fi
parser=tests/contract/asyncapi_parser
if [ ! -d "$parser/node_modules" ] || [ "$parser/package-lock.json" -nt "$parser/node_modules" ]; then
  npm ci --prefix "$parser" --no-audit --no-fund --ignore-scripts --silent
  touch "$parser/node_modules"
fi

# The project's packages are plain source folders on the path: no install step to forget.
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
sed "s#^#$PWD/#" deploy/source-paths.txt > "$site/publipost.pth"
# The `publipost` command (cli/publipost), as an installed console script would be: the venv's Python by its
# absolute path, so a link to it on PATH works from any folder.
cat > "$VENV/bin/publipost" <<EOF
#!$PWD/$VENV/bin/python
import sys
from publipost.app import main
sys.exit(main())
EOF
chmod 755 "$VENV/bin/publipost"
echo "setup: ready ($VENV; the command: $VENV/bin/publipost --help)"
