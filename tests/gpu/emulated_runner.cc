#include "tests/gpu/emulated_runner.h"

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/elem_io.h"
#include "kernels/cuda/row_ops.h"
#include "kernels/cuda/steps.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::testing {
namespace {

const unsigned char* Matrix(const GemmOperand& o, int64_t z, int64_t q_heads) {
  return static_cast<const unsigned char*>(o.base) + o.Offset(z, q_heads) * ElemBytes(o.dtype);
}

// Runs row(r) for every score row with the step's P (or output) dtype as a template argument.
template <template <DType> class RowFn, typename Step>
void ForEachRow(DType dtype, const Step& step, int64_t total_rows) {
  for (int64_t r = 0; r < total_rows; ++r) {
    switch (dtype) {
      case DType::kF32:
        RowFn<DType::kF32>::Run(step, r);
        break;
      case DType::kF16:
        RowFn<DType::kF16>::Run(step, r);
        break;
      case DType::kBF16:
        RowFn<DType::kBF16>::Run(step, r);
        break;
    }
  }
}

template <int kItems>
struct Cached {
  template <DType kP>
  struct SoftmaxFn {
    static void Run(const SoftmaxStep& s, int64_t r) {
      SoftmaxRowWith<kItems, kP>(SerialGroup(), s, r);
    }
  };
  template <DType kP>
  struct MergeFn {
    static void Run(const MergeStep& s, int64_t r) {
      MergeRowWith<kItems, kP>(SerialGroup(), s, r);
    }
  };
};
template <DType kOut>
struct FinalizeFn {
  static void Run(const FinalizeStep& s, int64_t r) { FinalizeRow<kOut>(SerialGroup(), s, r); }
};

}  // namespace

absl::Status EmulatedRunner::Gemm(const GemmStep& s) {
  ++gemms_;
  const int64_t z_count = s.batch * s.q_heads;
  for (int64_t z = 0; z < z_count; ++z) {
    const unsigned char* a = Matrix(s.a, z, s.q_heads);
    const unsigned char* b = Matrix(s.b, z, s.q_heads);
    unsigned char* c = const_cast<unsigned char*>(Matrix(s.c, z, s.q_heads));
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) {
        double sum = 0.0;
        for (int64_t x = 0; x < s.k; ++x) {
          const double av = LoadElem(a, s.a.dtype, i * s.a.ld + x);
          const double bv = s.b_transposed ? LoadElem(b, s.b.dtype, j * s.b.ld + x)
                                           : LoadElem(b, s.b.dtype, x * s.b.ld + j);
          sum += av * bv;
        }
        double value = s.alpha * sum;
        if (s.beta != 0.0f) value += s.beta * LoadElem(c, s.c.dtype, i * s.c.ld + j);
        StoreElem(c, s.c.dtype, i * s.c.ld + j, static_cast<float>(value));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status EmulatedRunner::Softmax(const SoftmaxStep& step) {
  ++row_steps_;
  if (streamed_ || step.geometry.cols > kCachedCols) {
    ForEachRow<Cached<0>::SoftmaxFn>(step.p_dtype, step, step.geometry.total_rows());
  } else {
    ForEachRow<Cached<kCachedCols>::SoftmaxFn>(step.p_dtype, step, step.geometry.total_rows());
  }
  return absl::OkStatus();
}

absl::Status EmulatedRunner::Merge(const MergeStep& step) {
  ++row_steps_;
  if (streamed_ || step.geometry.cols > kCachedCols) {
    ForEachRow<Cached<0>::MergeFn>(step.p_dtype, step, step.geometry.total_rows());
  } else {
    ForEachRow<Cached<kCachedCols>::MergeFn>(step.p_dtype, step, step.geometry.total_rows());
  }
  return absl::OkStatus();
}

absl::Status EmulatedRunner::Finalize(const FinalizeStep& step) {
  ++row_steps_;
  ForEachRow<FinalizeFn>(step.out_dtype, step, step.geometry.total_rows());
  return absl::OkStatus();
}

}  // namespace attnd::kernels::cuda::testing
