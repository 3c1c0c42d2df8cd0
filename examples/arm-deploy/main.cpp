//===- main.cpp - run a qsim-compiled detector on a device ----------------===//
//
// The deployment example: the model compiled by qsim-compile (model.o +
// model.h), the plain C runtime (runtime/qsim_runtime.c) and qsim's image
// pipeline and box decoding (lib/Runtime, plain C++17, no MLIR). It loads an
// image exactly as qsim-run does, runs the model (or steps through it layer
// by layer), and prints the detections in qsim-run's format.
//
//   qsim-deploy IMAGE [--names coco.names] [--thresh 0.25] [--nms 0.45]
//               [--step] [--dump-layers DIR] [--compare-dumps DIR]
//               [--rtol 1e-4] [--rtol-f16 2e-3] [--repeat N] [--time-layers]
//               [--threads N]
//
// --threads runs each layer's work on N threads (default: the model's,
// qsim-compile --threads); the results are bit-exact to one thread.
// --compare-dumps checks every layer against `qsim-run --dump-layers DIR`
// (int8 layers must be identical, fp32 layers within --rtol of the
// reference's largest magnitude, fp16 layers and what they feed within
// --rtol-f16, two binary16 steps) and exits with 1 on a mismatch.
//
//===----------------------------------------------------------------------===//

#include "model.h"

#include "qsim/Runtime/Detection.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Runtime/Tensor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace qsim;

namespace {

struct Options {
  std::string image, names, dumpDir, compareDir;
  float thresh = 0.25f, nms = 0.45f, rtol = 1e-4f, rtolF16 = 2e-3f;
  bool step = false, timeLayers = false;
  int repeat = 0;
  int threads = 0; // 0: the model's default (qsim-compile --threads)
};

int usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s IMAGE [--names F] [--thresh 0.25] [--nms 0.45] [--step]\n"
          "          [--dump-layers DIR] [--compare-dumps DIR] [--rtol 1e-4]\n"
          "          [--rtol-f16 2e-3] [--repeat N] [--time-layers]\n"
          "          [--threads N]\n"
          "Runs the compiled model '%s' (%d layers) on IMAGE and prints its "
          "detections.\n",
          argv0, model_desc.name, (int)model_desc.num_layers);
  return 2;
}

bool parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *what) -> const char * {
      if (i + 1 >= argc) {
        fprintf(stderr, "qsim-deploy: error: %s needs a value\n", what);
        return nullptr;
      }
      return argv[++i];
    };
    const char *v = nullptr;
    if (a == "--step") {
      o.step = true;
    } else if (a == "--time-layers") {
      o.timeLayers = true;
    } else if (a == "--names" || a == "--dump-layers" ||
               a == "--compare-dumps" || a == "--thresh" || a == "--nms" ||
               a == "--rtol" || a == "--rtol-f16" || a == "--repeat" ||
               a == "--threads") {
      if (!(v = value(a.c_str())))
        return false;
      if (a == "--names")
        o.names = v;
      else if (a == "--dump-layers")
        o.dumpDir = v;
      else if (a == "--compare-dumps")
        o.compareDir = v;
      else if (a == "--thresh")
        o.thresh = strtof(v, nullptr);
      else if (a == "--nms")
        o.nms = strtof(v, nullptr);
      else if (a == "--rtol")
        o.rtol = strtof(v, nullptr);
      else if (a == "--rtol-f16")
        o.rtolF16 = strtof(v, nullptr);
      else if (a == "--threads") {
        o.threads = atoi(v);
        if (o.threads < 1) {
          fprintf(stderr, "qsim-deploy: error: --threads must be at least 1\n");
          return false;
        }
      } else
        o.repeat = atoi(v);
    } else if (!a.empty() && a[0] == '-') {
      fprintf(stderr, "qsim-deploy: error: unknown option '%s'\n", a.c_str());
      return false;
    } else if (o.image.empty()) {
      o.image = a;
    } else {
      fprintf(stderr, "qsim-deploy: error: more than one image\n");
      return false;
    }
  }
  return !o.image.empty();
}

std::string dumpName(const qsim_layer_info &l) {
  char name[96];
  snprintf(name, sizeof name, "/%03d_%s.npy", (int)l.index, l.kind);
  return name;
}

std::vector<float> layerAsChw(const qsim_context &ctx, int layer) {
  qsim_tensor t = qsim_layer_output(&ctx, layer);
  if (!t.data) // overwritten: a run-only build (--reuse-buffers)
    return {};
  std::vector<float> chw((size_t)t.c * t.h * t.w);
  qsim_tensor_to_chw(&t, chw.data());
  return chw;
}

