#include "ember/formats/npy.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <regex>

#include "ember/formats/mapped_file.h"

namespace ember::formats::npy {

namespace {
const char* descr(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::U8: return "|u1";
    case DType::Bool: return "|b1";
    default: return nullptr;
  }
}
}  // namespace

void write(const std::string& path, const Tensor& tensor) {
  Tensor t = tensor.to(Device::cpu());
  if (t.dtype() == DType::BF16) t = t.to(DType::F32);
  const char* d = descr(t.dtype());
  EMBER_CHECK(d, "{}: dtype {} cannot be written as .npy", path, dtype_name(t.dtype()));
  t = t.contiguous();
  std::string shape;  // Python tuple syntax: (), (5,), (3, 4)
  for (int i = 0; i < t.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(t.dim(i));
  if (t.ndim() == 1) shape += ",";
  std::string header = "{'descr': '" + std::string(d) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Magic (6) + version (2) + length (2) + header, padded with spaces and a newline to 64 bytes.
  const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  EMBER_CHECK(f, "{}: cannot write: {}", tmp, std::strerror(errno));
  const uint16_t len = uint16_t(header.size());
  const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(len & 0xff), uint8_t(len >> 8)};
  bool ok = std::fwrite(pre, 1, 10, f) == 10 && std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            (t.nbytes() == 0 || std::fwrite(t.raw_data(), 1, t.nbytes(), f) == t.nbytes());
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw_error("{}: writing failed: {}", path, std::strerror(errno));
  }
}

Tensor read(const std::string& path) {
  auto map = MappedFile::open(path);
  const uint8_t* p = map->data();
  const size_t n = map->size();
  EMBER_CHECK(n >= 10 && std::memcmp(p, "\x93NUMPY", 6) == 0, "{}: not a .npy file", path);
  EMBER_CHECK(p[6] == 1 || p[6] == 2, "{}: unsupported .npy version {}", path, int(p[6]));
  const size_t hl = p[6] == 1 ? size_t(p[8] | (p[9] << 8)) : size_t(p[8] | (p[9] << 8) | (p[10] << 16) | (size_t(p[11]) << 24));
  const size_t off = p[6] == 1 ? 10 : 12;
  EMBER_CHECK(off + hl <= n, "{}: header length {} runs past the end", path, hl);
  const std::string header(reinterpret_cast<const char*>(p + off), hl);
  std::smatch m;
  EMBER_CHECK(std::regex_search(header, m, std::regex("'descr':\\s*'([<|]..)'")), "{}: no descr in header", path);
  const std::string d = m[1];
  EMBER_CHECK(!std::regex_search(header, std::regex("'fortran_order':\\s*True")), "{}: Fortran order unsupported", path);
  EMBER_CHECK(std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")), "{}: no shape in header", path);
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    EMBER_CHECK(it->str().size() < 18, "{}: dimension {} too large", path, it->str());
    shape.push_back(std::stoll(it->str()));
  }
  DType t;
  if (d == "<f4") t = DType::F32;
  else if (d == "<f2") t = DType::F16;
  else if (d == "<i4") t = DType::I32;
  else if (d == "<i8") t = DType::I64;
  else if (d == "|u1") t = DType::U8;
  else if (d == "|b1") t = DType::Bool;
  else throw_error("{}: dtype '{}' unsupported", path, d);
  const Shape s{std::span<const int64_t>(shape)};
  uint64_t bytes = dtype_size(t);
  for (int64_t v : shape) EMBER_CHECK(!__builtin_mul_overflow(bytes, uint64_t(v), &bytes), "{}: shape overflows", path);
  EMBER_CHECK(off + hl + bytes == n, "{}: {} data bytes for shape {} but the file holds {}", path, bytes, s.str(),
              n - off - hl);
  return Tensor::from_data(p + off + hl, s, t);
}

}  // namespace ember::formats::npy
