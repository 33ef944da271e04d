#pragma once
// OpenAI's Metal model.bin (gpt_oss/metal): the file that scripts/create-local-model.py writes and
// source/model.c maps. Little-endian, in order: file header ("GPT-OSS v1.0", u32 0), model UUID +
// model header + layout UUID, tokenizer UUID + tokenizer header, one UUID per special token, the
// pre-tokenizer regex (NUL-terminated), the text tokens (u16 length + bytes), zeros to a 16 KiB
// boundary, then the weights: embedding, per-block attention/gate tensors, final norm,
// unembedding (each 16-byte aligned), and per block (16 KiB aligned) the experts' MXFP4 records.
// Padding is relative to the absolute file offset. See docs/formats.md and spec/gpt-oss.md §4.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/formats/mapped_file.h"
#include "ember/tokenizer/tokenizer.h"

namespace ember::formats::modelbin {

inline constexpr uint64_t kPageAlignment = 16384;   // weights and each block's experts
inline constexpr uint64_t kTensorAlignment = 16;    // every tensor
inline constexpr uint8_t kUe8Offset = 14;           // added to every MXFP4 scale byte
inline constexpr uint32_t kNumTextTokens = 199998;  // o200k_base ranks
inline constexpr uint32_t kNumTokens = 200014;      // text tokens + specials up to <|refusal|>
inline constexpr uint64_t kFileHeaderSize = 16, kModelHeaderSize = 68, kTokenizerHeaderSize = 16;

using Uuid = std::array<uint8_t, 16>;  // RFC 4122 byte order (Python's UUID.bytes)
std::string uuid_string(const Uuid& uuid);
extern const Uuid kModelUuid;      // df52dc86-1789-4ed0-a295-66f10508145b (gpt-oss)
extern const Uuid kLayoutUuid;     // 229177a8-5775-4268-bfd8-d588b351c56d (Apple GPU layout)
extern const Uuid kTokenizerUuid;  // 7401aded-2a95-40cb-b782-9ccebaafe72b (tiktoken)
// The special tokens that have a UUID (create-local-model.py's SPECIAL_TOKEN_UUID), by name.
const std::vector<std::pair<std::string, Uuid>>& special_token_uuids();
// nullopt for the zero UUID and for UUIDs that name no special token.
std::optional<std::string> special_token_name(const Uuid& uuid);

struct ModelHeader {
  uint32_t context_length = 0, num_blocks = 0, num_experts = 0, num_active_experts = 0, embedding_dim = 0,
           mlp_dim = 0;
  float swiglu_limit = 0;
  uint32_t head_dim = 0, num_heads = 0, num_kv_heads = 0, attention_window = 0;
  float rope_theta = 0, interpolation_scale = 0, yarn_offset = 0, yarn_scale = 0, yarn_multiplier = 0,
        rmsnorm_epsilon = 0;
};

struct TokenizerHeader {
  uint32_t num_special_tokens = 0, num_text_tokens = 0;
  uint32_t regex_size = 0;   // pattern bytes + 1 (NUL)
  uint32_t tokens_size = 0;  // sum of (2 + length) over text tokens
  uint32_t vocabulary_size() const { return num_special_tokens + num_text_tokens; }
};

// One tensor of the file. Expert tensors are one entry per block and kind with `count` records
// `stride` bytes apart (expert e at offset + e * stride); others have count 1.
struct Section {
  std::string name;            // the original checkpoint's name ("block.0.attn.qkv.weight")
  std::string dtype;           // "BF16" or "U8"
  std::vector<int64_t> shape;  // per record: experts' shapes lack the leading E
  uint64_t offset = 0;         // absolute file offset of the first record
  uint64_t size = 0;           // bytes of one record
  uint64_t count = 1, stride = 0;
  uint64_t end() const { return offset + (count - 1) * stride + size; }
};

// Where everything lies, derived from the two headers alone (the writer follows it, the reader
// checks the file against it). Throws ember::Error for inconsistent or absurd header values.
struct Layout {
  ModelHeader model;
  TokenizerHeader tokenizer;
  uint64_t special_uuids_offset = 0, regex_offset = 0, tokens_offset = 0, tokenizer_end = 0;
  uint64_t weights_offset = 0;  // first 16 KiB boundary at or after tokenizer_end
  std::vector<Section> sections;  // in file order
  uint64_t file_size = 0;         // end of the last tensor (the exporter writes no tail padding)

