// NumPy .npy files for attnd's three dtypes: read and write, C order, little-endian only.
//
// Accepted on read (format versions 1.0, 2.0 and 3.0):
//   f32   '<f4'
//   f16   '<f2'
//   bf16  '<u2', '<V2' / '|V2', or 'bfloat16'
// bf16 has no NumPy character code. `np.save` of an ml_dtypes.bfloat16 array writes '<V2' (raw
// 2-byte voids), and tools that write the header themselves use str(dtype) = 'bfloat16'; all
// three spellings read as bf16. On write we choose '<u2': any NumPy loads it without
// ml_dtypes, and `np.load(f).view(ml_dtypes.bfloat16)` recovers the values exactly. The
// consequence: a genuine uint16 array reads as bf16 bits (attnd has no integer tensors).
//
// Refused with INVALID_ARGUMENT naming the file and the problem: big-endian or other dtypes
// (e.g. '<f8': convert with .astype(np.float32) first), fortran_order True, a malformed header,
// or data shorter or longer than the shape says.
#ifndef ATTND_CLIENT_NPY_H_
#define ATTND_CLIENT_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "attnd/v1/attention.pb.h"

namespace attnd::client {

struct NpyArray {
  v1::DType dtype = v1::DTYPE_F32;
  std::vector<int64_t> shape;  // empty for a scalar
  std::string data;            // C order, little-endian, prod(shape) * element size bytes
};

// Bytes per element of an attnd dtype (0 for DTYPE_UNSPECIFIED).
int64_t DTypeBytes(v1::DType dtype);

// Parses the bytes of a whole .npy file; `name` only labels error messages.
absl::StatusOr<NpyArray> ParseNpy(absl::string_view bytes, absl::string_view name = "npy");
// Serialises to the bytes of a .npy file: format 1.0, or 2.0 when the header needs it.
// INVALID_ARGUMENT when data's size does not match the shape and dtype.
absl::StatusOr<std::string> SerializeNpy(const NpyArray& array);
// As SerializeNpy but forces the header's format version (1 or 2); for tests and tools.
absl::StatusOr<std::string> SerializeNpy(const NpyArray& array, int major_version);

absl::StatusOr<NpyArray> ReadNpy(const std::string& path);
absl::Status WriteNpy(const std::string& path, const NpyArray& array);

// The wire tensor <-> an array (same dtype, shape and bytes).
v1::Tensor ToTensor(NpyArray array);
NpyArray FromTensor(const v1::Tensor& tensor);

}  // namespace attnd::client

#endif  // ATTND_CLIENT_NPY_H_
