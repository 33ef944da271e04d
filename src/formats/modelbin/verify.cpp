// model.bin against the SafeTensors checkpoint it was exported from.
#include <cstring>

#include "ember/core/error.h"
#include "ember/formats/modelbin.h"
#include "ember/formats/safetensors.h"

namespace ember::formats::modelbin {

std::vector<std::string> compare_with_checkpoint(const File& file, const std::string& dir,
                                                 const std::function<void(size_t, size_t)>& progress) {
  std::vector<std::string> diffs;
  const ConfigValues c = read_config_json(dir);
  const ModelHeader want = model_header_for(c), &got = file.model_header();
  if (std::memcmp(&want, &got, sizeof(ModelHeader)) != 0) {
    const ModelHeader* w = &want;
    const char* names[] = {"context_length", "num_blocks",       "num_experts",     "num_active_experts",
                           "embedding_dim",  "mlp_dim",          "swiglu_limit",    "head_dim",
                           "num_heads",      "num_kv_heads",     "attention_window", "rope_theta",
                           "interpolation_scale", "yarn_offset", "yarn_scale",      "yarn_multiplier",
                           "rmsnorm_epsilon"};
    static_assert(sizeof(ModelHeader) == 17 * 4);
    for (size_t i = 0; i < 17; ++i) {
      uint32_t a, b;
      std::memcpy(&a, reinterpret_cast<const uint8_t*>(w) + 4 * i, 4);
      std::memcpy(&b, reinterpret_cast<const uint8_t*>(&got) + 4 * i, 4);
      if (a != b) diffs.push_back(fmt::format("header field {}: file has bits {:#010x}, the config implies {:#010x}",
                                              names[i], b, a));
    }
  }
  const auto ckpt = safetensors::Checkpoint::open(dir);
  const ModelHeader& m = got;
  const auto& sections = file.layout().sections;
  std::vector<uint16_t> in, out;
  std::vector<uint8_t> scales;
  for (size_t si = 0; si < sections.size(); ++si) {
    const Section& s = sections[si];
    if (progress) progress(si, sections.size());
    if (!ckpt.contains(s.name)) {
      diffs.push_back(fmt::format("{}: not in the checkpoint", s.name));
      continue;
    }
    const auto& info = ckpt.info(s.name);
    const uint8_t* src = ckpt.file_of(s.name).raw(info);
    if (info.dtype != s.dtype || info.nbytes() < s.size * s.count) {
      diffs.push_back(fmt::format("{}: checkpoint tensor is {} [{}], model.bin holds {} bytes of {}", s.name,
                                  info.dtype, fmt::join(info.shape, ", "), s.size * s.count, s.dtype));
      continue;
    }
    const bool qkv = s.name.ends_with("attn.qkv.weight") || s.name.ends_with("attn.qkv.bias");
    const bool scale = s.name.ends_with("_weight.scales");
    for (uint64_t r = 0; r < s.count; ++r) {
      const uint8_t* bin = file.bytes(s, r);
      const uint8_t* ref = src + r * s.size;
      bool same;
      if (qkv) {
        in.resize(s.size / 2), out.resize(s.size / 2);
        std::memcpy(in.data(), bin, s.size);
        const int64_t cols = s.shape.size() == 2 ? s.shape[1] : 1;
        qkv_transform(in.data(), out.data(), m.num_heads, m.num_kv_heads, m.head_dim, cols, true);
        same = std::memcmp(out.data(), ref, s.size) == 0;
      } else if (scale) {
        scales.assign(bin, bin + s.size);
        for (auto& v : scales) v = uint8_t(v - kUe8Offset);
        same = std::memcmp(scales.data(), ref, s.size) == 0;
      } else {
        same = std::memcmp(bin, ref, s.size) == 0;
      }
      if (!same) {
        diffs.push_back(s.count > 1 ? fmt::format("{}: expert {} differs from the checkpoint", s.name, r)
                                    : fmt::format("{}: differs from the checkpoint{}", s.name,
                                                  qkv ? " (after undoing the QKV transform)" : ""));
        break;
      }
    }
  }
  if (progress) progress(sections.size(), sections.size());
  return diffs;
}

}  // namespace ember::formats::modelbin
