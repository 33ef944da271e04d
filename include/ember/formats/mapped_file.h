#pragma once
// A read-only memory mapping of a whole file. Shared ownership lets tensor views borrow its bytes
// (Tensor::borrow's keepalive) and keep the mapping alive after the file object is gone.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ember::formats {

class MappedFile {
 public:
  // Throws ember::Error naming the path and the system's reason.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace ember::formats
