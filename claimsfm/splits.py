"""Deterministic patient-level splits shared by every model.

A subject's split depends only on its subject_id (a keyed hash, so already uniform), never on the
order of the data or on which model asks: 80% train, 10% tuning, 10% held_out.
"""
import numpy as np

# Split ids (the store's `split` array, uint8) and their MEDS names (data/<name>/, subject_splits.parquet).
TRAIN, TUNING, HELD_OUT = 0, 1, 2
SPLITS = ("train", "tuning", "held_out")  # SPLITS[id] is the MEDS name of split id
TRAIN_NAME, TUNING_NAME, HELD_OUT_NAME = SPLITS
_BOUNDS = (80, 90)  # percent: [0, 80) train, [80, 90) tuning, [90, 100) held_out


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 of each 64-bit key: a uniform, well-mixed 64-bit hash (vectorised).  (n,) -> (n,) uint64"""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def split_codes(subject_ids) -> np.ndarray:
    """Split index per subject: 0 train, 1 tuning, 2 held_out.  (n,) int64 -> (n,) uint8"""
    ids = np.asarray(subject_ids, dtype=np.int64).view(np.uint64)
    bucket = splitmix64(ids) % np.uint64(100)
    out = np.full(ids.shape, TRAIN, dtype=np.uint8)
    out[bucket >= _BOUNDS[0]] = TUNING
    out[bucket >= _BOUNDS[1]] = HELD_OUT
    return out


def split_names(subject_ids) -> np.ndarray:
    """Split name per subject ("train" / "tuning" / "held_out")."""
    return np.asarray(SPLITS, dtype=object)[split_codes(subject_ids)]
