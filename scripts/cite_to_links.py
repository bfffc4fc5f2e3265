"""Turn MyST citations into plain markdown links that read everywhere.

A MyST role such as {cite}`bardes2022vicreg` renders only on the built site; JupyterLab, Colab
and GitHub show it raw. This script rewrites every citation role in the markdown of a chapter's
``.py`` file into the book's convention (book/CHAPTERS.md, "Citations"):

    {cite}`bardes2022vicreg`            ->  ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906))
    {cite:t}`bardes2022vicreg`          ->  [Bardes et al. (2022)](https://arxiv.org/abs/2105.04906)
    {cite}`chen2020simclr,grill2020byol` -> ([Chen et al., 2020](...); [Grill et al., 2020](...))

Names and years come from ``references.bib`` (one author: "Krizhevsky"; two: "Chen and He";
more: "Bardes et al."), the link from the entry's ``url``, else its ``doi``, else its arXiv
``eprint``. An entry with none of them is an error that names the key: add a ``url`` to it.

Usage (then sync the pair):

    .venv/bin/python scripts/cite_to_links.py book/07_ablations.py          # rewrite in place
    .venv/bin/python scripts/cite_to_links.py --check book/*.py             # list, change nothing
    .venv/bin/jupytext --sync book/07_ablations.py
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "references.bib"

# {cite}`a`, {cite:p}`a,b`, {cite:t}`a`, {cite:ps}`a` ...
CITE = re.compile(r"\{cite(?::([a-z]+))?\}`([^`]+)`")


def _plain(text: str) -> str:
    """LaTeX accents and braces of a bib field -> plain unicode (``D{\\'e}ny`` -> ``Dény``)."""
    import latexcodec  # noqa: F401  (registers the "ulatex" codec; a dependency of pybtex)

    import codecs

    return codecs.decode(text, "ulatex").replace("{", "").replace("}", "")


def _surname(person) -> str:
    """'van den Oord', 'Bardes': prelast ("von") part + last name, as written in the bib."""
    return _plain(" ".join(person.prelast_names + person.last_names))


def link_of(fields) -> str | None:
    """The entry's url, else https://doi.org/<doi>, else the arXiv abstract of its eprint."""
    if "url" in fields:
        return fields["url"]
    if "doi" in fields:
        return f"https://doi.org/{fields['doi']}"
    if "eprint" in fields:
        return f"https://arxiv.org/abs/{fields['eprint']}"
    return None


def load_references(bib: Path = BIB) -> dict[str, tuple[str, str, str | None]]:
    """key -> (authors as cited, year, link), e.g. ('Bardes et al.', '2022', 'https://arxiv...').

    The link is None for an entry without url/doi/eprint; citing it is then an error."""
    data = parse_file(str(bib), bib_format="bibtex")
    refs = {}
    for key, entry in data.entries.items():
        people = entry.persons.get("author", [])
        if not people:
            raise KeyError(f"references.bib entry '{key}' has no author")
        names = [_surname(p) for p in people]
        authors = (
            names[0] if len(names) == 1 else (f"{names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} et al.")
        )
        refs[key] = (authors, entry.fields["year"], link_of(entry.fields))
    return refs


def convert(text: str, refs: dict[str, tuple[str, str, str]]) -> tuple[str, int]:
    """Rewrite every citation role in `text`; returns (new text, number of roles rewritten).

    Roles inside fenced code blocks are rewritten too: chapters never show MyST syntax.

    >>> refs = {"k": ("Bardes et al.", "2022", "https://arxiv.org/abs/2105.04906")}
    >>> convert("VICReg {cite}`k`.", refs)[0]
    'VICReg ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)).'
    """

    def one(match: re.Match) -> str:
        kind, keys = match.group(1) or "p", [k.strip() for k in match.group(2).split(",")]
        unknown = [k for k in keys if k not in refs]
        if unknown:
            raise KeyError(f"citation key(s) {unknown} not in references.bib")
        unlinked = [k for k in keys if refs[k][2] is None]
        if unlinked:
            raise KeyError(f"references.bib entry(ies) {unlinked} have no url, doi or eprint: add a url")
        if kind == "t":  # textual: "Bardes et al. (2022)" as the link text
            return "; ".join(f"[{refs[k][0]} ({refs[k][1]})]({refs[k][2]})" for k in keys)
        return "(" + "; ".join(f"[{refs[k][0]}, {refs[k][1]}]({refs[k][2]})" for k in keys) + ")"

    return CITE.subn(one, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="chapter .py files (or any markdown)")
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    parser.add_argument("--bib", type=Path, default=BIB)
    args = parser.parse_args(argv)
    refs = load_references(args.bib)
    total = 0
    for path in args.files:
        new, n = convert(path.read_text(), refs)
        total += n
        if n and not args.check:
            path.write_text(new)
        print(f"{path}: {n} citation(s) {'to convert' if args.check else 'converted'}")
    if not args.check and total:
        print("now run .venv/bin/jupytext --sync on each converted .py")
    return 1 if (args.check and total) else 0


if __name__ == "__main__":
    sys.exit(main())
