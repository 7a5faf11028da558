"""claimsfm._native: the compiled core (csrc/bindings.cpp, csrc/bind_ingest.cpp, csrc/bind_data.cpp).

Load it through `claimsfm.native.native()`, which checks ABI_VERSION. Array arguments are converted
to C-contiguous arrays of the stated dtype; results are new numpy arrays. Shapes: n subjects, N events
(store), k subjects asked for, T tokens, R result rows. tests/test_native.py checks that this stub
names every binding and every result key.
"""
from typing import Callable, TypedDict

import numpy as np
import numpy.typing as npt

ABI_VERSION: int
UKE_STAT_KEYS: tuple[str, ...]  # the counters of UkeResult["stats"], in csrc/uke_parser.hpp order

# ---------------------------------------------------------------------------------------- ingest


class Progress:
    """Bytes parsed so far, advanced by the parser threads (poll `value` from another thread)."""

    def __init__(self) -> None: ...
    @property
    def value(self) -> int: ...


class UkeStats(TypedDict):
    files: int
    files_rejected: int
    receipts: int
    receipts_rejected: int
    records: int
    records_unknown: int
    records_ignored: int
    lines_rejected: int
    bytes: int


class UkeResult(TypedDict):
    key: npt.NDArray[np.int32]        # (R,) patient key id (index into keys)
    day: npt.NDArray[np.int32]        # (R,) days since 1970-01-01; INT32_MIN for static rows
    code: npt.NDArray[np.int32]       # (R,) code id (index into codes)
    value: npt.NDArray[np.float32]    # (R,) count for SI/IY/TO, NaN otherwise
    facility: npt.NDArray[np.int32]   # (R,) facility id (index into facilities)
    suspected: npt.NDArray[np.uint8]  # (R,) 1 when the diagnosis carries modifier 8002
    dx_start: npt.NDArray[np.int32]   # (R,) 診療開始日 of a diagnosis, INT32_MIN otherwise
    codes: list[str]                  # code id -> MEDS code
    keys: list[bytes]                 # key id -> patient key bytes (file encoding; never written out); absent
    #                                   with `spill`, which returns keys_blob: bytes and key_offsets (n+1,) int64,
    #                                   and with `buckets`, which returns no keys (key_sid instead)
    key_utf8: npt.NDArray[np.uint8]   # key id -> 1 UTF-8, 0 CP932
    facilities: list[str]             # facility id -> 7-digit facility code
    rejects: list[tuple[int, int, str, bytes]]  # (file index, line (0 = whole file), reason, masked line)
    stats: UkeStats
    spilled: int                      # events written to `spill` or `buckets` (then the columns above are empty)
    key_sid: npt.NDArray[np.int64]    # key id -> subject_id (with `buckets`; else empty)
    bucket_rows: npt.NDArray[np.int64]  # rows written to each bucket file (with `buckets`; else empty)


class CsvResult(TypedDict):
    subject_id: npt.NDArray[np.int64]  # (R,)
    time_us: npt.NDArray[np.int64]     # (R,) microseconds since 1970-01-01; INT64_MIN for static rows
    code: npt.NDArray[np.int32]        # (R,) index into codes
    value: npt.NDArray[np.float32]     # (R,) NaN when empty or absent
    codes: list[str]
    rejects: list[tuple[int, str]]     # (line, reason)
    rows: int
    bytes: int
    has_value_column: bool


def parse_uke(paths: list[str], link_by: str = "chart", stop_at_first_error: bool = True, threads: int = 1,
              progress: Progress | None = None, spill: str = "", buckets: list[str] = ...,
              salt: bytes = b"", subject_id: Callable[[bytes, bool], int] | None = None,
              piece_bytes: int = 0) -> UkeResult:
    """Parse UKE files into raw event columns (link_by: "chart" | "insurer"); see csrc/uke_parser.hpp. With
    `buckets`, each event goes to the bucket file of its subject_id (ASCII keys hashed in C++ with `salt`, the
    others by `subject_id(raw_key, utf8)`), and key_sid / bucket_rows come back. Files larger than `piece_bytes`
    (0: 8 MiB) are parsed in pieces on several threads, with the same result."""


