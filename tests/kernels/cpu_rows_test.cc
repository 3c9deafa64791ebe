// The cpu_chunked row kernels, both builds (baseline and, where the CPU has it, AVX2+FMA): the
// fast exp's accuracy and the online-softmax step's bookkeeping.
#include "kernels/cpu_rows.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dtype_convert.h"

namespace attnd::kernels {
namespace {

std::vector<const CpuRowKernels*> Builds() {
  std::vector<const CpuRowKernels*> builds = {&CpuRowsBaseline()};
  if (CpuRowsAvx2() != nullptr) builds.push_back(CpuRowsAvx2());
  return builds;
}

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(CpuRowsTest, ExpRelativeErrorBelow2e7) {
  // A dense sweep of the range softmax uses (x <= 0), plus some positive values; lengths not a
  // multiple of the vector width reach the scalar tail too.
  std::vector<float> xs;
  for (double x = -87.0; x <= 10.0; x += 0.000731) xs.push_back(static_cast<float>(x));
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-20.0f, 0.0f);
  for (int i = 0; i < 100001; ++i) xs.push_back(uniform(rng));
  for (const CpuRowKernels* rows : Builds()) {
    std::vector<float> e = xs;
    rows->exp_inplace(e.data(), static_cast<int64_t>(e.size()));
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double want = std::exp(static_cast<double>(xs[i]));
      worst = std::fmax(worst, std::fabs(e[i] - want) / want);
    }
    EXPECT_LT(worst, 2e-7) << rows->name;
  }
}

TEST(CpuRowsTest, ExpEdges) {
  for (const CpuRowKernels* rows : Builds()) {
    // 20 values: two full AVX2 blocks of 8 and a tail of 4.
    std::vector<float> x = {-kInf, -1000.0f, -104.0f, -87.4f, 0.0f,  -0.0f, 1.0f,
                            88.0f, -kInf,    -kInf,   -kInf,  -kInf, -kInf, -kInf,
                            -kInf, -kInf,    -kInf,   0.0f,   -1.0f, -kInf};
    std::vector<float> e = x;
    rows->exp_inplace(e.data(), static_cast<int64_t>(e.size()));
    EXPECT_EQ(e[0], 0.0f) << rows->name;
    EXPECT_EQ(e[1], 0.0f);
    EXPECT_EQ(e[2], 0.0f);
    EXPECT_EQ(e[3], 0.0f);  // below the normal range: flushed to 0
    EXPECT_EQ(e[4], 1.0f);
    EXPECT_EQ(e[5], 1.0f);
    EXPECT_NEAR(e[6], std::exp(1.0), 2e-7 * std::exp(1.0));
    EXPECT_NEAR(e[7], std::exp(88.0), 2e-7 * std::exp(88.0));
    for (int i = 8; i < 17; ++i) EXPECT_EQ(e[i], 0.0f) << i;
    EXPECT_EQ(e[17], 1.0f);
    EXPECT_EQ(e[19], 0.0f);
  }
}

// NaN in, NaN out, in the vector blocks and the scalar tail alike (and, under UBSan, without
// converting NaN to an integer: tests/fuzz found that).
TEST(CpuRowsTest, ExpOfNanIsNan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const CpuRowKernels* rows : Builds()) {
    std::vector<float> e(19, nan);  // two AVX2 blocks and a tail of 3
    rows->exp_inplace(e.data(), static_cast<int64_t>(e.size()));
    for (size_t i = 0; i < e.size(); ++i) EXPECT_TRUE(std::isnan(e[i])) << rows->name << " " << i;
  }
}

