// Random attention requests from shape flags, for attnctl attend/load and for tests.
//
// Values are N(0, 1) from a seeded 64-bit Mersenne Twister, rounded to the request's dtype; an
// element that would be zero after rounding is drawn again, so no tensor holds a 0 (a zero
// input hides indexing bugs). Same spec, same seed: the same bytes on every machine.
#ifndef ATTND_CLIENT_TENSOR_GEN_H_
#define ATTND_CLIENT_TENSOR_GEN_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attnd/v1/attention.pb.h"

namespace attnd::client {

struct RequestSpec {
  int64_t batch = 1;       // B
  int64_t q_len = 1;       // Mq
  int64_t kv_len = 1;      // Mk
  int64_t heads = 1;       // Hq
  int64_t kv_heads = 0;    // Hkv; 0 = heads
  int64_t head_dim = 64;   // D
  int64_t v_head_dim = 0;  // Dv; 0 = head_dim
  v1::DType dtype = v1::DTYPE_F32;
  v1::Layout layout = v1::LAYOUT_BMHK;
  v1::Causal causal = v1::CAUSAL_NONE;
  bool has_window = false;
  int64_t window_left = -1;
  int64_t window_right = -1;
  bool bias = false;
  // The bias tensor's shape; empty = [B, Hq, Mq, Mk]. Any shape broadcastable to it.
  std::vector<int64_t> bias_shape;
  v1::DType bias_dtype = v1::DTYPE_UNSPECIFIED;  // unspecified = dtype
  // B values in [0, Mk] (key padding), or empty for none. `random_kv_lengths` draws them in
  // [1, Mk] from the seed instead.
  std::vector<int64_t> kv_lengths;
  bool random_kv_lengths = false;
  bool return_lse = false;
  std::optional<double> scale;
  v1::Variant variant = v1::VARIANT_AUTO;
  int64_t q_chunk = 0;
  int64_t kv_chunk = 0;
  int32_t priority = 0;
  uint64_t seed = 0;
  std::string request_id;
};

// Tensor shapes of q, k and v in the spec's layout.
std::vector<int64_t> QShape(const RequestSpec& spec);  // [B, Mq, Hq, D] or [B, Hq, Mq, D]
std::vector<int64_t> KShape(const RequestSpec& spec);  // [B, Mk, Hkv, D] or BHMK
std::vector<int64_t> VShape(const RequestSpec& spec);  // [B, Mk, Hkv, Dv] or BHMK

// What generating needs: positive dims, element counts that fit int64, a bias shape of
// positive dims.
absl::Status CheckGeneratable(const RequestSpec& spec);

// CheckGeneratable, plus what the server would refuse: Hq % Hkv, kv_lengths count and range,
// bias rank 2..4 broadcastable to [B, Hq, Mq, Mk]. For callers that want to refuse a bad
// problem locally; messages name the attnctl flags.
absl::Status ValidateSpec(const RequestSpec& spec);

// A request with fresh random q, k, v (and bias) as the spec says. Checks only
// CheckGeneratable, so it also builds requests the server will refuse (Hq % Hkv != 0, a bias
// that does not broadcast): attnctl sends those as asked and shows the server's own
// INVALID_ARGUMENT.
absl::StatusOr<v1::AttendRequest> GenerateRequest(const RequestSpec& spec);

// Fills `tensor` with `shape` random N(0,1) non-zero values of `dtype` from `rng`.
void FillRandomTensor(v1::DType dtype, const std::vector<int64_t>& shape, std::mt19937_64* rng,
                      v1::Tensor* tensor);

// Sets the request's options (layout, causal, window, kv_lengths, lse, scale, variant, chunks,
// priority, id) from the spec, leaving its tensors alone: for requests built from .npy files.
void ApplyOptions(const RequestSpec& spec, v1::AttendRequest* request);

}  // namespace attnd::client

#endif  // ATTND_CLIENT_TENSOR_GEN_H_
