#pragma once
// SafeTensors: memory-mapped reading of single files and sharded checkpoints, validated as
// strictly as the reference Rust implementation (huggingface/safetensors, tensor.rs), and a
// writer whose files the reference reads. Every error names the file and, where there is one,
// the tensor.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/tensor.h"
#include "ember/formats/mapped_file.h"

namespace ember::formats::safetensors {

inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct TensorInfo {
  std::string name;
  std::string dtype;              // as written in the file ("F32", "BF16", "F8_E4M3", ...)
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;    // byte span relative to the data area
  std::optional<DType> ember_dtype() const;  // nullopt for valid dtypes ember has no type for
  uint64_t nbytes() const { return end - begin; }
};

struct Header {
  std::map<std::string, std::string> metadata;  // __metadata__
  std::vector<TensorInfo> tensors;               // ordered by offset
  uint64_t header_size = 0;                      // JSON bytes (the u64 prefix's value)
  uint64_t data_offset() const { return 8 + header_size; }
};

// Validates a whole file's bytes; `file_name` appears in every error.
Header parse_header(const uint8_t* bytes, size_t size, const std::string& file_name);
// Bits per element of a dtype name known to the format (0 if unknown).
int dtype_bits(const std::string& dtype);
std::string dtype_to_string(DType dtype);

class File {
 public:
  static File open(const std::string& path);
  const std::string& path() const { return map_->path(); }
  const Header& header() const { return header_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  // A zero-copy CPU view of the mapped bytes (a copy only when the data is misaligned for its
  // dtype); the mapping lives as long as any tensor from it.
  Tensor get(const std::string& name) const;
  const uint8_t* raw(const TensorInfo& info) const { return map_->data() + header_.data_offset() + info.begin; }

 private:
  std::shared_ptr<const MappedFile> map_;
  Header header_;
  std::map<std::string, size_t> index_;
};

// A checkpoint: a directory of *.safetensors (with or without *.safetensors.index.json), an
// index.json, or a single file. Names must be unique across shards.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);
  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  Tensor get(const std::string& name) const;
  const std::vector<File>& files() const { return files_; }
  const File& file_of(const std::string& name) const;
  std::map<std::string, std::string> metadata() const;  // merged __metadata__ of all files

 private:
  std::string path_;
  std::vector<File> files_;
  std::map<std::string, size_t> where_;
};

// ---- writing ----

// Receives a tensor's bytes in order, in pieces of any size.
using ByteSink = std::function<void(const void* data, size_t size)>;

struct TensorSource {
  std::string name;
  std::string dtype;           // file dtype name, e.g. "F32", "BF16", "U8"
  std::vector<int64_t> shape;
  std::function<void(const ByteSink&)> write;  // must produce exactly the tensor's byte size
};

// Writes tensors (sorted as the reference orders them: descending dtype, then name) to a
// temporary file beside `path` and renames it into place only when complete.
void write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
           const std::map<std::string, std::string>& metadata = {});
void write_streaming(const std::string& path, std::vector<TensorSource> tensors,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace ember::formats::safetensors
