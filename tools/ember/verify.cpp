// ember verify: structural check of a model.bin and, with --against, tensor-by-tensor comparison
// with the SafeTensors checkpoint it was exported from.
#include <cstdio>

#include "commands.h"
#include "ember/core/error.h"
#include "ember/formats/modelbin.h"

namespace ember::cli {

void register_verify(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("verify", "Check a model.bin (structure; with --against, every tensor)");
  struct Opts {
    std::string path, against;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("path", o->path, "A model.bin file")->required();
  cmd->add_option("--against", o->against, "The checkpoint directory it was exported from");
  cmd->callback([o] {
    namespace mb = formats::modelbin;
    const auto file = mb::File::open(o->path);  // header, tokenizer and section bounds
    auto problems = mb::check_structure(file);
    file.tokenizer();  // the vocabulary builds (unique token bytes)
    std::printf("%s: structure ok (%zu sections, %zu bytes)\n", o->path.c_str(), file.layout().sections.size(),
                file.size());
    if (!o->against.empty()) {
      auto diffs = mb::compare_with_checkpoint(file, o->against);
      if (diffs.empty()) std::printf("%s: every tensor matches %s\n", o->path.c_str(), o->against.c_str());
      problems.insert(problems.end(), diffs.begin(), diffs.end());
    }
    for (const auto& p : problems) std::fprintf(stderr, "%s: %s\n", o->path.c_str(), p.c_str());
    if (!problems.empty()) throw_error("{}: {} problem(s)", o->path, problems.size());
  });
}

}  // namespace ember::cli
