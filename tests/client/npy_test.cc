#include "client/npy.h"

#include <cstdio>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::client {
namespace {

using ::testing::HasSubstr;

// Random non-zero bytes of the right size for `shape` and `dtype`.
NpyArray RandomArray(v1::DType dtype, std::vector<int64_t> shape, uint64_t seed) {
  NpyArray array;
  array.dtype = dtype;
  array.shape = std::move(shape);
  int64_t n = DTypeBytes(dtype);
  for (int64_t d : array.shape) n *= d;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(1, 255);
  array.data.resize(n);
  for (char& c : array.data) c = static_cast<char>(byte(rng));
  return array;
}

// A .npy file with a hand-written header, as other writers produce them.
std::string NpyWithHeader(int major, const std::string& dict, const std::string& data) {
  std::string header = dict;
  const size_t length_bytes = major == 1 ? 2 : 4;
  while ((6 + 2 + length_bytes + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < length_bytes; ++i)
    out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string Floats(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) out.append(reinterpret_cast<const char*>(&v), 4);
  return out;
}

struct RoundTripCase {
  v1::DType dtype;
  int version;
  std::vector<int64_t> shape;
};

class NpyRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(NpyRoundTrip, ParsesWhatItWrites) {
  const RoundTripCase& c = GetParam();
  NpyArray array = RandomArray(c.dtype, c.shape, 7 + c.version);
  absl::StatusOr<std::string> bytes = SerializeNpy(array, c.version);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // NumPy's layout: magic, version, header length, then data 64-byte aligned.
  EXPECT_EQ(bytes->substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(static_cast<int>((*bytes)[6]), c.version);
  EXPECT_EQ((bytes->size() - array.data.size()) % 64, 0u);
  EXPECT_EQ((*bytes)[bytes->size() - array.data.size() - 1], '\n');

  absl::StatusOr<NpyArray> parsed = ParseNpy(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->dtype, c.dtype);
  EXPECT_EQ(parsed->shape, c.shape);
  EXPECT_EQ(parsed->data, array.data);
}

std::string CaseName(const ::testing::TestParamInfo<RoundTripCase>& info) {
  std::string name = v1::DType_Name(info.param.dtype);
  absl::StrAppend(&name, "_v", info.param.version, "_rank", info.param.shape.size());
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllDTypesBothVersions, NpyRoundTrip,
                         ::testing::Values(RoundTripCase{v1::DTYPE_F32, 1, {2, 3, 5, 7}},
                                           RoundTripCase{v1::DTYPE_F32, 2, {2, 3, 5, 7}},
                                           RoundTripCase{v1::DTYPE_F16, 1, {3, 97, 1, 59}},
                                           RoundTripCase{v1::DTYPE_F16, 2, {3, 97, 1, 59}},
                                           RoundTripCase{v1::DTYPE_BF16, 1, {1, 5, 2, 111}},
                                           RoundTripCase{v1::DTYPE_BF16, 2, {1, 5, 2, 111}},
                                           RoundTripCase{v1::DTYPE_F32, 1, {13}},
                                           RoundTripCase{v1::DTYPE_F16, 1, {}}),
                         CaseName);

TEST(Npy, WritesBf16AsU2AndOneElementTupleWithComma) {
  NpyArray array = RandomArray(v1::DTYPE_BF16, {5}, 1);
  absl::StatusOr<std::string> bytes = SerializeNpy(array);
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(*bytes, HasSubstr("'descr': '<u2'"));
  EXPECT_THAT(*bytes, HasSubstr("'shape': (5,)"));
  EXPECT_THAT(*bytes, HasSubstr("'fortran_order': False"));
}

TEST(Npy, ReadsNumPyWrittenHeader) {
  // Exactly what np.save(np.array([[1, 2, 3], [4, 5, 6]], np.float32)) writes.
  const std::string data = Floats({1, 2, 3, 4, 5, 6});
  std::string file =
      NpyWithHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data);
  absl::StatusOr<NpyArray> parsed = ParseNpy(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->dtype, v1::DTYPE_F32);
  EXPECT_EQ(parsed->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(parsed->data, data);
}

TEST(Npy, ReadsBf16Spellings) {
  for (const std::string descr : {"<u2", "<V2", "|V2", "bfloat16"}) {
    std::string file = NpyWithHeader(
        1, absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (2,), }"),
        std::string("\x80\x3f\x00\x40", 4));
    absl::StatusOr<NpyArray> parsed = ParseNpy(file);
    ASSERT_TRUE(parsed.ok()) << descr << ": " << parsed.status();
    EXPECT_EQ(parsed->dtype, v1::DTYPE_BF16) << descr;
  }
}

TEST(Npy, ReadsVersion3AndKeysInAnyOrder) {
  std::string file = NpyWithHeader(3, "{'shape': (1, 2), \"fortran_order\": False, 'descr': '<f2'}",
                                   std::string("\x00\x3c\x00\x40", 4));
  absl::StatusOr<NpyArray> parsed = ParseNpy(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->dtype, v1::DTYPE_F16);
  EXPECT_EQ(parsed->shape, (std::vector<int64_t>{1, 2}));
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* message;  // a substring the error must hold
};

class NpyBadFile : public ::testing::TestWithParam<BadCase> {};

TEST_P(NpyBadFile, FailsWithClearError) {
  absl::StatusOr<NpyArray> parsed = ParseNpy(GetParam().bytes, "in.npy");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("in.npy"));
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(GetParam().message));
}

