// Writes request_fuzzer's seed corpus: small AttendRequests serialized as binary protos, one
// file each, named for what they exercise. Most are valid (several shapes, dtypes, layouts,
// masks, biases, kv_lengths), so mutations start from requests that reach the kernels; a few
// are refused at each stage. Deterministic: the same files every run.
//
//   make_request_seeds OUT_DIR      (scripts/fuzz.sh seeds writes tests/fuzz/corpus/request/)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/problem.h"
#include "wire/request_codec.h"

namespace {

namespace v1 = attnd::v1;

std::mt19937 rng(7);

// Values in [-2, 2) in the dtype's bytes (f16/bf16 from the f32 bit patterns of small values).
std::string RandomData(int64_t elements, v1::DType dtype) {
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::string bytes;
  for (int64_t i = 0; i < elements; ++i) {
    const float x = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    if (dtype == v1::DTYPE_F32) {
      bytes.append(reinterpret_cast<const char*>(&bits), 4);
    } else if (dtype == v1::DTYPE_BF16) {
      const uint16_t h = static_cast<uint16_t>(bits >> 16);
      bytes.append(reinterpret_cast<const char*>(&h), 2);
    } else {  // f16: a value in [-2, 2) built directly: sign, exponent 13..15, random mantissa
      const uint16_t h = static_cast<uint16_t>(((bits >> 31) << 15) | ((13 + rng() % 3) << 10) |
                                               (rng() & 0x3ff));
      bytes.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return bytes;
}

void SetTensor(v1::Tensor* t, v1::DType dtype, std::vector<int64_t> shape) {
  t->set_dtype(dtype);
  int64_t elements = 1;
  for (int64_t d : shape) {
    t->add_shape(d);
    elements *= d;
  }
  t->set_data(RandomData(elements, dtype));
}

struct Shape {
  int64_t b, mq, mk, hq, hkv, d, dv;
};

v1::AttendRequest Make(v1::DType dtype, Shape s, v1::Layout layout = v1::LAYOUT_BMHK) {
  v1::AttendRequest r;
  r.set_layout(layout);
  const bool bhmk = layout == v1::LAYOUT_BHMK;
  auto dims = [&](int64_t seq, int64_t heads, int64_t dim) {
    return bhmk ? std::vector<int64_t>{s.b, heads, seq, dim}
                : std::vector<int64_t>{s.b, seq, heads, dim};
  };
  SetTensor(r.mutable_q(), dtype, dims(s.mq, s.hq, s.d));
  SetTensor(r.mutable_k(), dtype, dims(s.mk, s.hkv, s.d));
  SetTensor(r.mutable_v(), dtype, dims(s.mk, s.hkv, s.dv));
  return r;
}

int written = 0;
bool Write(const std::string& dir, const std::string& name, const v1::AttendRequest& r,
           bool want_valid) {
  const bool valid = attnd::wire::DecodeRequest(r, attnd::kernels::ProblemLimits()).ok();
  if (valid != want_valid) {
    std::fprintf(stderr, "seed %s: expected %s\n", name.c_str(), want_valid ? "valid" : "invalid");
    return false;
  }
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out << r.SerializeAsString();
  ++written;
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;

  ok &= Write(dir, "f32_bmhk_plain", Make(v1::DTYPE_F32, {1, 3, 5, 2, 2, 4, 4}), true);
  {
    v1::AttendRequest r = Make(v1::DTYPE_F16, {2, 4, 6, 4, 2, 8, 8}, v1::LAYOUT_BHMK);
    r.set_causal(v1::CAUSAL_TOP_LEFT);
    r.add_kv_lengths(6);
    r.add_kv_lengths(3);
    ok &= Write(dir, "f16_bhmk_gqa_causal_top_left_kv_lengths", r, true);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_BF16, {1, 5, 7, 4, 1, 8, 6});
    r.set_causal(v1::CAUSAL_BOTTOM_RIGHT);
    r.mutable_window()->set_left(2);
    r.mutable_window()->set_right(-1);
    SetTensor(r.mutable_bias(), v1::DTYPE_F32, {5, 7});  // [Mq, Mk]
    ok &= Write(dir, "bf16_mqa_bottom_right_window_bias2d", r, true);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_F32, {2, 3, 4, 2, 2, 3, 5});
    SetTensor(r.mutable_bias(), v1::DTYPE_F16, {2, 1, 3, 4});  // [B, 1, Mq, Mk]
    r.set_scale(0.25);
    r.set_return_lse(true);
    r.set_variant(v1::VARIANT_CPU_CHUNKED);
    r.set_q_chunk(2);
    r.set_kv_chunk(3);
    r.set_priority(1);
    r.set_request_id("seed-1");
    ok &= Write(dir, "f32_bias4d_f16_lse_scale_chunks", r, true);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_F16, {1, 1, 9, 2, 2, 16, 16});
    r.mutable_window()->set_left(3);
    r.mutable_window()->set_right(3);
    SetTensor(r.mutable_bias(), v1::DTYPE_BF16, {1, 2, 1, 9});  // [1, Hq, 1, Mk]
    ok &= Write(dir, "f16_decode_one_query_window_bias_per_head", r, true);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_BF16, {3, 2, 2, 1, 1, 1, 1}, v1::LAYOUT_BHMK);
    r.set_causal(v1::CAUSAL_BOTTOM_RIGHT);
    r.add_kv_lengths(0);
    r.add_kv_lengths(1);
    r.add_kv_lengths(2);
    r.set_return_lse(true);
    ok &= Write(dir, "bf16_bhmk_empty_rows_kv_length_zero", r, true);
  }

  // Refused at each stage.
  {
    v1::AttendRequest r = Make(v1::DTYPE_F32, {1, 2, 2, 1, 1, 2, 2});
    r.mutable_q()->mutable_data()->pop_back();
    ok &= Write(dir, "bad_data_length", r, false);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_F32, {1, 2, 2, 3, 2, 2, 2});
    ok &= Write(dir, "bad_heads_not_multiple", r, false);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_F16, {1, 2, 3, 1, 1, 2, 2});
    SetTensor(r.mutable_bias(), v1::DTYPE_F32, {2, 2});  // Mk = 3, not 2
    ok &= Write(dir, "bad_bias_broadcast", r, false);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_F32, {2, 2, 3, 1, 1, 2, 2});
    r.add_kv_lengths(4);
    r.add_kv_lengths(1);
    ok &= Write(dir, "bad_kv_length_over_mk", r, false);
  }
  {
    v1::AttendRequest r = Make(v1::DTYPE_F32, {1, 1, 1, 1, 1, 1, 1});
    r.mutable_q()->set_shape(1, int64_t{1} << 40);
    r.mutable_q()->set_shape(3, int64_t{1} << 40);
    ok &= Write(dir, "bad_shape_overflow", r, false);
  }
  std::printf("%d seeds in %s\n", written, dir.c_str());
  return ok ? 0 : 1;
}