// One layer against qsim-run's dump of it. Returns false on a mismatch.
bool compareLayer(const qsim_context &ctx, int layer,
                  const std::vector<float> &got, const std::string &dir,
                  const Options &o, std::vector<bool> &afterF16, int &missing) {
  const qsim_layer_info &l = model_desc.layers[layer];
  // binary16 rounds after every layer; a different summation order can move
  // a value by one step, and later layers carry that on.
  bool f16 = l.dtype == QSIM_F16;
  for (int i = 0; i < l.num_inputs; ++i)
    f16 = f16 || (l.inputs[i] >= 0 && afterF16[l.inputs[i]]);
  afterF16[layer] = f16;
  std::vector<int64_t> dims;
  std::vector<float> ref;
  std::string error;
  if (!rt::readNpyArray(dir + dumpName(l), dims, ref, error)) {
    ++missing;
    fprintf(stderr, "qsim-deploy: warning: %s\n", error.c_str());
    return true;
  }
  char name[64];
  qsim_layer_name(&ctx, layer, name, sizeof name);
  if (ref.size() != got.size()) {
    printf("%-26s MISMATCH: %zu values, reference has %zu\n", name, got.size(),
           ref.size());
    return false;
  }
  double maxAbs = 0, maxRef = 0;
  size_t differing = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = std::fabs((double)got[i] - ref[i]);
    maxAbs = std::max(maxAbs, d);
    maxRef = std::max(maxRef, (double)std::fabs(ref[i]));
    differing += got[i] != ref[i];
  }
  double rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
  bool exact = l.dtype == QSIM_I8;
  bool ok = exact ? differing == 0 : rel <= (f16 ? o.rtolF16 : o.rtol);
  printf("%-26s %-4s max-abs %.3g  rel %.3g  differing %zu/%zu  %s\n", name,
         l.dtype == QSIM_I8    ? "i8"
         : l.dtype == QSIM_F16 ? "f16"
                               : "f32",
         maxAbs, rel, differing, ref.size(), ok ? "ok" : "MISMATCH");
  return ok;
}

