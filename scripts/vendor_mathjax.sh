#!/usr/bin/env bash
# Vendors the part of MathJax 3.2.2 the site loads into book/_static/mathjax/ (committed; the site
# build never fetches anything): es5/tex-mml-chtml.js, its CHTML fonts (woff-v2), the TeX
# extensions it may autoload, and the licence. Run it only to change the pinned version:
#   bash scripts/vendor_mathjax.sh
# It fetches the package with `npm pack` from the npm registry and refuses a tarball whose
# sha512 is not the registry's published integrity for that version (pinned below). Afterwards
# update the sha384 of tex-mml-chtml.js in _config.yml (mathjax_options) and in tests/test_book.py.
set -euo pipefail
VERSION=3.2.2
INTEGRITY="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/book/_static/mathjax"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "mathjax@$VERSION" >/dev/null)
TGZ="$TMP/mathjax-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
if [ "$GOT" != "$INTEGRITY" ]; then
    echo "vendor_mathjax: mathjax-$VERSION.tgz has $GOT, expected $INTEGRITY" >&2
    exit 1
fi
tar xzf "$TGZ" -C "$TMP"
rm -rf "$DEST"
mkdir -p "$DEST/output/chtml/fonts" "$DEST/input/tex"
cp "$TMP/package/es5/tex-mml-chtml.js" "$DEST/"
cp -r "$TMP/package/es5/output/chtml/fonts/woff-v2" "$DEST/output/chtml/fonts/"
cp -r "$TMP/package/es5/input/tex/extensions" "$DEST/input/tex/"
cp "$TMP/package/LICENSE" "$DEST/LICENSE"
echo "mathjax@$VERSION ($INTEGRITY) -> $DEST: $(du -sh "$DEST" | cut -f1)"
echo "sha384 of tex-mml-chtml.js: sha384-$(openssl dgst -sha384 -binary "$DEST/tex-mml-chtml.js" | base64 -w0)"
