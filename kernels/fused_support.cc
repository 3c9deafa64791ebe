#include "kernels/fused_support.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/problem.h"

namespace attnd::kernels {

std::string FusedRefusal(const AttentionProblem& p) {
  if (p.head_dim % 8 != 0 || p.v_head_dim % 8 != 0) {
    return absl::StrCat("fused needs head dims that are multiples of 8 (D ", p.head_dim, ", Dv ",
                        p.v_head_dim, ")");
  }
  if (p.dtype == DType::kF32 && std::max(p.head_dim, p.v_head_dim) > kFusedF32MaxHeadDim) {
    return absl::StrCat("fused takes f32 head dims up to ", kFusedF32MaxHeadDim, " (D ",
                        p.head_dim, ", Dv ", p.v_head_dim, ")");
  }
  if (std::max(p.head_dim, p.v_head_dim) > kFusedMaxHeadDim) {
    return absl::StrCat("fused takes head dims up to ", kFusedMaxHeadDim, " (D ", p.head_dim,
                        ", Dv ", p.v_head_dim, ")");
  }
  constexpr int64_t kMaxLen = (int64_t{1} << 31) - 1;  // key and row positions are 32-bit
  if (p.q_len > kMaxLen || p.kv_len > kMaxLen) {
    return "fused takes sequences of at most 2^31 - 1 rows";
  }
  return "";
}

}  // namespace attnd::kernels