std::vector<rt::Detection> decode(const qsim_context &ctx, int imageW,
                                  int imageH, const Options &o,
                                  std::vector<std::vector<float>> &storage) {
  std::vector<rt::HeadSpec> specs;
  storage.clear();
  storage.reserve(model_desc.num_heads);
  for (int i = 0; i < model_desc.num_heads; ++i) {
    const qsim_yolo_head &h = model_desc.heads[i];
    const qsim_layer_info &l = model_desc.layers[h.layer];
    storage.push_back(layerAsChw(ctx, h.layer));
    rt::HeadSpec s;
    s.isYolo = true;
    s.yolo.data = storage.back().data();
    s.yolo.h = l.shape[1];
    s.yolo.w = l.shape[2];
    s.yolo.classes = h.classes;
    s.yolo.mask.assign(h.mask, h.mask + h.num_mask);
    s.yolo.anchors.assign(h.anchors, h.anchors + 2 * h.num);
    s.yolo.newCoords = h.new_coords != 0;
    s.yolo.layer = l.index;
    s.nmsKind = static_cast<rt::NmsKind>(h.nms_kind);
    s.betaNms = h.beta_nms;
    s.classes = h.classes;
    specs.push_back(std::move(s));
  }
  rt::DecodeOptions d;
  d.netW = model_desc.input_shape[2];
  d.netH = model_desc.input_shape[1];
  d.imageW = imageW;
  d.imageH = imageH;
  d.thresh = o.thresh;
  d.letterbox = rt::detectorPreprocess(model_desc.flavor != 0,
                                       model_desc.letterbox != 0) ==
                rt::Preprocess::Letterbox;
  d.flavor = model_desc.flavor ? rt::Flavor::PJReddie : rt::Flavor::AlexeyAB;
  return rt::decodeHeads(specs, d, o.nms);
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parseArgs(argc, argv, o))
    return usage(argv[0]);

  std::string error;
  rt::Image image;
  if (!rt::loadImage(o.image, image, error)) {
    fprintf(stderr, "qsim-deploy: error: %s\n", error.c_str());
    return 1;
  }
  int netH = model_desc.input_shape[1], netW = model_desc.input_shape[2];
  rt::Tensor input =
      rt::makeNetworkInput(image, netW, netH,
                           rt::detectorPreprocess(model_desc.flavor != 0,
                                                  model_desc.letterbox != 0));

  // The one allocation: arena + a scratch buffer per thread, sized at
  // compile time.
  int threads = o.threads ? o.threads : model_desc.threads;
  std::vector<unsigned char> memory(
      qsim_memory_bytes_threads(&model_desc, threads));
  qsim_context ctx;
  if (qsim_init_threads(&ctx, &model_desc, threads, memory.data(),
                        memory.size()) != 0) {
    fprintf(stderr, "qsim-deploy: error: cannot set up the model's memory\n");
    return 1;
  }
  qsim_set_input_chw(&ctx, input.f32());

  if (!o.dumpDir.empty())
    mkdir(o.dumpDir.c_str(), 0777);
  bool ok = true;
  int missing = 0;
  std::vector<bool> afterF16(model_desc.num_layers, false);
  auto afterLayer = [&](int layer) {
    std::vector<float> v = layerAsChw(ctx, layer); // real values, CHW
    if (o.step) {
      qsim_tensor t = qsim_layer_output(&ctx, layer);
      double sum = 0, lo = v.empty() ? 0 : v[0], hi = lo;
      for (float x : v) {
        sum += x;
        lo = std::min(lo, (double)x);
        hi = std::max(hi, (double)x);
      }
      char name[64];
      printf("%-26s %3d x %3d x %4d  min %9.4f  max %9.4f  mean %9.5f\n",
             qsim_layer_name(&ctx, layer, name, sizeof name), t.c, t.h, t.w, lo,
             hi, v.empty() ? 0.0 : sum / v.size());
    }
    if (!o.dumpDir.empty()) {
      const qsim_layer_info &l = model_desc.layers[layer];
      if (!rt::writeNpyArray(o.dumpDir + dumpName(l),
                             {l.shape[3], l.shape[1], l.shape[2]}, v.data(),
                             error)) {
        fprintf(stderr, "qsim-deploy: error: %s\n", error.c_str());
        ok = false;
      }
    }
    if (!o.compareDir.empty())
      ok &= compareLayer(ctx, layer, v, o.compareDir, o, afterF16, missing);
  };

  // Step mode (or when every layer is looked at): one layer at a time.
  if (o.step || !o.dumpDir.empty() || !o.compareDir.empty()) {
    for (int layer; (layer = qsim_step(&ctx)) >= 0;)
      afterLayer(layer);
  } else {
    qsim_run(&ctx);
  }

  if (o.repeat > 0) {
    std::vector<double> ms;
    for (int r = 0; r < o.repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      qsim_restart(&ctx);
      qsim_run(&ctx);
      ms.push_back(std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - t0)
                       .count());
    }
    std::sort(ms.begin(), ms.end());
    printf("forward: median %.2f ms over %d runs (min %.2f, max %.2f), %d "
           "thread%s\n",
           ms[ms.size() / 2], o.repeat, ms.front(), ms.back(),
           qsim_threads(&ctx), qsim_threads(&ctx) > 1 ? "s" : "");
  }

  if (o.timeLayers) {
    // Each layer's median over --repeat runs (at least 5), in model order.
    int reps = std::max(o.repeat, 5);
    std::vector<std::vector<double>> ms(model_desc.num_layers);
    for (int r = 0; r < reps; ++r) {
      qsim_restart(&ctx);
      for (int layer = 0; layer < model_desc.num_layers; ++layer) {
        auto t0 = std::chrono::steady_clock::now();
        qsim_step(&ctx);
        ms[layer].push_back(std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - t0)
                                .count());
      }
    }
    double total = 0;
    std::vector<double> med(model_desc.num_layers);
    for (int layer = 0; layer < model_desc.num_layers; ++layer) {
      std::sort(ms[layer].begin(), ms[layer].end());
      med[layer] = ms[layer][ms[layer].size() / 2];
      total += med[layer];
    }
    for (int layer = 0; layer < model_desc.num_layers; ++layer) {
      char name[64];
      printf("%-26s %9.3f ms %5.1f%%\n",
             qsim_layer_name(&ctx, layer, name, sizeof name), med[layer],
             total > 0 ? 100 * med[layer] / total : 0.0);
    }
    printf("%-26s %9.3f ms\n", "total", total);
  }

  std::vector<std::string> names;
  if (!o.names.empty() && !rt::readNames(o.names, names, error)) {
    fprintf(stderr, "qsim-deploy: error: %s\n", error.c_str());
    return 1;
  }
  std::vector<std::vector<float>> storage;
  std::vector<rt::Detection> dets = decode(ctx, image.w, image.h, o, storage);
  std::vector<rt::ReportedDetection> reported =
      rt::reportDetections(dets, image.w, image.h, o.thresh);
  // qsim-run's table, so that the two can be diffed.
  printf("%s: %dx%d\n", o.image.c_str(), image.w, image.h);
  if (reported.empty())
    printf("  no detections above the threshold (%zu candidates)\n",
           dets.size());
  else
    printf("  %-24s %7s %6s %6s %6s %6s\n", "class", "prob", "left", "top",
           "right", "bottom");
  for (const rt::ReportedDetection &r : reported) {
    std::string name = r.classId < (int)names.size()
                           ? names[r.classId]
                           : "class " + std::to_string(r.classId);
    printf("  %-24s %6.2f%% %6d %6d %6d %6d\n", name.c_str(), r.prob * 100,
           r.left, r.top, r.right, r.bottom);
  }
  if (missing)
    printf("%d layers had no reference dump\n", missing);
  if (!o.compareDir.empty())
    printf("compare: %s\n", ok ? "every layer matches" : "MISMATCH");
  qsim_release(&ctx);
  return ok ? 0 : 1;
}
