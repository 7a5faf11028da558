"""Print an ACES `code: {any: [...]}` predicate for code prefixes matched over parent codes.

ACES matches the MEDS `code` column only, and claimsfm's diagnosis codes are receipt codes
(JPDX//<7 digits>). Their ICD-10 (and drug YJ, procedure 区分) parents live in the dataset's
metadata/codes.parquet `parent_codes`; this script expands prefixes over them the way claimsfm's
task engine does (a code matches when it or one of its parents starts with a prefix):

    python examples/aces/icd10_codes.py DATA ICD10//E11 ICD10//E14
    # -> code: {any: [JPDX//8850020, JPDX//8850113, JPDX//8854270, JPDX//8871549]}
"""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq


def matching_codes(data: Path, prefixes: list[str]) -> list[str]:
    """Codes of `data`/metadata/codes.parquet that start with, or have a parent that starts with, a prefix."""
    rows = pq.read_table(Path(data) / "metadata" / "codes.parquet", columns=["code", "parent_codes"]).to_pylist()
    want = tuple(prefixes)
    return sorted(r["code"] for r in rows
                  if r["code"].startswith(want) or any(p.startswith(want) for p in r["parent_codes"] or []))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0], "\nusage: icd10_codes.py DATA PREFIX [PREFIX...]", file=sys.stderr)
        return 2
    codes = matching_codes(Path(argv[0]), argv[1:])
    if not codes:
        print(f"no code of {argv[0]} matches {', '.join(argv[1:])}", file=sys.stderr)
        return 1
    print("code: {any: [" + ", ".join(codes) + "]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
