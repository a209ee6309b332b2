#!/usr/bin/env bash
# Install docqa and everything its tests need into .venv, on a machine with Python 3.11 and pip.
# The CPU build of torch is installed first, so nothing pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[build,test,report,fit]"

# Headless Chromium for the browser test (Debian's package; Playwright's download does not work offline).
if [ "${DOCQA_SKIP_BROWSER:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; } ||
            echo "install.sh: could not install chromium; the browser test will be skipped" >&2
    fi
fi

# redis-server for shared state across workers (DOCQA_REDIS_URL); the tests start their own on
# a free loopback port. Debian's package: a real Redis, not an imitation of one.
if [ ! -x /usr/bin/redis-server ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null; } ||
            echo "install.sh: could not install redis-server; the Redis tests will be skipped" >&2
    fi
fi

# Tesseract reads scanned PDF pages (OCR); without it such files are skipped with a message
# saying how to install it. Debian's package, with its English model (tesseract-ocr-eng).
if [ ! -x /usr/bin/tesseract ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq tesseract-ocr >/dev/null; } ||
            echo "install.sh: could not install tesseract-ocr; scanned PDFs will be skipped" \
                "and the OCR tests skipped" >&2
    fi
fi
