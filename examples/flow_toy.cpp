// Flow matching on a 2-D Gaussian mixture whose velocity is known in closed form: samples with
// each scheduler, and with guidance toward one component, then writes a PNG: the target density
// and one scatter panel per sampler, and prints each sampler's mean and covariance next to the
// target's.
//   flow_toy [OUT.png] [--samples N] [--steps N]
#include <png.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ember/diffusion/pipeline.h"
#include "ember/diffusion/toy.h"
#include "ember/ops.h"

using namespace ember;
using namespace ember::diffusion;

namespace {

constexpr int kPanel = 256;
constexpr double kLo = -5, kHi = 5;  // plotted square

struct Image {
  int w, h;
  std::vector<uint8_t> rgb;
  Image(int w_, int h_) : w(w_), h(h_), rgb(size_t(w_ * h_ * 3), 255) {}
  void put(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &rgb[size_t((y * w + x) * 3)];
    p[0] = r, p[1] = g, p[2] = b;
  }
};

int to_px(double v) { return int((v - kLo) / (kHi - kLo) * (kPanel - 1)); }

void draw_density(Image& img, int ox, int oy, const GaussianMixtureFlow& mix) {
  double top = 0;
  for (int y = 0; y < kPanel; ++y)
    for (int x = 0; x < kPanel; ++x) top = std::max(top, mix.density(kLo + (kHi - kLo) * x / (kPanel - 1), kHi - (kHi - kLo) * y / (kPanel - 1)));
  for (int y = 0; y < kPanel; ++y)
    for (int x = 0; x < kPanel; ++x) {
      const double d = mix.density(kLo + (kHi - kLo) * x / (kPanel - 1), kHi - (kHi - kLo) * y / (kPanel - 1)) / top;
      const uint8_t c = uint8_t(255 * (1 - std::sqrt(d)));
      img.put(ox + x, oy + y, c, c, 255);
    }
}

void draw_points(Image& img, int ox, int oy, const Tensor& pts) {
  auto v = pts.to_vector<float>();
  for (size_t i = 0; i + 1 < v.size(); i += 2) {
    const int x = to_px(v[i]), y = kPanel - 1 - to_px(v[i + 1]);
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx)
        if (x + dx < kPanel && y + dy < kPanel && x >= 0 && y >= 0) img.put(ox + x + dx, oy + y + dy, 200, 40, 30);
  }
  for (int i = 0; i < kPanel; ++i) img.put(ox + i, oy, 0, 0, 0), img.put(ox + i, oy + kPanel - 1, 0, 0, 0),
                                   img.put(ox, oy + i, 0, 0, 0), img.put(ox + kPanel - 1, oy + i, 0, 0, 0);
}

void write_png(const std::string& path, const Image& img) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot write " + tmp);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    std::remove(tmp.c_str());
    throw Error("libpng failed writing " + path);
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(img.w), png_uint_32(img.h), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < img.h; ++y) png_write_row(png, const_cast<png_bytep>(&img.rgb[size_t(y * img.w * 3)]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("cannot rename " + tmp + " to " + path);
}

void report(const char* name, const Tensor& x) {
  auto v = x.to_vector<float>();
  const double n = double(v.size() / 2);
  double mx = 0, my = 0, cxx = 0, cxy = 0, cyy = 0, right = 0;
  for (size_t i = 0; i < v.size(); i += 2) mx += v[i] / n, my += v[i + 1] / n;
  for (size_t i = 0; i < v.size(); i += 2) {
    const double dx = v[i] - mx, dy = v[i + 1] - my;
    cxx += dx * dx / n, cxy += dx * dy / n, cyy += dy * dy / n, right += v[i] > 0 ? 1 / n : 0;
  }
  std::printf("%-18s mean (%6.3f, %6.3f)  cov [%5.2f %5.2f; %5.2f %5.2f]  mass at x>0 %.3f\n", name, mx, my, cxx, cxy,
              cxy, cyy, right);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "flow_toy.png";
  int64_t n = 3000, steps = 30;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--samples") && i + 1 < argc) n = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoll(argv[++i]);
    else out = argv[i];
  }
  try {
    GaussianMixtureFlow mix({{{-2.0, 0.0}, 0.5, 0.4}, {{2.0, 1.5}, 0.7, 0.35}, {{0.5, -2.5}, 0.4, 0.25}});
    Generator gen(11);
    const Tensor noise = randn({n, 2}, gen);
    const auto m = mix.mean();
    const auto c = mix.covariance();
    std::printf("%-18s mean (%6.3f, %6.3f)  cov [%5.2f %5.2f; %5.2f %5.2f]\n", "target", m[0], m[1], c[0], c[1], c[2], c[3]);
    auto flow = [&](int only) {
      return [&mix, only](const Tensor& x, float t, int64_t) {
        return only < 0 ? ModelOutputs{mix.velocity(x, t / 1000.0)}
                        : ModelOutputs{mix.velocity(x, t / 1000.0, only), mix.velocity(x, t / 1000.0)};
      };
    };
    Image img(3 * kPanel, 2 * kPanel);
    draw_density(img, 0, 0, mix);
    struct Run {
      const char* name;
      std::unique_ptr<Scheduler> s;
      GuidanceConfig guidance;
    };
    std::vector<Run> runs;
    runs.push_back({"euler", std::make_unique<FlowMatchEuler>(), {}});
    runs.push_back({"heun", std::make_unique<FlowMatchHeun>(), {}});
    runs.push_back({"pingpong", std::make_unique<PingPong>(), {}});
    runs.push_back({"euler+cfg(2) c1", std::make_unique<FlowMatchEuler>(), {.kind = GuidanceKind::Cfg, .scale = 2.0f}});
    runs.push_back({"euler+apg(3) c1", std::make_unique<FlowMatchEuler>(),
                    {.kind = GuidanceKind::Apg, .scale = 3.0f, .apg = {.norm_threshold = 0, .dims = {-1}}}});
    for (size_t i = 0; i < runs.size(); ++i) {
      Generator sg(100 + i);
      const bool guided = runs[i].guidance.kind != GuidanceKind::None;
      Tensor x = run_pipeline(*runs[i].s, noise, flow(guided ? 1 : -1),
                              {.num_inference_steps = runs[i].s->order() == 2 ? steps / 2 : steps,
                               .guidance = runs[i].guidance, .generator = &sg});
      report(runs[i].name, x);
      const int panel = int(i) + 1;
      draw_points(img, (panel % 3) * kPanel, (panel / 3) * kPanel, x);
    }
    write_png(out, img);
    std::printf("wrote %s: target density, then euler, heun, pingpong, cfg and apg toward component 1\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flow_toy: error: %s\n", e.what());
    return 1;
  }
}
