#!/usr/bin/env bash
# Install the Debian packages the tests use (prometheus, kcat, docker-compose, chromium for
# the saga explorer's browser tests; Java and Maven for the Apache Kafka half; python3-venv when python3 cannot create a venv),
# only those whose binary is missing. Never fails the build: a machine without
# apt-get (or without root) gets a warning, and the tests that need a missing
# tool skip locally or fail under CI, saying which tool.
set -uo pipefail

# binary:package pairs
wanted=(prometheus:prometheus kcat:kcat docker-compose:docker-compose chromium:chromium
        java:openjdk-17-jre-headless mvn:maven)

missing=()
for pair in "${wanted[@]}"; do
    binary=${pair%%:*}
    package=${pair#*:}
    command -v "$binary" >/dev/null 2>&1 || missing+=("$package")
done
# Debian's python3 can only create the .venv that make bootstraps with python3-venv.
if command -v python3 >/dev/null 2>&1 && ! python3 -c "import ensurepip" >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

warn() { echo "system-deps: WARNING: $*" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
    warn "missing ${missing[*]} and apt-get is not available; install them with your" \
         "package manager. Tests needing them skip (or fail when CI is set)."
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        warn "missing ${missing[*]}; not root and no passwordless sudo, so not installing." \
             "Run: sudo apt-get install ${missing[*]}"
        exit 0
    fi
fi

echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq; then
    warn "apt-get update failed; trying to install from the current package lists"
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    warn "apt-get install ${missing[*]} failed. Tests needing them skip (or fail when CI is set)."
fi
exit 0
