#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "ember/formats/safetensors.h"

namespace ember::formats::safetensors {

namespace {

using json = nlohmann::json;

struct DtypeInfo {
  const char* name;
  int bits;
  std::optional<DType> ember;
};
// The reference's Dtype enum, in its order (the writer sorts by it).
constexpr int kDtypeCount = 22;
const DtypeInfo kDtypes[kDtypeCount] = {
    {"BOOL", 8, DType::Bool}, {"F4", 4, {}},          {"F6_E2M3", 6, {}},        {"F6_E3M2", 6, {}},
    {"U8", 8, DType::U8},     {"I8", 8, {}},          {"F8_E5M2", 8, DType::F8E5M2},
    {"F8_E4M3", 8, DType::F8E4M3},                    {"F8_E8M0", 8, {}},        {"F8_E4M3FNUZ", 8, {}},
    {"F8_E5M2FNUZ", 8, {}},   {"I16", 16, {}},        {"U16", 16, {}},           {"F16", 16, DType::F16},
    {"BF16", 16, DType::BF16}, {"I32", 32, DType::I32}, {"U32", 32, {}},         {"F32", 32, DType::F32},
    {"C64", 64, {}},          {"F64", 64, {}},        {"I64", 64, DType::I64},   {"U64", 64, {}},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF), as Rust's from_utf8.
std::optional<size_t> first_invalid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
    else return i;
    if (i + size_t(len) > n) return i;
    for (int k = 1; k < len; ++k) {
      if ((s[i + size_t(k)] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + size_t(k)] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return i;
    i += size_t(len);
  }
  return std::nullopt;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

uint64_t as_u64(const json& v, const std::string& file, const std::string& tensor, const char* field) {
  EMBER_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
              "{}: tensor '{}': {} must hold non-negative integers, got {}", file, tensor, field, v.dump());
  return v.get<uint64_t>();
}

}  // namespace

int dtype_bits(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  return d ? d->bits : 0;
}

std::optional<DType> TensorInfo::ember_dtype() const {
  const DtypeInfo* d = find_dtype(dtype);
  return d ? d->ember : std::nullopt;
}

std::string dtype_to_string(DType t) {
  for (const auto& d : kDtypes)
    if (d.ember == t) return d.name;
  throw_error("safetensors: no file dtype for {}", dtype_name(t));
}

Header parse_header(const uint8_t* bytes, size_t size, const std::string& file) {
  EMBER_CHECK(size >= 8, "{}: file is {} bytes, too small for the 8-byte header length", file, size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  EMBER_CHECK(n <= kMaxHeaderSize, "{}: header length {} exceeds the {} byte limit", file, n, kMaxHeaderSize);
  EMBER_CHECK(n <= size - 8, "{}: header length {} runs past the end of the file ({} bytes)", file, n, size);
  const uint8_t* text = bytes + 8;
  if (auto bad = first_invalid_utf8(text, size_t(n)))
    throw_error("{}: header is not valid UTF-8 (byte {} of the header)", file, *bad);

  // Parse, rejecting duplicate keys at any depth (nlohmann would keep the last one silently).
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  json root;
  try {
    root = json::parse(
        text, text + n,
        [&](int, json::parse_event_t ev, json& parsed) {
          if (ev == json::parse_event_t::object_start) keys.emplace_back();
          else if (ev == json::parse_event_t::object_end) keys.pop_back();
          else if (ev == json::parse_event_t::key && !keys.empty()) {
            const auto& k = parsed.get_ref<const std::string&>();
            if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
          }
          return true;
        },
        /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    throw_error("{}: header is not valid JSON: {}", file, e.what());
  }
  EMBER_CHECK(duplicate.empty(), "{}: header has the key '{}' more than once", file, duplicate);
  EMBER_CHECK(root.is_object(), "{}: header must be a JSON object, got {}", file, root.type_name());

  Header h;
  h.header_size = n;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      EMBER_CHECK(v.is_object(), "{}: __metadata__ must be an object of strings", file);
      for (auto m = v.begin(); m != v.end(); ++m) {
        EMBER_CHECK(m.value().is_string(), "{}: __metadata__ entry '{}' is not a string", file, m.key());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    EMBER_CHECK(v.is_object(), "{}: tensor '{}': entry must be an object", file, name);
    for (const char* field : {"dtype", "shape", "data_offsets"})
      EMBER_CHECK(v.contains(field), "{}: tensor '{}': missing field '{}'", file, name, field);
    TensorInfo t;
    t.name = name;
    EMBER_CHECK(v["dtype"].is_string(), "{}: tensor '{}': dtype must be a string", file, name);
    t.dtype = v["dtype"].get<std::string>();
    EMBER_CHECK(find_dtype(t.dtype), "{}: tensor '{}': unknown dtype '{}'", file, name, t.dtype);
    EMBER_CHECK(v["shape"].is_array(), "{}: tensor '{}': shape must be an array", file, name);
    for (const auto& d : v["shape"]) {
      const uint64_t dim = as_u64(d, file, name, "shape");
      EMBER_CHECK(dim <= uint64_t(std::numeric_limits<int64_t>::max()), "{}: tensor '{}': dimension {} is too large",
                  file, name, dim);
      t.shape.push_back(int64_t(dim));
    }
    const json& off = v["data_offsets"];
    EMBER_CHECK(off.is_array() && off.size() == 2, "{}: tensor '{}': data_offsets must be [begin, end]", file,
                name);
    t.begin = as_u64(off[0], file, name, "data_offsets");
    t.end = as_u64(off[1], file, name, "data_offsets");
    h.tensors.push_back(std::move(t));
  }

  // Sorted by offsets, the tensors must tile the data area exactly (reference: Metadata::validate).
  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t start = 0;
  for (const TensorInfo& t : h.tensors) {
    EMBER_CHECK(t.begin == start && t.end >= t.begin,
                "{}: tensor '{}': data_offsets [{}, {}] {} (expected to start at {})", file, t.name, t.begin,
                t.end, t.end < t.begin ? "end before begin" : t.begin < start ? "overlap the previous tensor" : "leave a gap",
                start);
    EMBER_CHECK(t.end <= size - 8 - n,
                "{}: tensor '{}': data_offsets end at {} but the data area has only {} bytes (truncated file?)",
                file, t.name, t.end, size - 8 - n);
    start = t.end;
    uint64_t elements = 1, bits = 0;
    for (int64_t d : t.shape)
      EMBER_CHECK(!mul_overflows(elements, uint64_t(d), elements),
                  "{}: tensor '{}': the element count of shape overflows", file, t.name);
    EMBER_CHECK(!mul_overflows(elements, uint64_t(dtype_bits(t.dtype)), bits),
                "{}: tensor '{}': the byte size overflows", file, t.name);
    EMBER_CHECK(bits % 8 == 0, "{}: tensor '{}': {} elements of {} do not fill whole bytes", file, t.name,
                elements, t.dtype);
    EMBER_CHECK(t.end - t.begin == bits / 8,
                "{}: tensor '{}': data_offsets span {} bytes but {} of shape [{}] needs {}", file, t.name,
                t.end - t.begin, t.dtype, fmt::join(t.shape, ", "), bits / 8);
  }
  EMBER_CHECK(start == size - 8 - n,
              "{}: the tensors cover {} bytes of data but the file holds {} after the header", file, start,
              size - 8 - n);
  return h;
}

// ---------------- File ----------------

File File::open(const std::string& path) {
  File f;
  f.map_ = MappedFile::open(path);
  f.header_ = parse_header(f.map_->data(), f.map_->size(), path);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.index_[f.header_.tensors[i].name] = i;
  return f;
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = index_.find(name);
  EMBER_CHECK(it != index_.end(), "{}: no tensor named '{}'", path(), name);
  return header_.tensors[it->second];
}

Tensor File::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  auto dt = t.ember_dtype();
  EMBER_CHECK(dt.has_value(), "{}: tensor '{}' has dtype {}, which ember cannot hold as a tensor", path(), name,
              t.dtype);
  EMBER_CHECK(t.shape.size() <= size_t(kMaxDims), "{}: tensor '{}' has {} dims; ember supports {}", path(), name,
              t.shape.size(), kMaxDims);
  const Shape shape{std::span<const int64_t>(t.shape)};
  const uint8_t* p = raw(t);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(*dt) != 0) return Tensor::from_data(p, shape, *dt);
  return Tensor::borrow(const_cast<uint8_t*>(p), shape, *dt, Device::cpu(), map_);
}

// ---------------- Checkpoint ----------------

namespace fs = std::filesystem;

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  c.path_ = path;
  std::vector<std::string> shard_paths;
  std::map<std::string, std::string> weight_map;
  std::string index_path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string p = e.path().string();
      if (p.ends_with(".safetensors.index.json")) {
        EMBER_CHECK(index_path.empty(), "{}: more than one *.safetensors.index.json", path);
        index_path = p;
      } else if (p.ends_with(".safetensors") && e.is_regular_file()) {
        shard_paths.push_back(p);
      }
    }
    EMBER_CHECK(!shard_paths.empty() || !index_path.empty(), "{}: no .safetensors files in this directory", path);
  } else if (path.ends_with(".json")) {
    index_path = path;
  } else {
    EMBER_CHECK(fs::exists(path, ec), "{}: no such file or directory", path);
    shard_paths.push_back(path);
  }
  if (!index_path.empty()) {
    std::ifstream in(index_path);
    EMBER_CHECK(in.good(), "{}: cannot read", index_path);
    json idx;
    try {
      idx = json::parse(in);
    } catch (const json::exception& e) {
      throw_error("{}: not valid JSON: {}", index_path, e.what());
    }
    EMBER_CHECK(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(),
                "{}: needs a 'weight_map' object", index_path);
    std::set<std::string> shards;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      EMBER_CHECK(it.value().is_string(), "{}: weight_map entry '{}' is not a file name", index_path, it.key());
      const std::string shard = it.value().get<std::string>();
      EMBER_CHECK(shard.find('/') == std::string::npos && shard != ".." && !shard.empty(),
                  "{}: weight_map entry '{}' names '{}', which is not a file beside the index", index_path,
                  it.key(), shard);
      weight_map[it.key()] = shard;
      shards.insert(shard);
    }
    shard_paths.clear();
    const fs::path dir = fs::path(index_path).parent_path();
    for (const auto& s : shards) shard_paths.push_back((dir / s).string());
  }
  std::sort(shard_paths.begin(), shard_paths.end());
  for (const auto& p : shard_paths) {
    EMBER_CHECK(fs::exists(p, ec), "{}: shard {} is missing", index_path.empty() ? path : index_path, p);
    c.files_.push_back(File::open(p));
    const size_t fi = c.files_.size() - 1;
    for (const auto& t : c.files_.back().tensors()) {
      auto [it, fresh] = c.where_.emplace(t.name, fi);
      EMBER_CHECK(fresh, "{}: tensor '{}' is in both {} and {}", path, t.name, c.files_[it->second].path(), p);
    }
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = c.where_.find(name);
    EMBER_CHECK(it != c.where_.end(), "{}: tensor '{}' is listed in the index but missing from {}", index_path,
                name, shard);
    EMBER_CHECK(fs::path(c.files_[it->second].path()).filename() == shard,
                "{}: tensor '{}' is listed in {} but stored in {}", index_path, name, shard,
                c.files_[it->second].path());
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : where_) n.push_back(k);
  return n;
}

const File& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  EMBER_CHECK(it != where_.end(), "{}: no tensor named '{}'", path_, name);
  return files_[it->second];
}
const TensorInfo& Checkpoint::info(const std::string& name) const { return file_of(name).info(name); }
Tensor Checkpoint::get(const std::string& name) const { return file_of(name).get(name); }

std::map<std::string, std::string> Checkpoint::metadata() const {
  std::map<std::string, std::string> m;
  for (const auto& f : files_) m.insert(f.header().metadata.begin(), f.header().metadata.end());
  return m;
}

}  // namespace ember::formats::safetensors
