// attnctl's request building: random from flags, or from .npy files whose shapes win.
#include "client/attnctl/build_request.h"

#include <cstdio>

#include "client/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::attnctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int64_t> Shape(const v1::Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

ProblemFlags ShapeFlags() {
  ProblemFlags f;
  f.batch = 2;
  f.q_len = 5;
  f.kv_len = 6;
  f.heads = 4;
  f.kv_heads = 2;
  f.head_dim = 3;
  f.dtype = v1::DTYPE_F16;
  f.seed = 5;
  return f;
}

// Writes q, k, v (and bias) of a generated request as .npy files; returns their paths.
struct Files {
  std::string q, k, v, bias;
  ~Files() {
    for (const std::string* p : {&q, &k, &v, &bias}) std::remove(p->c_str());
  }
};

void WriteFiles(const v1::AttendRequest& r, Files* files) {
  const std::string dir = ::testing::TempDir() + "/attnd_build_request_";
  files->q = dir + "q.npy";
  files->k = dir + "k.npy";
  files->v = dir + "v.npy";
  files->bias = dir + "bias.npy";
  ASSERT_TRUE(client::WriteNpy(files->q, client::FromTensor(r.q())).ok());
  ASSERT_TRUE(client::WriteNpy(files->k, client::FromTensor(r.k())).ok());
  ASSERT_TRUE(client::WriteNpy(files->v, client::FromTensor(r.v())).ok());
  ASSERT_TRUE(client::WriteNpy(files->bias, client::FromTensor(r.bias())).ok());
}

TEST(BuildRequest, RandomFromFlags) {
  ProblemFlags f = ShapeFlags();
  f.bias = true;
  f.lse = true;
  f.causal = v1::CAUSAL_TOP_LEFT;
  absl::StatusOr<BuiltRequest> built = BuildRequest(f);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(Shape(built->request.q()), ElementsAre(2, 5, 4, 3));
  EXPECT_THAT(Shape(built->request.bias()), ElementsAre(2, 4, 5, 6));
  EXPECT_TRUE(built->request.return_lse());
  EXPECT_EQ(built->request.causal(), v1::CAUSAL_TOP_LEFT);
  EXPECT_EQ(DescribeSpec(built->spec),
            "B=2 Mq=5 Mk=6 Hq=4 Hkv=2 D=3 Dv=3 f16 bmhk causal=top-left bias=yes lse=yes");
}

TEST(BuildRequest, FromFilesTakesTheFilesShapes) {
  ProblemFlags f = ShapeFlags();
  f.bias = true;
  f.bias_shape = {4, 5, 1};
  absl::StatusOr<BuiltRequest> source = BuildRequest(f);
  ASSERT_TRUE(source.ok()) << source.status();
  Files files;
  WriteFiles(source->request, &files);

  ProblemFlags from_files;
  from_files.q_file = files.q;
  from_files.k_file = files.k;
  from_files.v_file = files.v;
  from_files.bias_file = files.bias;
  from_files.lse = true;
  absl::StatusOr<BuiltRequest> built = BuildRequest(from_files);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->spec.batch, 2);
  EXPECT_EQ(built->spec.q_len, 5);
  EXPECT_EQ(built->spec.kv_len, 6);
  EXPECT_EQ(built->spec.heads, 4);
  EXPECT_EQ(built->spec.kv_heads, 2);
  EXPECT_EQ(built->spec.dtype, v1::DTYPE_F16);
  EXPECT_EQ(built->request.q().data(), source->request.q().data());
  EXPECT_EQ(built->request.v().data(), source->request.v().data());
  EXPECT_EQ(built->request.bias().data(), source->request.bias().data());
  EXPECT_THAT(Shape(built->request.bias()), ElementsAre(4, 5, 1));
  EXPECT_TRUE(built->request.return_lse());

  // A shape flag that disagrees with the files is refused, naming both.
  from_files.heads = 8;
  absl::StatusOr<BuiltRequest> mismatch = BuildRequest(from_files);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_THAT(std::string(mismatch.status().message()), HasSubstr("--heads = 8 but"));
  from_files.heads.reset();
  from_files.dtype_given = true;
  from_files.dtype = v1::DTYPE_F32;
  EXPECT_THAT(std::string(BuildRequest(from_files).status().message()),
              HasSubstr("--dtype = f32 but"));

  // Files of different dtypes, and a rank other than 4.
  from_files.dtype_given = false;
  from_files.k_file = files.bias;
  EXPECT_THAT(std::string(BuildRequest(from_files).status().message()), HasSubstr("rank 3"));
}

TEST(BuildRequest, MissingFileIsNotFound) {
  ProblemFlags f;
  f.q_file = f.k_file = f.v_file = ::testing::TempDir() + "/no-such-file.npy";
  EXPECT_EQ(BuildRequest(f).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace attnd::attnctl
