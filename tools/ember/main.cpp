// ember: the command-line program. One file per subcommand; this file parses the global options,
// registers the subcommands and turns errors into one line on stderr.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "commands.h"
#include "ember/core/error.h"
#include "ember/core/log.h"
#include "ember/core/thread_pool.h"

namespace ember::cli {

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace ember::cli

int main(int argc, char** argv) {
  using namespace ember;
  CLI::App app{"ember: inference runtime for gpt-oss and transformer building blocks", "ember"};
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  cli::GlobalOptions global;
  bool version = false;
  int quiet = 0;
  app.add_flag("--version", version, "Print the version and the compiled backends");
  app.add_option("--threads", global.threads, "CPU threads for ember's kernels (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", global.device, "Device: cpu, cuda or cuda:N")->capture_default_str();
  app.add_flag("-v,--verbose", global.verbosity, "More log output (repeatable)");
  app.add_flag("-q,--quiet", quiet, "Only errors");
  app.require_subcommand(0, 1);
  app.fallthrough();

  cli::register_inspect(app, global);
  cli::register_logits(app, global);
  cli::register_generate(app, global);
  cli::register_fixture(app, global);
  cli::register_tokenize(app, global);
  cli::register_detokenize(app, global);
  cli::register_chat(app, global);
  cli::register_export(app, global);
  cli::register_verify(app, global);
  cli::register_bench(app, global);
  cli::register_world(app, global);

  app.parse_complete_callback([&] {
    set_num_threads(global.threads);
    global.verbosity -= quiet;
    set_log_level(global.verbosity >= 2   ? LogLevel::Debug
                  : global.verbosity == 1 ? LogLevel::Info
                  : global.verbosity == 0 ? LogLevel::Warn
                                          : LogLevel::Error);
    Device d = Device::parse(global.device);
    if (d.is_cuda()) {
      EMBER_CHECK(cuda_compiled(), "--device {}: this ember was built without CUDA", global.device);
      EMBER_CHECK(d.index < cuda_device_count(), "--device {}: {} CUDA device(s) visible", global.device,
                  cuda_device_count());
    }
  });

  try {
    app.parse(argc, argv);
    if (version) {
      std::printf("ember %s (CPU%s; %d CUDA device(s) visible)\n", EMBER_VERSION,
                  cuda_compiled() ? " + CUDA" : "", cuda_device_count());
      return 0;
    }
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
      return 2;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::fprintf(stderr, "ember: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ember: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
