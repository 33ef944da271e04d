// ember inspect: what a SafeTensors file or checkpoint holds.
#include <cstdio>
#include <filesystem>
#include <numeric>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "ember/formats/modelbin.h"
#include "ember/formats/safetensors.h"

namespace ember::cli {

namespace {

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.2f} {}", v, units[u]);
}

void inspect_safetensors(const std::string& path, bool as_json) {
  auto ckpt = formats::safetensors::Checkpoint::open(path);
  uint64_t total_bytes = 0, total_params = 0;
  nlohmann::json j;
  j["path"] = path;
  j["format"] = "safetensors";
  j["files"] = nlohmann::json::array();
  for (const auto& f : ckpt.files()) j["files"].push_back(f.path());
  j["metadata"] = ckpt.metadata();
  j["tensors"] = nlohmann::json::array();
  std::vector<const formats::safetensors::TensorInfo*> infos;
  for (const auto& name : ckpt.names()) infos.push_back(&ckpt.info(name));
  size_t width = 4;
  for (const auto* t : infos) width = std::max(width, t->name.size());
  if (!as_json) std::printf("%-*s  %-8s  %-24s  %s\n", int(width), "name", "dtype", "shape", "bytes");
  for (const auto* t : infos) {
    const uint64_t params = std::accumulate(t->shape.begin(), t->shape.end(), uint64_t(1),
                                            [](uint64_t a, int64_t b) { return a * uint64_t(b); });
    total_params += params;
    total_bytes += t->nbytes();
    if (as_json) {
      j["tensors"].push_back({{"name", t->name}, {"dtype", t->dtype}, {"shape", t->shape}, {"bytes", t->nbytes()},
                              {"file", ckpt.file_of(t->name).path()}});
    } else {
      std::printf("%-*s  %-8s  %-24s  %s\n", int(width), t->name.c_str(), t->dtype.c_str(),
                  fmt::format("[{}]", fmt::join(t->shape, ", ")).c_str(), human_bytes(t->nbytes()).c_str());
    }
  }
  if (as_json) {
    j["totals"] = {{"tensors", infos.size()}, {"parameters", total_params}, {"bytes", total_bytes}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("\n%zu tensors in %zu file(s), %s parameters, %s\n", infos.size(), ckpt.files().size(),
                fmt::format("{:L}", total_params).c_str(), human_bytes(total_bytes).c_str());
    for (const auto& [k, v] : ckpt.metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
  }
}

void inspect_modelbin(const std::string& path, bool as_json) {
  namespace mb = formats::modelbin;
  const auto file = mb::File::open(path);
  const auto& m = file.model_header();
  const auto& t = file.tokenizer_header();
  const auto& L = file.layout();
  nlohmann::ordered_json header = {
      {"context_length", m.context_length}, {"num_blocks", m.num_blocks}, {"num_experts", m.num_experts},
      {"num_active_experts", m.num_active_experts}, {"embedding_dim", m.embedding_dim}, {"mlp_dim", m.mlp_dim},
      {"swiglu_limit", m.swiglu_limit}, {"head_dim", m.head_dim}, {"num_heads", m.num_heads},
      {"num_kv_heads", m.num_kv_heads}, {"attention_window", m.attention_window}, {"rope_theta", m.rope_theta},
      {"interpolation_scale", m.interpolation_scale}, {"yarn_offset", m.yarn_offset}, {"yarn_scale", m.yarn_scale},
      {"yarn_multiplier", m.yarn_multiplier}, {"rmsnorm_epsilon", m.rmsnorm_epsilon}};
  nlohmann::ordered_json specials = nlohmann::ordered_json::array();
  for (size_t i = 0; i < file.special_uuids().size(); ++i) {
    const auto& u = file.special_uuids()[i];
    auto name = mb::special_token_name(u);
    specials.push_back({{"id", t.num_text_tokens + i}, {"uuid", mb::uuid_string(u)}, {"name", name ? *name : ""}});
  }
  if (as_json) {
    nlohmann::ordered_json j = {{"path", path}, {"format", "model.bin"}, {"size", file.size()}, {"header", header}};
    j["tokenizer"] = {{"num_text_tokens", t.num_text_tokens}, {"num_special_tokens", t.num_special_tokens},
                      {"regex_size", t.regex_size}, {"tokens_size", t.tokens_size}, {"regex", file.regex()},
                      {"special_tokens", specials}};
    j["weights_offset"] = L.weights_offset;
    j["sections"] = nlohmann::ordered_json::array();
    for (const auto& s : L.sections)
      j["sections"].push_back({{"name", s.name}, {"dtype", s.dtype}, {"shape", s.shape}, {"offset", s.offset},
                               {"size", s.size}, {"count", s.count}, {"stride", s.stride}});
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("%s: model.bin, %s\n", path.c_str(), human_bytes(file.size()).c_str());
  for (const auto& [k, v] : header.items()) std::printf("  %-20s %s\n", k.c_str(), v.dump().c_str());
  std::printf("tokenizer: %u text tokens, %u special tokens, regex %u bytes, tokens %u bytes\n", t.num_text_tokens,
              t.num_special_tokens, t.regex_size, t.tokens_size);
  for (const auto& sp : specials)
    if (!sp["name"].get<std::string>().empty())
      std::printf("  %-8s %s %s\n", sp["id"].dump().c_str(), sp["uuid"].get<std::string>().c_str(),
                  sp["name"].get<std::string>().c_str());
  size_t width = 4;
  for (const auto& s : L.sections) width = std::max(width, s.name.size());
  std::printf("\n%-*s  %-5s  %-20s  %12s  %10s  %s\n", int(width), "section", "dtype", "shape", "offset", "bytes",
              "records");
  for (const auto& s : L.sections)
    std::printf("%-*s  %-5s  %-20s  %12llu  %10s  %s\n", int(width), s.name.c_str(), s.dtype.c_str(),
                fmt::format("[{}]", fmt::join(s.shape, ", ")).c_str(), (unsigned long long)s.offset,
                human_bytes(s.size).c_str(),
                s.count > 1 ? fmt::format("{} x {} B apart", s.count, s.stride).c_str() : "1");
}

}  // namespace

void register_inspect(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("inspect", "List the tensors of a SafeTensors file, index, checkpoint directory or model.bin");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "A .safetensors file, a *.safetensors.index.json, a directory, or a model.bin")->required();
  cmd->add_flag("--json", *as_json, "Machine-readable JSON on stdout");
  cmd->callback([path, as_json] {
    std::error_code ec;
    if (std::filesystem::is_regular_file(*path, ec) && formats::modelbin::File::has_magic(*path))
      inspect_modelbin(*path, *as_json);
    else
      inspect_safetensors(*path, *as_json);
  });
}

}  // namespace ember::cli
