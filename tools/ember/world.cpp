// ember world: play the small world model (models/world/world32.safetensors) in the terminal.
// Truecolor half blocks ('▀': foreground = upper pixel, background = lower), WASD/arrows move the
// sprite, the mouse or IJKL turns the view, q quits. --actions FILE plays a recording instead
// (ember's action text form), --record OUT.png|OUT.gif writes what was generated.
#include <png.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "ember/core/error.h"
#include "ember/world/player.h"
#include "ember/world/synthetic.h"

namespace ember::cli {
namespace {

using world::Action;
using world::Frame;
using Clock = std::chrono::steady_clock;

#ifndef EMBER_WORLD_MODEL
#define EMBER_WORLD_MODEL "models/world/world32.safetensors"
#endif

// The shipped model: installed beside the program (<prefix>/share/ember/), else the source tree's.
std::string default_world_model() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto installed = exe.parent_path().parent_path() / "share" / "ember" / "world32.safetensors";
    if (std::filesystem::is_regular_file(installed, ec)) return installed.string();
  }
  return EMBER_WORLD_MODEL;
}

struct WorldOptions {
  std::string model = default_world_model();
  std::string actions;  // recording to play (non-interactive)
  std::string record;   // OUT.png (contact sheet) or OUT.gif
  int64_t frames = 0;   // stop after this many generated frames (0: until q / end of recording)
  int64_t seed = 0;     // synthetic world of the prompt, and the sampling noise
  int scale = 2;        // terminal pixels per model pixel
  int steps = 4;        // sampling steps per block
};

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// Peak resident memory of this process in kB (VmHWM), or -1 where /proc is missing.
long vm_hwm_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Raw terminal for the game's lifetime: no echo, no line buffering, mouse motion reports (SGR),
// alternate screen, hidden cursor. Restored by the destructor (also after an exception or Ctrl-C,
// which stays a signal: ISIG is kept).
class RawTerminal {
 public:
  RawTerminal() {
    EMBER_CHECK(::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO),
                "ember world: interactive play needs a terminal (use --actions FILE otherwise)");
    EMBER_CHECK(tcgetattr(STDIN_FILENO, &saved_) == 0, "ember world: cannot read terminal settings");
    termios raw = saved_;
    raw.c_lflag &= tcflag_t(~(ICANON | ECHO));
    raw.c_iflag &= tcflag_t(~(IXON | ICRNL));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    write_all("\x1b[?1049h\x1b[?25l\x1b[?1003h\x1b[?1006h\x1b[2J");
  }
  ~RawTerminal() {
    write_all("\x1b[?1003l\x1b[?1006l\x1b[0m\x1b[?25h\x1b[?1049l");
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

  static void write_all(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::write(STDOUT_FILENO, s.data(), s.size());
      if (n <= 0) return;
      s.remove_prefix(size_t(n));
    }
  }
  // Whatever bytes are waiting (non-blocking).
  static std::string read_available() {
    std::string out;
    char buf[256];
    pollfd p{STDIN_FILENO, POLLIN, 0};
    while (::poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, size_t(n));
    }
    return out;
  }

 private:
  termios saved_{};
};

// Removes SGR mouse reports ("ESC [ < b ; x ; y M|m") from `bytes`; returns the motion in cells
// since the previous report (the first report only sets the position).
struct MouseTracker {
  int x = -1, y = -1;
  std::pair<int, int> take(std::string& bytes) {
    int dx = 0, dy = 0;
    std::string rest;
    for (size_t i = 0; i < bytes.size();) {
      if (bytes.compare(i, 3, "\x1b[<") == 0) {
        size_t j = i + 3;
        while (j < bytes.size() && bytes[j] != 'M' && bytes[j] != 'm') ++j;
        if (j == bytes.size()) break;  // incomplete report: drop it
        int b = 0, cx = 0, cy = 0;
        if (std::sscanf(bytes.c_str() + i + 3, "%d;%d;%d", &b, &cx, &cy) == 3) {
          if (x >= 0) dx += cx - x, dy += cy - y;
          x = cx, y = cy;
        }
        i = j + 1;
      } else {
        rest += bytes[i++];
      }
    }
    bytes.swap(rest);
    return {dx, dy};
  }
};

std::string draw(const Frame& f, int scale, const std::string& status) {
  const int n = world::SyntheticWorld::kSize, w = n * scale, h = n * scale;
  std::string out = "\x1b[H";
  char buf[64];
  auto px = [&](int x, int y) { return &f[size_t(((y / scale) * n + x / scale) * 3)]; };
  for (int y = 0; y < h; y += 2) {
    for (int x = 0; x < w; ++x) {
      const uint8_t* a = px(x, y);
      const uint8_t* b = px(x, y + 1);
      std::snprintf(buf, sizeof buf, "\x1b[38;2;%d;%d;%dm\x1b[48;2;%d;%d;%dm\xe2\x96\x80", a[0], a[1],
                    a[2], b[0], b[1], b[2]);
      out += buf;
    }
    out += "\x1b[0m\r\n";
  }
  out += "\x1b[0m\x1b[K" + status + "\r\n";
  return out;
}

