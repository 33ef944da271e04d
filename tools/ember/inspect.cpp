// ember inspect: what a SafeTensors file or checkpoint holds.
#include <cstdio>
#include <numeric>

#include <nlohmann/json.hpp>

#include "commands.h"
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

}  // namespace

void register_inspect(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("inspect", "List the tensors of a SafeTensors file, index or checkpoint directory");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "A .safetensors file, a *.safetensors.index.json, or a directory")->required();
  cmd->add_flag("--json", *as_json, "Machine-readable JSON on stdout");
  cmd->callback([path, as_json] { inspect_safetensors(*path, *as_json); });
}

}  // namespace ember::cli