def sort_events(subject: npt.NDArray[np.int64], time_us: npt.NDArray[np.int64], packed: npt.NDArray[np.int64],
                value: npt.NDArray[np.float32], dx_start: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """(N,) permutation: ingest's total event order (events.EventTable.sorted is the numpy twin)."""


def bucket_events(paths: list[str], key_sid: npt.NDArray[np.int64], code_rank: npt.NDArray[np.int64],
                  code_rule: npt.NDArray[np.uint8], facility_rank: npt.NDArray[np.int64]) -> dict[str, np.ndarray]:
    """Bucket files of SpillRow records (consecutive subject_id ranges, read in order) -> their de-duplicated events
    in ingest's total order: subject, time_us,
    dx_start_us (int64), code, facility (int32), value (float32), suspected (uint8); see csrc/bucket_events.hpp."""


def parse_csv(path: str, threads: int = 1, skip_bad: bool = False) -> CsvResult:
    """Parse a subject_id,time,code[,numeric_value] CSV."""


def group_by_subject(subject: npt.ArrayLike, time_us: npt.ArrayLike, threads: int = 1
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(order (R,), offsets (m+1,), subjects (m,)): a permutation grouping rows by subject, time-ordered."""

# ------------------------------------------------------------------ store, sequences, packing, masking
# The store arrays come first, as claimsfm.data.sequences passes them: offsets (n+1,) int64,
# token (N,) int32, day (N,) int32, visit (N,) int32, birth_day (n,) int32.


def sequence_lengths(offsets: npt.ArrayLike, token: npt.ArrayLike, day: npt.ArrayLike, visit: npt.ArrayLike,
                     birth_day: npt.ArrayLike, subjects: npt.ArrayLike, cutoff: npt.ArrayLike | None,
                     max_len: int, /) -> npt.NDArray[np.int64]:
    """(k,) sequence length (with [CLS]) of each subject row, events at or before its cutoff day."""


def build_sequences(offsets: npt.ArrayLike, token: npt.ArrayLike, day: npt.ArrayLike, visit: npt.ArrayLike,
                    birth_day: npt.ArrayLike, subjects: npt.ArrayLike, cutoff: npt.ArrayLike | None,
                    reference: npt.ArrayLike | None, max_len: int, /) -> tuple[
                        npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int32],
                        npt.NDArray[np.int32], npt.NDArray[np.int8], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """(offsets (k+1,), input_ids, age_months, visit, months, segment, days_before, gap_days (T,)):
    the subjects' sequences in CSR form (claimsfm.data.sequences.Sequences)."""


def pack_ffd(lengths: npt.ArrayLike, max_tokens: int, /) -> npt.NDArray[np.int64]:
    """First-fit-decreasing row of each length. (n,) int64 -> (n,) int64"""


def order_events(subject: npt.ArrayLike, day: npt.ArrayLike, facility: npt.ArrayLike, code: npt.ArrayLike,
                 inpatient: npt.ArrayLike, n_subjects: int, /
                 ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
    """Store build: (order (R,) by (subject, day, visit, code), visit (R,) int32, visit_inpatient (R,) uint8)."""


def store_rows(subject: npt.ArrayLike, time_us: npt.ArrayLike, code: npt.ArrayLike, facility: npt.ArrayLike,
               suspected: npt.ArrayLike, value: npt.ArrayLike, code_rank: npt.ArrayLike, facility_rank: npt.ArrayLike,
               birth: int, death: int, inpatient: int, sex_codes: list[tuple[int, int]], flag_suspected: int,
               flag_inpatient: int) -> dict:
    """Token store rows of one sorted bucket: subject_ids, counts, birth_day, death_day, sex (per subject), code,
    day, visit, flags, value (per event, store order), day_range (min, max; max < min: no events)."""


def mlm_batch_key(seed: int, epoch: int, step: int) -> int:
    """Key of the MLM draws of batch (seed, epoch, step)."""


def mlm_mask(input_ids: npt.ArrayLike, cu_seqlens: npt.ArrayLike, key: int, vocab_size: int, mask_prob: float, /
             ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """(masked input_ids (T,) int32, labels (T,) int64, -100 where not a target) of a flat batch."""
