#include "client/npy.h"

#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace attnd::client {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
// NumPy pads magic + length + header to a multiple of 64 bytes (16 before NumPy 1.22; readers
// accept either).
constexpr size_t kHeaderAlign = 64;

absl::Status Malformed(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": not a valid .npy file: ", what));
}

// The header is a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// This reads exactly that subset: string keys; string, True/False or int-tuple values.
class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : text_(text) {}

  struct Fields {
    bool has_descr = false, has_fortran = false, has_shape = false;
    std::string descr;
    bool fortran_order = false;
    std::vector<int64_t> shape;
  };

  absl::StatusOr<Fields> Parse() {
    Fields fields;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    while (true) {
      SkipSpace();
      if (Consume('}')) break;
      std::string key;
      if (!ReadString(&key)) return Error("expected a quoted key");
      SkipSpace();
      if (!Consume(':')) return Error("expected ':' after key");
      SkipSpace();
      if (key == "descr") {
        if (!ReadString(&fields.descr)) return Error("'descr' is not a string");
        fields.has_descr = true;
      } else if (key == "fortran_order") {
        if (ReadWord("True")) {
          fields.fortran_order = true;
        } else if (ReadWord("False")) {
          fields.fortran_order = false;
        } else {
          return Error("'fortran_order' is not True or False");
        }
        fields.has_fortran = true;
      } else if (key == "shape") {
        absl::Status status = ReadShape(&fields.shape);
        if (!status.ok()) return status;
        fields.has_shape = true;
      } else {
        return Error(absl::StrCat("unexpected key '", key, "'"));
      }
      SkipSpace();
      if (Consume(',')) continue;
      SkipSpace();
      if (Consume('}')) break;
      return Error("expected ',' or '}'");
    }
    if (!fields.has_descr || !fields.has_fortran || !fields.has_shape) {
      return Error("header lacks one of 'descr', 'fortran_order', 'shape'");
    }
    return fields;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("header: ", what, " at offset ", pos_));
  }
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool ReadWord(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool ReadString(std::string* out) {
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) return false;
    const char quote = text_[pos_++];
    size_t end = text_.find(quote, pos_);
    if (end == absl::string_view::npos) return false;
    *out = std::string(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }
  absl::Status ReadShape(std::vector<int64_t>* shape) {
    if (!Consume('(')) return Error("'shape' is not a tuple");
    while (true) {
      SkipSpace();
      if (Consume(')')) return absl::OkStatus();
      if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        return Error("'shape' holds something other than a non-negative integer");
      }
      int64_t value = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        const int digit = text_[pos_++] - '0';
        if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
          return Error("a 'shape' dimension overflows int64");
        }
        value = value * 10 + digit;
      }
      // Python 2 era writers put an 'L' after longs.
      Consume('L');
      shape->push_back(value);
      SkipSpace();
      if (Consume(',')) continue;
      SkipSpace();
      if (Consume(')')) return absl::OkStatus();
      return Error("expected ',' or ')' in 'shape'");
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

absl::StatusOr<v1::DType> DTypeFromDescr(absl::string_view descr, absl::string_view name) {
  if (descr == "<f4") return v1::DTYPE_F32;
  if (descr == "<f2") return v1::DTYPE_F16;
  if (descr == "<u2" || descr == "<V2" || descr == "|V2" || descr == "bfloat16") {
    return v1::DTYPE_BF16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": unsupported dtype '", descr,
                   "': attnd reads '<f4' (f32), '<f2' (f16) and bf16 as '<u2', '<V2' or 'bfloat16' "
                   "(little-endian; convert others first, e.g. .astype(np.float32))"));
}

absl::string_view DescrFor(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F32:
      return "<f4";
    case v1::DTYPE_F16:
      return "<f2";
    case v1::DTYPE_BF16:
      return "<u2";  // see npy.h: NumPy has no bf16 code; view as ml_dtypes.bfloat16
    default:
      return "";
  }
}

// prod(shape) * element_bytes, or an error when it overflows int64.
absl::StatusOr<int64_t> ByteCount(const std::vector<int64_t>& shape, int64_t element_bytes,
                                  absl::string_view name) {
  int64_t count = element_bytes;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": shape[", i, "] = ", shape[i], " is negative"));
    }
    if (shape[i] != 0 && count > std::numeric_limits<int64_t>::max() / shape[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": shape (", absl::StrJoin(shape, ", "), ") overflows int64 bytes"));
    }
    count *= shape[i];
  }
  return count;
}

uint32_t ReadLe(absl::string_view bytes, size_t offset, size_t width) {
  uint32_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return value;
}

}  // namespace

int64_t DTypeBytes(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F32:
      return 4;
    case v1::DTYPE_F16:
    case v1::DTYPE_BF16:
      return 2;
    default:
      return 0;
  }
}

