// UKE (レセ電, 医科) receipt files -> raw MEDS events as columns. Plain C++17, no Python.
//
// One file is parsed by one thread from one in-memory buffer, so memory is bounded by the files
// being parsed at once (one per thread) plus the events produced. Events are "raw": a diagnosis
// repeated on every monthly receipt comes back once per receipt; claimsfm.ingest de-duplicates
// after the patient keys are turned into subject_ids (SpillBuckets: by a callback at merge time).
// The pure-Python twin is claimsfm/ingest/reference.py; both must produce identical output.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace claimsfm {

enum class LinkBy { chart, insurer };

struct UkeOptions {
  LinkBy link_by = LinkBy::chart;
  bool stop_at_first_error = true;  // --on-error raise: stop each file at its first bad line
  int threads = 1;
  // A file larger than this is parsed as pieces of about this size (cut where a receipt starts), each on its own
  // thread and merged in order: the memory of the parse is bounded by pieces, not by the largest files.
  size_t piece_bytes = size_t(8) << 20;
};

// A code is (kind, number) packed into 64 bits until the merge turns it into a MEDS string.
enum CodeKind : uint8_t { kSex, kBirth, kDeath, kDx, kProc, kDrug, kDevice, kVisit };
std::string code_name(uint64_t packed);

// One row per event. Ids index the string tables of the result that holds the columns.
struct EventColumns {
  std::vector<int32_t> key;       // patient key id
  std::vector<int32_t> day;       // days since 1970-01-01, kNoDay for static rows
  std::vector<int32_t> code;      // code id
  std::vector<float> value;       // count for SI/IY/TO, NaN otherwise
  std::vector<int32_t> facility;  // facility id
  std::vector<uint8_t> suspected; // 1 when the diagnosis carries modifier 8002
  std::vector<int32_t> dx_start;  // 診療開始日 of a diagnosis, kNoDay otherwise
  size_t size() const { return day.size(); }
  void truncate(size_t n);
};

struct Reject {
  int32_t file;        // index into the input paths
  int64_t line;        // 1-based; 0 for a whole-file problem
  std::string reason;  // never contains a field value
  std::string text;    // short excerpt: record ID, leading code/count fields, *** (Parser::mask); "" if none
};

// The one list of UkeStats counters: X(name) per field, for the struct, add() and the binding's dict.
#define CLAIMSFM_UKE_STATS(X)                                                                 \
  X(files) X(files_rejected) X(receipts) X(receipts_rejected) X(records) X(records_unknown) \
  X(records_ignored) X(lines_rejected) X(bytes)

struct UkeStats {
#define CLAIMSFM_STAT_FIELD(name) int64_t name = 0;
  CLAIMSFM_UKE_STATS(CLAIMSFM_STAT_FIELD)
#undef CLAIMSFM_STAT_FIELD
  void add(const UkeStats& o);
};

// Output of one file: ids are local to the file.
struct FileResult {
  EventColumns events;
  std::vector<uint64_t> codes;        // local code id -> packed code
  std::vector<std::string> keys;      // local key id -> patient key bytes (file encoding)
  std::vector<std::string> facilities;
  bool utf8 = false;                  // the file decodes as UTF-8 (else CP932)
  bool cp932 = false;                 // not UTF-8, and the whole buffer is valid CP932
  std::vector<Reject> rejects;
  UkeStats stats;
};

struct UkeResult {
  EventColumns events;
  std::vector<std::string> codes;       // code id -> MEDS code string
  std::vector<std::string> keys;        // key id -> patient key bytes
  std::vector<uint8_t> key_utf8;        // key id -> 1 UTF-8, 0 CP932
  std::vector<std::string> facilities;  // facility id -> 7-digit facility code
  std::vector<Reject> rejects;          // ordered by (file, line)
  UkeStats stats;
  int64_t spilled = 0;                  // events written to the spill file (0 without one)
  std::vector<int64_t> key_sid;         // key id -> subject_id (SpillBuckets only)
  std::vector<int64_t> bucket_rows;     // rows written to each bucket file (SpillBuckets only)
};

// The out-of-core ingest's spill (claimsfm/ingest/spill.py): every event goes, encoded as spill records
// (spill.hpp SpillRecord), into the file of its subject_id range (spill.hpp bucket_of_subject), in input
// order inside each file.
struct SpillBuckets {
  std::vector<std::string> paths;  // one file per bucket, in subject_id order
  // The subject_id of a new patient key (its bytes, and whether its file is UTF-8): called once per
  // distinct key, in key id order, by the thread that merges. May throw std::runtime_error.
  std::function<int64_t(const std::string& key, bool utf8)> subject_id;
};

// One spilled event with global ids, as spill.hpp encodes it into SpillRecords and decodes it back
// (claimsfm/ingest/spill.py SPILL_DTYPE is the same layout: little-endian, 28 bytes, no padding left
// uninitialised).
struct SpillRow {
  int32_t key, day, code, facility, dx_start;
  float value;
  uint8_t suspected, pad[3];
};
static_assert(sizeof(SpillRow) == 28, "SpillRow layout is shared with claimsfm/ingest/spill.py");

// One file's text cut into pieces that parse on their own (scan_uke_buffer): a piece starts at a line that opens
// a receipt ("RE,"), so no receipt spans two pieces, and a piece after the first gets the facility of the IR
// records before it (ir_lines) as the parse of the whole file has it there. Parsing the pieces in order and
// merging their results gives what parsing the whole buffer gives (csrc/tests/test_uke.cpp).
struct UkePiece {
  size_t begin, end;   // byte range of `data`, whole lines
  int64_t first_line;  // lines before `begin` (its first line is first_line + 1)
};
struct UkeScan {
  std::string_view data;      // after a UTF-8 BOM, before an end-of-file mark 0x1A
  int64_t bytes = 0;          // the file's size
  int64_t eof_line = 0;       // the line of an end-of-file mark in mid-file (an error), else 0
  bool empty = false;         // no data at all (an error)
  bool utf8 = false, cp932 = false;  // FileResult's flags, for the whole file
  std::vector<UkePiece> pieces;      // at least one
  std::vector<size_t> ir_lines;      // offsets of the lines that start "IR," (only with several pieces)
};
UkeScan scan_uke_buffer(std::string_view data, size_t piece_bytes);
// Piece k of a scanned file; the file-level counters (files, bytes) go with piece 0.
FileResult parse_uke_piece(const UkeScan& scan, size_t k, int32_t file_index, const UkeOptions& opt);
// The whole buffer as one piece.
FileResult parse_uke_buffer(std::string_view data, int32_t file_index, const UkeOptions& opt);
// Parse files in parallel (opt.threads). `bytes_done` (may be null) is advanced as files finish.
// With a `spill_path`, events are appended there as SpillRecords (input order, as they would
// be in `events`) and `events` stays empty: memory is bounded by the files being parsed plus the
// key, code and facility tables. With `buckets` instead, each key gets its subject_id as it is first
// merged and each event goes to its bucket file (key_sid and bucket_rows filled). Throws
// std::runtime_error when a spill file cannot be written or a subject_id cannot be computed.
UkeResult parse_uke_files(const std::vector<std::string>& paths, const UkeOptions& opt,
                          std::atomic<int64_t>* bytes_done, const std::string& spill_path = "",
                          const SpillBuckets* buckets = nullptr);

}  // namespace claimsfm