const std::string kSixFloats = Floats({1, 2, 3, 4, 5, 6});

INSTANTIATE_TEST_SUITE_P(
    Cases, NpyBadFile,
    ::testing::Values(
        BadCase{"Empty", "", "magic"}, BadCase{"NoMagic", "PK\x03\x04 not numpy at all", "magic"},
        BadCase{"TruncatedLength", std::string("\x93NUMPY\x01\x00\x10", 9), "truncated"},
        BadCase{"HeaderPastEnd", std::string("\x93NUMPY\x01\x00\xff\x00{'descr'", 17),
                "runs past the end"},
        BadCase{"Version9", NpyWithHeader(9, "{}", ""), "format version 9"},
        BadCase{"Float64",
                NpyWithHeader(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                              std::string(24, '\1')),
                "unsupported dtype '<f8'"},
        BadCase{"BigEndian",
                NpyWithHeader(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }",
                              kSixFloats),
                "unsupported dtype '>f4'"},
        BadCase{"FortranOrder",
                NpyWithHeader(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                              kSixFloats),
                "fortran_order"},
        BadCase{"DataShort",
                NpyWithHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }",
                              kSixFloats),
                "needs 32 data bytes but the file holds 24"},
        BadCase{"DataLong",
                NpyWithHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
                              kSixFloats),
                "needs 20 data bytes but the file holds 24"},
        BadCase{"MissingShape",
                NpyWithHeader(1, "{'descr': '<f4', 'fortran_order': False, }", kSixFloats),
                "lacks"},
        BadCase{"NegativeDim",
                NpyWithHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                              kSixFloats),
                "non-negative integer"},
        BadCase{"OverflowingShape",
                NpyWithHeader(1,
                              "{'descr': '<f4', 'fortran_order': False, "
                              "'shape': (4294967296, 4294967296), }",
                              kSixFloats),
                "overflows int64"},
        BadCase{"UnknownKey",
                NpyWithHeader(1,
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), "
                              "'extra': 1}",
                              kSixFloats),
                "unexpected key 'extra'"},
        BadCase{"NotADict", NpyWithHeader(1, "[1, 2]", kSixFloats), "expected '{'"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(Npy, SerializeRefusesWrongDataSize) {
  NpyArray array = RandomArray(v1::DTYPE_F32, {2, 3}, 3);
  array.data.pop_back();
  absl::StatusOr<std::string> bytes = SerializeNpy(array);
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(std::string(bytes.status().message()), HasSubstr("needs 24 bytes"));
}

TEST(Npy, FileRoundTripAndMissingFile) {
  const std::string path = ::testing::TempDir() + "/attnd_npy_test.npy";
  NpyArray array = RandomArray(v1::DTYPE_F16, {2, 7, 3, 5}, 11);
  ASSERT_TRUE(WriteNpy(path, array).ok());
  absl::StatusOr<NpyArray> read = ReadNpy(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->data, array.data);
  EXPECT_EQ(read->shape, array.shape);
  std::remove(path.c_str());

  absl::StatusOr<NpyArray> missing = ReadNpy(path + ".does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("does-not-exist"));
}

TEST(Npy, TensorConversionKeepsEverything) {
  NpyArray array = RandomArray(v1::DTYPE_BF16, {3, 4}, 5);
  v1::Tensor tensor = ToTensor(array);
  EXPECT_EQ(tensor.dtype(), v1::DTYPE_BF16);
  ASSERT_EQ(tensor.shape_size(), 2);
  EXPECT_EQ(tensor.shape(1), 4);
  NpyArray back = FromTensor(tensor);
  EXPECT_EQ(back.data, array.data);
  EXPECT_EQ(back.shape, array.shape);
}

}  // namespace
}  // namespace attnd::client