absl::StatusOr<NpyArray> ParseNpy(absl::string_view bytes, absl::string_view name) {
  if (bytes.size() < kMagicBytes + 2 || bytes.substr(0, kMagicBytes) != kMagic) {
    return Malformed(name, "missing the \\x93NUMPY magic");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  const size_t length_bytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3) {
    return Malformed(name, absl::StrCat("format version ", major, " (want 1, 2 or 3)"));
  }
  const size_t prefix = kMagicBytes + 2 + length_bytes;
  if (bytes.size() < prefix) return Malformed(name, "truncated before the header length");
  const size_t header_len = ReadLe(bytes, kMagicBytes + 2, length_bytes);
  if (bytes.size() < prefix + header_len) {
    return Malformed(name, absl::StrCat("header of ", header_len, " bytes runs past the end (",
                                        bytes.size(), " bytes)"));
  }
  absl::string_view header = bytes.substr(prefix, header_len);
  absl::StatusOr<HeaderParser::Fields> fields = HeaderParser(header).Parse();
  if (!fields.ok()) return Malformed(name, fields.status().message());
  if (fields->fortran_order) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": fortran_order is True; attnd reads C order only (np.ascontiguousarray)"));
  }
  absl::StatusOr<v1::DType> dtype = DTypeFromDescr(fields->descr, name);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<int64_t> data_bytes = ByteCount(fields->shape, DTypeBytes(*dtype), name);
  if (!data_bytes.ok()) return data_bytes.status();
  const size_t available = bytes.size() - prefix - header_len;
  if (static_cast<uint64_t>(*data_bytes) != available) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": shape (", absl::StrJoin(fields->shape, ", "), ") of '", fields->descr,
                     "' needs ", *data_bytes, " data bytes but the file holds ", available));
  }
  NpyArray array;
  array.dtype = *dtype;
  array.shape = std::move(fields->shape);
  array.data = std::string(bytes.substr(prefix + header_len));
  return array;
}

absl::StatusOr<std::string> SerializeNpy(const NpyArray& array, int major_version) {
  if (major_version != 1 && major_version != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy format version ", major_version, " (want 1 or 2)"));
  }
  const absl::string_view descr = DescrFor(array.dtype);
  if (descr.empty()) return absl::InvalidArgumentError("npy: array has no dtype");
  absl::StatusOr<int64_t> data_bytes = ByteCount(array.shape, DTypeBytes(array.dtype), "npy");
  if (!data_bytes.ok()) return data_bytes.status();
  if (static_cast<uint64_t>(*data_bytes) != array.data.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy: shape (", absl::StrJoin(array.shape, ", "), ") needs ", *data_bytes,
                     " bytes but the array holds ", array.data.size()));
  }
  std::string shape = absl::StrJoin(array.shape, ", ");
  if (array.shape.size() == 1) shape += ",";  // a one-element Python tuple
  std::string header =
      absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (", shape, "), }");
  const size_t length_bytes = major_version == 1 ? 2 : 4;
  const size_t unpadded = kMagicBytes + 2 + length_bytes + header.size() + 1;  // + '\n'
  header.append((kHeaderAlign - unpadded % kHeaderAlign) % kHeaderAlign, ' ');
  header.push_back('\n');
  if (major_version == 1 && header.size() > 0xffff) {
    return absl::InvalidArgumentError("npy: header too long for format 1.0");
  }

  std::string out;
  out.reserve(kMagicBytes + 2 + length_bytes + header.size() + array.data.size());
  out.append(kMagic, kMagicBytes);
  out.push_back(static_cast<char>(major_version));
  out.push_back(0);
  for (size_t i = 0; i < length_bytes; ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  out += header;
  out += array.data;
  return out;
}

absl::StatusOr<std::string> SerializeNpy(const NpyArray& array) {
  // A header needs format 2.0 only past 65535 bytes (shapes of thousands of dimensions).
  absl::StatusOr<std::string> v1 = SerializeNpy(array, 1);
  if (v1.ok() || array.shape.size() < 1000) return v1;
  return SerializeNpy(array, 2);
}

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", strerror(errno)));
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ParseNpy(contents.str(), path);
}

absl::Status WriteNpy(const std::string& path, const NpyArray& array) {
  absl::StatusOr<std::string> bytes = SerializeNpy(array);
  if (!bytes.ok()) return bytes.status();
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot open for writing: ", strerror(errno)));
  }
  file.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
  file.close();
  if (!file) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

v1::Tensor ToTensor(NpyArray array) {
  v1::Tensor tensor;
  tensor.set_dtype(array.dtype);
  for (int64_t d : array.shape) tensor.add_shape(d);
  *tensor.mutable_data() = std::move(array.data);
  return tensor;
}

NpyArray FromTensor(const v1::Tensor& tensor) {
  NpyArray array;
  array.dtype = tensor.dtype();
  array.shape.assign(tensor.shape().begin(), tensor.shape().end());
  array.data = tensor.data();
  return array;
}

}  // namespace attnd::client