// Two tiles of one row, by hand: tile 1 = (1, 2, [masked 9]), tile 2 = (3, [masked 7]) with a
// bias of 0.5 on the visible key of tile 2.
TEST(CpuRowsTest, OnlineSoftmaxStep) {
  for (const CpuRowKernels* rows : Builds()) {
    float m = -kInf;
    float l = 0.0f;
    float acc[3] = {10.0f, 20.0f, 30.0f};  // stands for P·V so far; rescaled by exp(m_old-m_new)
    float tile1[3] = {1.0f, 2.0f, 9.0f};
    SoftmaxRowArgs a;
    a.scores = tile1;
    a.n = 3;
    a.lo = 0;
    a.hi = 2;
    a.row_max = &m;
    a.row_sum = &l;
    a.acc = acc;
    a.dv = 3;
    rows->online_softmax_row(a);
    EXPECT_EQ(m, 2.0f) << rows->name;
    EXPECT_NEAR(tile1[0], std::exp(-1.0), 1e-7);
    EXPECT_EQ(tile1[1], 1.0f);
    EXPECT_EQ(tile1[2], 0.0f);  // masked: P = 0
    EXPECT_NEAR(l, 1.0 + std::exp(-1.0), 1e-6);
    EXPECT_EQ(acc[0], 0.0f);  // first tile: acc·exp(-inf) = 0

    acc[0] = 1.0f;
    acc[1] = 2.0f;
    acc[2] = 4.0f;
    float tile2[2] = {7.0f, 3.0f};
    a.scores = tile2;
    a.n = 2;
    a.lo = 1;
    a.hi = 2;
    a.bias_scalar = 0.5f;  // score 3.5 becomes the new max
    rows->online_softmax_row(a);
    const double alpha = std::exp(2.0 - 3.5);
    EXPECT_EQ(m, 3.5f);
    EXPECT_EQ(tile2[0], 0.0f);
    EXPECT_EQ(tile2[1], 1.0f);
    EXPECT_NEAR(l, (1.0 + std::exp(-1.0)) * alpha + 1.0, 1e-6);
    EXPECT_NEAR(acc[0], 1.0 * alpha, 1e-7);
    EXPECT_NEAR(acc[2], 4.0 * alpha, 1e-6);
  }
}

TEST(CpuRowsTest, AllMinusInfinityKeepsTheRowEmpty) {
  for (const CpuRowKernels* rows : Builds()) {
    float m = -kInf;
    float l = 0.0f;
    float acc[1] = {0.0f};
    std::vector<float> scores(37, 1.0f);
    std::vector<float> bias(37, -kInf);
    SoftmaxRowArgs a;
    a.scores = scores.data();
    a.n = 37;
    a.lo = 3;
    a.hi = 37;
    a.bias = bias.data();
    a.row_max = &m;
    a.row_sum = &l;
    a.acc = acc;
    a.dv = 1;
    rows->online_softmax_row(a);
    EXPECT_EQ(m, -kInf) << rows->name;
    EXPECT_EQ(l, 0.0f);
    for (float p : scores) EXPECT_EQ(p, 0.0f);
  }
}

// Every f16 pattern, from an unaligned buffer of odd length, converts exactly as HalfToFloat.
TEST(CpuRowsTest, HalfToFloatIsExact) {
  std::vector<unsigned char> bytes(1 + 65537 * 2);
  for (uint32_t i = 0; i < 65537; ++i) {
    const uint16_t h = static_cast<uint16_t>(i);
    std::memcpy(bytes.data() + 1 + i * 2, &h, 2);
  }
  for (const CpuRowKernels* rows : Builds()) {
    std::vector<float> out(65537);
    rows->half_to_float(bytes.data() + 1, 65537, out.data());
    for (uint32_t i = 0; i < 65537; ++i) {
      const float want = HalfToFloat(static_cast<uint16_t>(i));
      ASSERT_EQ(std::memcmp(&out[i], &want, 4), 0) << rows->name << " " << std::hex << i;
    }
  }
}

// The two builds give the same row up to rounding on long random rows.
TEST(CpuRowsTest, BuildsAgree) {
  if (CpuRowsAvx2() == nullptr) GTEST_SKIP() << "no AVX2+FMA on this CPU";
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> base(1001), bias(1001);
  for (float& x : base) x = normal(rng);
  for (float& x : bias) x = normal(rng);
  float results[2][1001];
  float sums[2];
  const CpuRowKernels* builds[2] = {&CpuRowsBaseline(), CpuRowsAvx2()};
  for (int b = 0; b < 2; ++b) {
    std::copy(base.begin(), base.end(), results[b]);
    float m = 0.5f;
    float l = 2.0f;
    float acc[2] = {1.0f, 1.0f};
    SoftmaxRowArgs a;
    a.scores = results[b];
    a.n = 1001;
    a.lo = 17;
    a.hi = 990;
    a.bias = bias.data();
    a.row_max = &m;
    a.row_sum = &l;
    a.acc = acc;
    a.dv = 2;
    builds[b]->online_softmax_row(a);
    sums[b] = l;
  }
  EXPECT_NEAR(sums[0], sums[1], 1e-5 * sums[0]);
  for (int i = 0; i < 1001; ++i) EXPECT_NEAR(results[0][i], results[1][i], 3e-7) << i;
}

}  // namespace
}  // namespace attnd::kernels
