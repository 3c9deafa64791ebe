#include "tests/fuzz/request_mutator.h"

#include <limits>
#include <string>

namespace attnd::fuzz {
namespace {

using Rng = std::mt19937_64;

int64_t Pick(Rng& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// Mostly small dims (what reaches the kernels), sometimes the edges of every check.
int64_t InterestingDim(Rng& rng) {
  static const int64_t kEdges[] = {0,
                                   -1,
                                   1,
                                   2,
                                   1023,
                                   1024,
                                   1025,
                                   int64_t{1} << 20,
                                   (int64_t{1} << 20) + 1,
                                   int64_t{1} << 31,
                                   int64_t{1} << 32,
                                   std::numeric_limits<int64_t>::max(),
                                   std::numeric_limits<int64_t>::min()};
  if (Pick(rng, 0, 3) > 0) return Pick(rng, 1, 9);
  return kEdges[Pick(rng, 0, sizeof(kEdges) / sizeof(kEdges[0]) - 1)];
}

v1::Tensor* PickTensor(Rng& rng, v1::AttendRequest* r) {
  switch (Pick(rng, 0, 3)) {
    case 0:
      return r->mutable_q();
    case 1:
      return r->mutable_k();
    case 2:
      return r->mutable_v();
    default:
      return r->mutable_bias();
  }
}

int DTypeSize(v1::DType dtype) { return dtype == v1::DTYPE_F32 ? 4 : 2; }

// Resizes data to prod(shape) * dtype size when that is small; new bytes are random.
void FitData(Rng& rng, v1::Tensor* t) {
  int64_t elements = 1;
  for (int64_t d : t->shape()) {
    if (d <= 0 || d > 4096 || __builtin_mul_overflow(elements, d, &elements)) return;
  }
  const int64_t bytes = elements * DTypeSize(t->dtype());
  if (bytes > (1 << 16)) return;
  std::string* data = t->mutable_data();
  const size_t old = data->size();
  data->resize(static_cast<size_t>(bytes));
  for (size_t i = old; i < data->size(); ++i) (*data)[i] = static_cast<char>(Pick(rng, 0, 255));
}

void MutateOnce(Rng& rng, v1::AttendRequest* r) {
  switch (Pick(rng, 0, 13)) {
    case 0: {  // one dim
      v1::Tensor* t = PickTensor(rng, r);
      if (t->shape_size() == 0) {
        t->add_shape(InterestingDim(rng));
      } else {
        t->set_shape(static_cast<int>(Pick(rng, 0, t->shape_size() - 1)), InterestingDim(rng));
      }
      break;
    }
    case 1: {  // the rank
      v1::Tensor* t = PickTensor(rng, r);
      if (t->shape_size() > 0 && Pick(rng, 0, 1) == 0) {
        t->mutable_shape()->RemoveLast();
      } else {
        t->add_shape(Pick(rng, 1, 3));
      }
      break;
    }
    case 2:  // a dtype, sometimes one no enum names
      PickTensor(rng, r)->set_dtype(static_cast<v1::DType>(Pick(rng, 0, 4)));
      break;
    case 3:
      r->set_layout(static_cast<v1::Layout>(Pick(rng, 0, 3)));
      break;
    case 4:
      r->set_causal(static_cast<v1::Causal>(Pick(rng, 0, 4)));
      break;
    case 5:
      if (Pick(rng, 0, 3) == 0) {
        r->clear_window();
      } else {
        r->mutable_window()->set_left(Pick(rng, -3, 10));
        r->mutable_window()->set_right(Pick(rng, 0, 5) == 0 ? InterestingDim(rng)
                                                            : Pick(rng, -3, 10));
      }
      break;
    case 6: {  // kv_lengths: usually one per batch element, values around Mk
      r->clear_kv_lengths();
      const int64_t n = r->q().shape_size() > 0 && Pick(rng, 0, 3) > 0
                            ? std::min<int64_t>(r->q().shape(0), 16)
                            : Pick(rng, 0, 4);
      for (int64_t i = 0; i < n; ++i) r->add_kv_lengths(Pick(rng, -1, 10));
      break;
    }
    case 7: {
      static const double kScales[] = {0.0,
                                       -0.0,
                                       1.0,
                                       -2.5,
                                       1e-300,
                                       1e300,
                                       std::numeric_limits<double>::infinity(),
                                       std::numeric_limits<double>::quiet_NaN(),
                                       std::numeric_limits<double>::denorm_min()};
      if (Pick(rng, 0, 4) == 0) {
        r->clear_scale();
      } else {
        r->set_scale(kScales[Pick(rng, 0, sizeof(kScales) / sizeof(kScales[0]) - 1)]);
      }
      break;
    }
    case 8:  // the bias: present or not, a rank-2 to rank-4 shape of 1s and full dims
      if (r->has_bias() && Pick(rng, 0, 2) == 0) {
        r->clear_bias();
      } else {
        v1::Tensor* b = r->mutable_bias();
        b->clear_shape();
        const int rank = static_cast<int>(Pick(rng, 1, 5));
        const v1::Tensor& q = r->q();
        const v1::Tensor& k = r->k();
        const bool bhmk = r->layout() == v1::LAYOUT_BHMK;
        // [B, Hq, Mq, Mk] from the tensors when they have rank 4.
        int64_t full[4] = {1, 1, 1, 1};
        if (q.shape_size() == 4 && k.shape_size() == 4) {
          full[0] = q.shape(0);
          full[1] = q.shape(bhmk ? 1 : 2);
          full[2] = q.shape(bhmk ? 2 : 1);
          full[3] = k.shape(bhmk ? 2 : 1);
        }
        for (int i = 4 - rank; i < 4; ++i) {
          b->add_shape(i < 0 ? 1 : (Pick(rng, 0, 2) == 0 ? 1 : full[i]));
        }
        b->set_dtype(static_cast<v1::DType>(Pick(rng, 1, 3)));
        FitData(rng, b);
      }
      break;
    case 9:
      r->set_return_lse(!r->return_lse());
      break;
    case 10:
      r->set_variant(static_cast<v1::Variant>(Pick(rng, 0, 9)));
      break;
    case 11:
      r->set_q_chunk(Pick(rng, -2, 40));
      r->set_kv_chunk(Pick(rng, 0, 3) == 0 ? InterestingDim(rng) : Pick(rng, -2, 40));
      break;
    case 12: {  // a few bytes of data: off by one, or cut
      v1::Tensor* t = PickTensor(rng, r);
      std::string* data = t->mutable_data();
      if (Pick(rng, 0, 1) == 0) {
        data->push_back('\0');
      } else if (!data->empty()) {
        data->resize(static_cast<size_t>(Pick(rng, 0, static_cast<int64_t>(data->size()) - 1)));
      }
      break;
    }
    default:
      r->set_priority(static_cast<int32_t>(InterestingDim(rng)));
      break;
  }
}

}  // namespace

void MutateRequest(Rng& rng, v1::AttendRequest* request) {
  const int64_t n = Pick(rng, 1, 3);
  for (int64_t i = 0; i < n; ++i) MutateOnce(rng, request);
  // Usually make the byte lengths agree with the (new) shapes, so the checks after the length
  // check see the mutation.
  if (Pick(rng, 0, 3) > 0) {
    FitData(rng, request->mutable_q());
    FitData(rng, request->mutable_k());
    FitData(rng, request->mutable_v());
    if (request->has_bias()) FitData(rng, request->mutable_bias());
  }
}

}  // namespace attnd::fuzz
