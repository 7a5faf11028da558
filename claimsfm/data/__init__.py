"""Token store, sequences, packing, masking and the pretraining loader (design.md §3.2–3.3).

`open_store` / `build_store` read and write the memory-mapped store; `build_sequences`,
`pack_lengths` and `collate` turn it into packed batches (C++ in claimsfm._native, each with a
pure-Python twin in claimsfm.data.reference); `PretrainLoader` yields MLM batches for training.
Nothing here imports torch at module level.
"""
from claimsfm.data.store import FORMAT_VERSION, Store, build_store, open_store

__all__ = ["FORMAT_VERSION", "Store", "build_store", "open_store"]
