// Structure-aware mutation of an AttendRequest for request_fuzzer: changes one field the way a
// confused or hostile client would (a dim, a dtype, the mask, kv_lengths, the bias's rank), and
// often resizes the tensors' data to match their shapes, so mutations get past the byte-length
// check into the deeper validation instead of dying there.
#ifndef ATTND_TESTS_FUZZ_REQUEST_MUTATOR_H_
#define ATTND_TESTS_FUZZ_REQUEST_MUTATOR_H_

#include <cstdint>
#include <random>

#include "attnd/v1/attention.pb.h"

namespace attnd::fuzz {

// Applies one to three random field mutations to `request`.
void MutateRequest(std::mt19937_64& rng, v1::AttendRequest* request);

}  // namespace attnd::fuzz

#endif  // ATTND_TESTS_FUZZ_REQUEST_MUTATOR_H_
