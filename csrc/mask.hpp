// MLM masking of a flat batch of sequences (BERT recipe, design.md §3.3).
//
// Each code token (id >= kNumSpecial; [PAD] [CLS] [SEP] [MASK] [UNK] are never targets) is chosen
// with probability mask_prob; a chosen token becomes [MASK] (80%), a random code token (10%) or
// stays (10%), and its label is the original id (-100 elsewhere). If a batch holding code tokens
// would get no target at all, its token with the smallest draw is chosen, so the loss is defined.
// The draws are a counter-based hash of (seed, epoch, step, sequence j, position p), so a batch is
// a pure function of those numbers and of its sequences, in any layout (varlen or padded).
// claimsfm/data/reference.py computes the same hash with numpy (the test oracle).
#pragma once
#include <cstdint>

namespace claimsfm {

// The per-batch key all draws derive from.
uint64_t mlm_batch_key(uint64_t seed, uint64_t epoch, uint64_t step);

// input_ids (T,), cu_seqlens (B+1,) prefix sums; writes out_ids (T,) and labels (T,).
// Returns the number of targets.
int64_t mlm_mask(const int32_t* input_ids, const int64_t* cu_seqlens, int64_t n_seqs, uint64_t key,
                 int32_t vocab_size, double mask_prob, int32_t* out_ids, int64_t* labels);

}  // namespace claimsfm
