#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the browser the UI tests drive, the fonts the Space gets for drawn labels
# (`packages.txt`: Noto CJK covers Latin, Cyrillic, Chinese, Japanese and Korean, Noto core the
# other scripts), and the C++ compiler torch.compile uses for the compiled-decoding tests on the
# CPU.
if ! command -v chromium >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1 ||
  [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] ||
  [ ! -e /usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium g++ \
    $(cat packages.txt) >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# This machine's pip config lists local package folders that may not exist; those notes are noise.
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt \
  2> >(grep -v '^WARNING: Location' >&2)

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q -rs "$@"
