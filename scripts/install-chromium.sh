#!/usr/bin/env bash
# Installs Debian's chromium for the HTML report test (tests/html_report.rs), which
# opens a report in a real headless browser. Does nothing when it is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: /usr/bin/chromium is missing and apt-get is not available;" \
        "install Debian's chromium package by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium
echo "install-chromium.sh: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