  static Layout compute(const ModelHeader& model, const TokenizerHeader& tokenizer, const std::string& where);
  const Section& section(const std::string& name) const;  // throws naming it
  const Section* find(const std::string& name) const;
};

// A memory-mapped model.bin, validated on open: magic, UUIDs, header fields, the tokenizer
// section (regex NUL-terminated, token lengths summing to tokens_size) and every tensor inside
// the file. Errors name the file and the field or section.
class File {
 public:
  static File open(const std::string& path);
  // The same checks over bytes in memory (tests, fuzzing); `name` appears in errors.
  static File from_bytes(std::shared_ptr<const uint8_t> data, size_t size, const std::string& name);

  const std::string& path() const { return name_; }
  const Layout& layout() const { return layout_; }
  const ModelHeader& model_header() const { return layout_.model; }
  const TokenizerHeader& tokenizer_header() const { return layout_.tokenizer; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::shared_ptr<const void> keepalive() const { return owner_; }

  // Special tokens (ids num_text_tokens ..) and their UUIDs in id order.
  const std::vector<Uuid>& special_uuids() const { return special_uuids_; }
  std::string_view regex() const;  // without the NUL
  std::string_view token_bytes(uint32_t id) const;  // text tokens only
  // The vocabulary as an ember tokenizer: text tokens as ranks, specials named by their UUIDs
  // (ids with a zero UUID get o200k_harmony's name for that id, else <|reserved_ID|>), the regex.
  tokenizer::Tokenizer tokenizer() const;
  const uint8_t* bytes(const Section& s, uint64_t record = 0) const { return data_ + s.offset + record * s.stride; }

  // True when the file starts with model.bin's magic (cheap check for dispatching on a path).
  static bool has_magic(const std::string& path);

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  Layout layout_;
  std::vector<Uuid> special_uuids_;
  std::vector<uint64_t> token_offsets_;  // offset of each text token's length prefix
};

// Structural check beyond open(): padding bytes are zero and, for the vocabulary, the special
// token table names each UUID at most once. Returns problems (empty = fine).
std::vector<std::string> check_structure(const File& file);

// ---- writing ----

struct ExportOptions {
  std::string tokenizer_path;  // o200k_base.tiktoken or tokenizer.json; empty: found beside src
  bool force = false;          // overwrite dst
  // Called as bytes are written (done, total).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct ExportStats {
  uint64_t bytes = 0;
  double seconds = 0;
};

// Converts a checkpoint directory in the original gpt-oss layout (config.json + *.safetensors) into
// model.bin exactly as create-local-model.py does, streaming tensor by tensor. Writes to a
// temporary file beside dst and renames it only on success. Refuses (naming the tensor or field)
// what the reference refuses: head_dim other than 64, fewer than 200014 embedding rows, MXFP4
// scales that the +14 offset would overflow, non-bf16 norm scales / sinks.
ExportStats export_checkpoint(const std::string& src_dir, const std::string& dst, const ExportOptions& options = {});

// The model header create-local-model.py derives from a config (YaRN terms in double, stored f32).
struct ConfigValues {
  int64_t num_hidden_layers, num_experts, hidden_size, intermediate_size, head_dim, num_attention_heads,
      num_key_value_heads, sliding_window, initial_context_length;
  double swiglu_limit, rope_theta, rope_scaling_factor, rope_ntk_alpha, rope_ntk_beta;
};
ModelHeader model_header_for(const ConfigValues& config);
// config.json's fields as create-local-model.py reads them; errors name the field.
ConfigValues read_config_json(const std::string& checkpoint_dir);

// Tensor-by-tensor comparison with the SafeTensors checkpoint it was made from: bf16 bytes equal
// (the QKV transform undone), MXFP4 blocks equal and scales equal after the offset, header fields
// equal to those the config implies. Returns the differences (empty = same); `progress(done,
// total)` counts sections.
std::vector<std::string> compare_with_checkpoint(const File& file, const std::string& checkpoint_dir,
                                                 const std::function<void(size_t, size_t)>& progress = nullptr);

// The QKV transform of model.bin (bf16 bits): rows [q heads | k heads | v heads] x cols. q and k
// heads have their (d, d + head_dim/2) row pairs interleaved and are scaled by 0.5 (q) and 0.25
// (k); v rows are unchanged. `inverse` undoes it (exact: powers of two and a permutation, unless
// the forward scaling rounded a subnormal).
void qkv_transform(const uint16_t* in, uint16_t* out, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                   int64_t cols, bool inverse);

}  // namespace ember::formats::modelbin
