#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ember/formats/safetensors.h"

namespace ember::formats::safetensors {

namespace {

// JSON string literal as serde_json writes it.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += char(c);
    }
  }
  out += '"';
  return out;
}

int dtype_rank(const std::string& d) {
  static const char* order[] = {"BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3",
                                "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16",
                                "I32", "U32", "F32", "C64", "F64", "I64", "U64"};
  for (int i = 0; i < int(std::size(order)); ++i)
    if (d == order[i]) return i;
  return -1;
}

// Removes the temporary file unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    std::string tmpl = target + ".tmp-XXXXXX";
    const int fd = mkstemp(tmpl.data());
    EMBER_CHECK(fd >= 0, "{}: cannot create a temporary file beside it: {}", target, std::strerror(errno));
    path_ = tmpl;
    file_ = fdopen(fd, "wb");
    EMBER_CHECK(file_, "{}: cannot open {}", target, path_);
  }
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(path_.c_str());
  }
  void write(const void* p, size_t n) {
    EMBER_CHECK(n == 0 || std::fwrite(p, 1, n, file_) == n, "{}: write failed: {}", path_, std::strerror(errno));
  }
  void commit() {
    EMBER_CHECK(std::fflush(file_) == 0 && fsync(fileno(file_)) == 0, "{}: flush failed: {}", path_,
                std::strerror(errno));
    EMBER_CHECK(std::fclose(file_) == 0, "{}: close failed", path_);
    file_ = nullptr;
    std::filesystem::permissions(path_, std::filesystem::perms(0644));
    EMBER_CHECK(std::rename(path_.c_str(), target_.c_str()) == 0, "{}: cannot rename {} into place: {}", target_,
                path_, std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string target_, path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace

void write_streaming(const std::string& path, std::vector<TensorSource> tensors,
                     const std::map<std::string, std::string>& metadata) {
  // Order as the reference writer: descending dtype, then name.
  std::sort(tensors.begin(), tensors.end(), [](const TensorSource& a, const TensorSource& b) {
    const int ra = dtype_rank(a.dtype), rb = dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += fmt::format("{}{}:{}", first ? "" : ",", quote(k), quote(v));
      first = false;
    }
    header += "}";
  }
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSource& t = tensors[i];
    EMBER_CHECK(t.name != "__metadata__" && !t.name.empty(), "{}: invalid tensor name '{}'", path, t.name);
    EMBER_CHECK(i == 0 || t.name != tensors[i - 1].name || t.dtype != tensors[i - 1].dtype,
                "{}: tensor '{}' given twice", path, t.name);
    const int bits = dtype_bits(t.dtype);
    EMBER_CHECK(bits > 0, "{}: tensor '{}': unknown dtype '{}'", path, t.name, t.dtype);
    uint64_t elements = 1;
    for (int64_t d : t.shape) {
      EMBER_CHECK(d >= 0, "{}: tensor '{}': negative dimension", path, t.name);
      elements *= uint64_t(d);
    }
    EMBER_CHECK(elements * uint64_t(bits) % 8 == 0, "{}: tensor '{}' does not fill whole bytes", path, t.name);
    const uint64_t n = elements * uint64_t(bits) / 8;
    sizes.push_back(n);
    header += fmt::format("{}{}:{{\"dtype\":{},\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          header.size() > 1 ? "," : "", quote(t.name), quote(t.dtype), fmt::join(t.shape, ","),
                          offset, offset + n);
    offset += n;
  }
  {  // names must be unique whatever their dtypes
    std::vector<std::string> names;
    for (const auto& t : tensors) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    EMBER_CHECK(dup == names.end(), "{}: tensor '{}' given twice", path, *dup);
  }
  header += "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');  // align the data area to 8 bytes

  TempFile out(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  out.write(len, 8);
  out.write(header.data(), header.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t written = 0;
    tensors[i].write([&](const void* p, size_t n) {
      EMBER_CHECK(written + n <= sizes[i], "{}: tensor '{}' produced more than its {} bytes", path,
                  tensors[i].name, sizes[i]);
      out.write(p, n);
      written += n;
    });
    EMBER_CHECK(written == sizes[i], "{}: tensor '{}' produced {} of its {} bytes", path, tensors[i].name, written,
                sizes[i]);
  }
  out.commit();
}

void write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
           const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSource> sources;
  for (const auto& [name, t] : tensors) {
    EMBER_CHECK(t.defined(), "{}: tensor '{}' is undefined", path, name);
    Tensor host = t.to(Device::cpu()).contiguous();
    sources.push_back({name, dtype_to_string(t.dtype()), host.shape().vec(),
                       [host](const ByteSink& sink) { sink(host.raw_data(), host.nbytes()); }});
  }
  write_streaming(path, std::move(sources), metadata);
}

}  // namespace ember::formats::safetensors
