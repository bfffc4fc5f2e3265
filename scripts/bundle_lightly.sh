#!/usr/bin/env bash
# Wheels of lightly and of the packages it needs that this environment lacks, for a machine that
# cannot reach a package index (the GPU machine: Python 3.12, x86-64 manylinux, torch preinstalled).
#
#   bash scripts/bundle_lightly.sh                 # -> bench/wheels/ (ignored by git; carry it)
#   PYTHON=.venv/bin/python WHEELS=/tmp/w PYVER=3.12 bash scripts/bundle_lightly.sh
#
# 1. `pip install --dry-run --report` resolves lightly against this environment's packages: what
#    it would install is what is missing here.
# 2. Each of those, at the resolved version, is downloaded as a wheel for the target interpreter
#    (PYVER, manylinux x86-64), without its own dependencies (they are in the list already); a
#    package with no wheel on the index is built into one here (pure Python only, checked).
#    torch, torchvision, triton and nvidia-* are never bundled (the target has its own CUDA build).
# On the target: `python3 -m pip install --no-index --find-links bench/wheels lightly` installs
# from the folder only what that machine lacks (installed packages that satisfy a requirement are
# kept), which `bench/gpu_suite.py` does by itself when lightly is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WHEELS=${WHEELS:-bench/wheels}
PYVER=${PYVER:-3.12}
SPEC=${SPEC:-lightly}
mkdir -p "$WHEELS"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
"$PYTHON" -m pip install --quiet --dry-run --report "$report" "$SPEC"
mapfile -t pins < <("$PYTHON" - "$report" <<'PY'
import json, re, sys
skip = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*)$")
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    name = meta["name"].lower().replace("_", "-")
    if not skip.match(name):
        print(f"{name}=={meta['version']}")
PY
)
echo "missing here (to bundle): ${pins[*]:-none}"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
for pin in "${pins[@]}"; do
  if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp "${platforms[@]}" -d "$WHEELS" "$pin" 2>/dev/null; then
    # no wheel on the index (antlr4-python3-runtime 4.9.3 is a source archive): build one here;
    # only a pure-Python one (py3-none-any) is valid on the target
    echo "no wheel for $pin: building it from its source archive"
    "$PYTHON" -m pip wheel --quiet --no-deps --no-binary=:all: -w "$WHEELS" "$pin"
  fi
done
if ls "$WHEELS"/*.whl | grep -v -E -- "-(py3|py2.py3)-none-any\.whl$|-cp${PYVER/./}-" >/dev/null; then
  echo "wheels for another interpreter or platform in $WHEELS:" >&2
  ls "$WHEELS"/*.whl | grep -v -E -- "-(py3|py2.py3)-none-any\.whl$|-cp${PYVER/./}-" >&2
  exit 1
fi
ls -l "$WHEELS"
du -sh "$WHEELS"
