#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (`playwright install` cannot download
# browsers here). Install it when missing.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then exit 0; fi
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: Chromium is needed for the browser tests; install it and set CHROMIUM_PATH=/path/to/chromium" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: installing Chromium needs root: run 'apt-get install chromium' as root, or set CHROMIUM_PATH" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium for the browser tests (one time, about a minute)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