// Contact sheet: frames in rows of 16, 2x, 2-pixel gaps.
void write_png(const std::string& path, const std::vector<Frame>& frames) {
  const int n = world::SyntheticWorld::kSize, s = 2, gap = 2, cols = 16, cell = n * s + gap;
  const int rows = int((frames.size() + cols - 1) / cols);
  const int W = std::min<int>(cols, int(frames.size())) * cell + gap, H = rows * cell + gap;
  std::vector<uint8_t> img(size_t(W * H * 3), 24);
  for (size_t i = 0; i < frames.size(); ++i) {
    const int ox = gap + int(i % cols) * cell, oy = gap + int(i / cols) * cell;
    for (int y = 0; y < n * s; ++y)
      for (int x = 0; x < n * s; ++x)
        std::copy_n(&frames[i][size_t(((y / s) * n + x / s) * 3)], 3,
                    &img[size_t(((oy + y) * W + ox + x) * 3)]);
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  EMBER_CHECK(f, "--record {}: cannot open for writing", path);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    throw Error("--record " + path + ": libpng failed");
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(W), png_uint_32(H), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < H; ++y) png_write_row(png, &img[size_t(y * W * 3)]);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

// Animated GIF, 4x, 10 frames/s, a 6x6x6 colour cube. The image data are 9-bit LZW literals with
// a clear code every 128 of them, so no compression table is needed (valid, if not small).
void write_gif(const std::string& path, const std::vector<Frame>& frames) {
  const int n = world::SyntheticWorld::kSize, s = 4, W = n * s;
  std::string g = "GIF89a";
  auto u16 = [&](int v) { g += char(v & 0xff), g += char((v >> 8) & 0xff); };
  u16(W), u16(W);
  g += char(0xF7), g += char(0), g += char(0);  // global table of 256 entries
  for (int i = 0; i < 256; ++i) {
    const int c = std::min(i, 215);
    g += char(c / 36 * 51), g += char(c / 6 % 6 * 51), g += char(c % 6 * 51);
  }
  g += "\x21\xFF\x0BNETSCAPE2.0\x03\x01";  // loop forever
  u16(0), g += char(0);
  auto q = [](uint8_t v) { return (v * 5 + 127) / 255; };
  for (const Frame& f : frames) {
    g += "\x21\xF9\x04";
    g += char(0), u16(10), g += char(0), g += char(0);  // 100 ms
    g += char(0x2C), u16(0), u16(0), u16(W), u16(W), g += char(0);
    g += char(8);  // LZW minimum code size
    std::string data;
    uint32_t acc = 0;
    int bits = 0, since_clear = 0;
    auto put = [&](int code) {
      acc |= uint32_t(code) << bits;
      bits += 9;
      while (bits >= 8) data += char(acc & 0xff), acc >>= 8, bits -= 8;
    };
    put(256);
    for (int y = 0; y < W; ++y)
      for (int x = 0; x < W; ++x) {
        const uint8_t* p = &f[size_t(((y / s) * n + x / s) * 3)];
        if (since_clear == 128) put(256), since_clear = 0;
        put(q(p[0]) * 36 + q(p[1]) * 6 + q(p[2]));
        ++since_clear;
      }
    put(257);
    if (bits > 0) data += char(acc & 0xff);
    for (size_t i = 0; i < data.size(); i += 255) {
      const size_t len = std::min<size_t>(255, data.size() - i);
      g += char(len);
      g.append(data, i, len);
    }
    g += char(0);
  }
  g += char(0x3B);
  std::ofstream out(path, std::ios::binary);
  EMBER_CHECK(out.write(g.data(), std::streamsize(g.size())), "--record {}: cannot write", path);
}

void run_world(const WorldOptions& o, const GlobalOptions& global) {
  if (!o.record.empty()) {
    const bool ok = o.record.size() > 4 && (o.record.ends_with(".png") || o.record.ends_with(".gif"));
    EMBER_CHECK(ok, "--record {}: the file must end in .png or .gif", o.record);
  }
  const Device device = global.parsed_device();
  const world::WorldModel model = world::WorldModel::load(o.model, device);
  const world::ActionSpace space = world::synthetic_action_space();
  world::SampleOptions so;
  so.sigmas.clear();
  for (int i = 0; i < o.steps; ++i) so.sigmas.push_back(1.f - float(i) / float(o.steps));
  const int n = world::SyntheticWorld::kSize;
  world::WorldPlayer player(model, space, n, n, uint64_t(o.seed), so);
  const std::vector<Frame> prompt = world::synthetic_rollout({space.idle(), space.idle()}, o.seed);
  player.prime(prompt, {space.idle()});
  const int64_t fpb = player.frames_per_block();

  std::vector<Frame> recorded = prompt;
  const bool keep = !o.record.empty();
  int64_t generated = 0;
  long hwm_early = -1;
  const auto t0 = Clock::now();

  if (!o.actions.empty()) {
    std::vector<Action> acts = world::load_actions(space, o.actions);
    if (o.frames > 0 && int64_t(acts.size()) > o.frames) acts.resize(size_t(o.frames));
    while (acts.size() % size_t(fpb)) acts.push_back(space.idle());
    for (size_t i = 0; i < acts.size() && !g_stop; i += size_t(fpb)) {
      auto fr = player.step(std::vector<Action>(acts.begin() + long(i), acts.begin() + long(i) + fpb));
      generated += fpb;
      if (generated == 200) hwm_early = vm_hwm_kb();
      if (keep) recorded.insert(recorded.end(), fr.begin(), fr.end());
    }
  } else {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    RawTerminal term;
    MouseTracker mouse;
    Action held = space.idle();
    auto held_at = Clock::now();
    double fps = 0;
    auto last = Clock::now();
    while (!g_stop && (o.frames == 0 || generated < o.frames)) {
      std::string bytes = RawTerminal::read_available();
      if (bytes.find('q') != std::string::npos || bytes.find('Q') != std::string::npos) break;
      const auto [mdx, mdy] = mouse.take(bytes);
      Action a = space.from_terminal(bytes);
      const auto now = Clock::now();
      // Terminals send no key releases: a key counts as held until 250 ms after its last byte
      // (key repeat keeps it alive).
      const bool any_key = std::any_of(a.keys.begin(), a.keys.end(), [](uint8_t k) { return k != 0; });
      if (any_key) held = a, held_at = now;
      else if (now - held_at < std::chrono::milliseconds(250)) a.keys = held.keys;
      const float step = space.camera_step();
      a.mouse.dx = std::clamp(a.mouse.dx + float(mdx) * step, -2 * step, 2 * step);
      a.mouse.dy = std::clamp(a.mouse.dy - float(mdy) * step, -2 * step, 2 * step);
      auto fr = player.step(std::vector<Action>(size_t(fpb), a));
      generated += fpb;
      if (keep) recorded.insert(recorded.end(), fr.begin(), fr.end());
      const auto t = Clock::now();
      const double inst = double(fpb) / std::chrono::duration<double>(t - last).count();
      fps = fps == 0 ? inst : 0.8 * fps + 0.2 * inst;
      last = t;
      char status[160];
      std::snprintf(status, sizeof status,
                    "%.1f frames/s  frame %lld  [%s]  WASD/arrows move, mouse/IJKL look, q quits",
                    fps, static_cast<long long>(player.next_frame()), space.format_frame(a).c_str());
      for (const Frame& f : fr) RawTerminal::write_all(draw(f, o.scale, status));
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::fprintf(stderr, "ember world: %lld frames in %.2f s, %.1f frames/s; peak memory (VmHWM) %ld kB",
               static_cast<long long>(generated), secs, secs > 0 ? double(generated) / secs : 0.0,
               vm_hwm_kb());
  if (hwm_early >= 0) std::fprintf(stderr, " (%ld kB after 200 frames)", hwm_early);
  std::fprintf(stderr, "\n");
  if (g_stop) throw Error("interrupted");
  if (o.record.ends_with(".png")) write_png(o.record, recorded);
  else if (o.record.ends_with(".gif")) write_gif(o.record, recorded);
}

}  // namespace

void register_world(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("world", "Play the small world model in the terminal");
  auto o = std::make_shared<WorldOptions>();
  cmd->add_option("--model", o->model, "World model SafeTensors file")->capture_default_str();
  cmd->add_option("--actions", o->actions, "Play this recording (action text form) instead of the keyboard");
  cmd->add_option("--record", o->record, "Write the frames: OUT.png (contact sheet) or OUT.gif");
  cmd->add_option("--frames", o->frames, "Stop after this many generated frames (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Starting world and sampling seed")->capture_default_str();
  cmd->add_option("--scale", o->scale, "Terminal pixels per model pixel")->check(CLI::Range(1, 8))
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "Sampling steps per frame block")->check(CLI::Range(1, 16))
      ->capture_default_str();
  cmd->callback([o, &global] { run_world(*o, global); });
}

}  // namespace ember::cli
