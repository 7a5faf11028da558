"""Token store, sequences, packing, masking and the pretraining loader (design.md §3.2–3.3).

`open_store` / `build_store` read and write the memory-mapped store; `build_sequences`,
`pack_lengths` and `collate` turn it into packed batches (C++ in claimsfm._native, each with a
pure-Python twin in claimsfm.data.reference); `PretrainLoader` yields MLM batches for training.
Nothing here imports torch at module level.
"""
from claimsfm.data.collate import collate
from claimsfm.data.format import FORMAT_VERSION
from claimsfm.data.loader import PretrainLoader
from claimsfm.data.sequences import Sequences, build_sequences, pack_lengths, sequence_lengths
from claimsfm.data.store import Store, open_store


def __getattr__(name):
    # build_store pulls pyarrow, which readers of a store never need.
    if name == "build_store":
        from claimsfm.data.build import build_store

        return build_store
    raise AttributeError(f"module 'claimsfm.data' has no attribute {name!r}")


__all__ = ["FORMAT_VERSION", "PretrainLoader", "Sequences", "Store", "build_sequences", "build_store", "collate",
           "open_store", "pack_lengths", "sequence_lengths"]
