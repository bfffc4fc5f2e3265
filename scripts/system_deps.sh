#!/usr/bin/env bash
# System packages that some tests need, installed when missing (Debian/Ubuntu, apt-get, as root):
#   chromium          browser of the site check (tests/test_book.py -> scripts/check_site.py, Playwright's
#                     executable_path: `playwright install` is never needed)
#   slurm-wlm, munge  the single-node SLURM of tests/test_slurm.py (vicreg-edu submit, pre-emption)
# `make test` (and so CI's .ci/run) calls this first. Already installed: does nothing. Not root or
# no apt-get: says what is missing and carries on; those tests then skip and say why.
# Set VICREG_EDU_NO_SYSTEM_DEPS=1 to never touch system packages.
set -euo pipefail

have() {  # a command on PATH, or a daemon in an sbin directory (often off a user's PATH)
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=()
have chromium || have chromium-browser || have google-chrome || missing+=(chromium)
{ have slurmctld && have slurmd && have sbatch && have srun; } || missing+=(slurm-wlm)
have munged || missing+=(munge)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ -n "${VICREG_EDU_NO_SYSTEM_DEPS:-}" ] || [ "${EUID}" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system_deps: missing ${missing[*]} (not installing: needs root and apt-get;" \
         "run 'sudo apt-get install -y ${missing[*]}'); the tests that need them will skip." >&2
    exit 0
fi
echo "system_deps: apt-get install -y ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
