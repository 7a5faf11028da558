"""The token store: a memory-mapped, versioned CSR view of a MEDS dataset (design.md §3.2).

This module only reads: `claimsfm.data.build` writes a store, `claimsfm.data.format` holds the schema.
On disk (`<data>/store/`): `format.json` (FORMAT_VERSION, counts, settings, month range),
`vocab.json` (token -> id, specials first), `codes.json` (every raw code with its parent codes)
and one `.npy` per array. Opening maps the arrays read-only (`np.load(mmap_mode="r")`), so a store
larger than RAM costs only the pages a reader touches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.data.format import ARRAYS, FORMAT_VERSION
from claimsfm.errors import ClaimsfmError
from claimsfm.io import read_json


def resolve_store_dir(path) -> Path:
    """`<data>` or `<data>/store` -> the folder holding format.json."""
    path = Path(path)
    for cand in (path, path / "store"):
        if (cand / "format.json").is_file():
            return cand
    raise ClaimsfmError(f"{path}: no token store found (no format.json here or in store/); "
                        "build it with `claimsfm ingest`")


class Store:
    """A read-only token store. Arrays are memory-mapped numpy arrays (see docs/internals.md §4).

    Per subject (n,): subject_ids int64 (ascending), split uint8, birth_day int32 (-1 unknown),
    sex int8 (1 M, 2 F, 0 unknown), death_day int32 (-1 none); offsets (n+1,) int64.
    Per event (N,): code int32 (index into code_names), token int32 (vocab id), day int32,
    visit int32, flags uint8 (bit 0 suspected, bit 1 inpatient visit), value float32 (NaN none).
    Events of subject i are offsets[i]:offsets[i+1], sorted by (day, visit, code).
    """

    def __init__(self, path):
        self.path = resolve_store_dir(path)
        fmt_path = self.path / "format.json"
        self.format = read_json(fmt_path)
        version = self.format.get("FORMAT_VERSION")
        if version != FORMAT_VERSION:
            raise ClaimsfmError(
                f"{fmt_path}: token store format version {version}, but this claimsfm reads version "
                f"{FORMAT_VERSION}; rebuild the store with `claimsfm ingest`"
            )
        try:
            self.n_subjects = int(self.format["n_subjects"])
            self.n_events = int(self.format["n_events"])
            self.code_level = self.format["code_level"]
            self.min_count = int(self.format["min_count"])
            self.first_month = self.format["first_month"]
            self.last_month = self.format["last_month"]
        except KeyError as exc:
            raise ClaimsfmError(f"{fmt_path}: missing key {exc}; the store is damaged, rebuild it") from None
        except (TypeError, ValueError) as exc:
            raise ClaimsfmError(f"{fmt_path}: bad value ({exc}); the store is damaged, rebuild it") from None
        self._map_arrays()
        self._load_vocab()

    def _map_arrays(self) -> None:
        sizes = {"subjects": self.n_subjects, "offsets": self.n_subjects + 1, "events": self.n_events}
        for name, (dtype, kind) in ARRAYS.items():
            file = self.path / f"{name}.npy"
            try:
                arr = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise ClaimsfmError(f"{file}: cannot map store array ({exc})") from None
            if arr.dtype != dtype or arr.shape != (sizes[kind],):
                raise ClaimsfmError(
                    f"{file}: expected {np.dtype(dtype).name} of shape ({sizes[kind]},), "
                    f"found {arr.dtype.name} {arr.shape}; the store is damaged, rebuild it"
                )
            setattr(self, name, arr)

    def _load_vocab(self) -> None:
        path = self.path / "vocab.json"
        self.vocab: dict[str, int] = read_json(path)
        self.vocab_size = len(self.vocab)
        ids = list(self.vocab.values())
        if not all(type(i) is int for i in ids) or sorted(ids) != list(range(self.vocab_size)):
            raise ClaimsfmError(f"{path}: token ids are not 0..{self.vocab_size - 1}; the store is damaged, rebuild it")
        self.id_to_token = [""] * self.vocab_size
        for tok, i in self.vocab.items():
            self.id_to_token[i] = tok
        path = self.path / "codes.json"
        codes = read_json(path, list)
        try:
            self.code_names: list[str] = [str(c["code"]) for c in codes]
            self.code_parents: list[list[str]] = [list(c["parents"]) for c in codes]
            self.code_counts = np.array([c["count"] for c in codes], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ClaimsfmError(f"{path}: not a list of {{code, parents, count}} ({type(exc).__name__}: {exc}); "
                                "the store is damaged, rebuild it") from None

    def __getstate__(self):
        # Pickle the location, not the mapped data: DataLoader workers reopen the maps.
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return (f"Store({str(self.path)!r}, n_subjects={self.n_subjects}, n_events={self.n_events}, "
                f"vocab_size={self.vocab_size}, code_level={self.code_level!r})")

    def match_codes(self, prefixes) -> np.ndarray:
        """(n_codes,) bool: the raw code or any of its parent codes starts with one of `prefixes`."""
        prefixes = tuple(prefixes)
        out = np.zeros(len(self.code_names), dtype=bool)
        for i, (code, parents) in enumerate(zip(self.code_names, self.code_parents)):
            out[i] = code.startswith(prefixes) or any(p.startswith(prefixes) for p in parents)
        return out

    def rows_of(self, subject_ids) -> np.ndarray:
        """Store row index of each subject_id, (k,) int64 -> (k,) int64; -1 where absent."""
        ids = np.asarray(subject_ids, dtype=np.int64)
        pos = np.searchsorted(self.subject_ids, ids)
        pos_c = np.minimum(pos, max(self.n_subjects - 1, 0))
        found = (pos < self.n_subjects) & (self.subject_ids[pos_c] == ids) if self.n_subjects else pos < 0
        return np.where(found, pos, -1).astype(np.int64)

    def lengths(self) -> np.ndarray:
        """(n,) int64 events per subject."""
        return np.diff(np.asarray(self.offsets))


def open_store(path) -> Store:
    """Open the token store at `path` (= `<data>` or `<data>/store`), memory-mapping its arrays.

    Raises ClaimsfmError when the folder holds no store, another FORMAT_VERSION, or damaged arrays.
    """
    return Store(path)

