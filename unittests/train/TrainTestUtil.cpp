//===- TrainTestUtil.cpp - synthetic models and images for lib/Train tests ===//

#include "TrainTestUtil.h"

#include "llvm/Support/FileSystem.h"

#include <cmath>
#include <cstdio>

using namespace qsim;
using namespace qsim::train;
using namespace qsim::train::test;

// Convolutions: BN+leaky, depthwise strided (relu), grouped dilated (BN,
// swish), 1x1 (mish); maxpool with Darknet's default padding at stride 1
// and 2; a grouped route (group_id 1) of two inputs; a shortcut with
// activation; nearest upsampling; a concatenation; two yolo heads (one
// with scale_x_y).
const char *test::kDetectorCfg = R"(
[net]
width=24
height=24
channels=3
hue=.1
saturation=1.5
exposure=1.5

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=8
size=3
groups=8
stride=2
pad=1
activation=relu

[convolutional]
batch_normalize=1
filters=12
size=3
dilation=2
pad=1
groups=2
activation=swish

[maxpool]
size=2
stride=1

[maxpool]
size=3
stride=2

[convolutional]
filters=12
size=1
activation=mish

[route]
layers=-1,-2
groups=2
group_id=1

[shortcut]
from=-2
activation=leaky

[upsample]
stride=2

[route]
layers=-1,2

[convolutional]
filters=14
size=1
activation=linear

[yolo]
mask=0,1
anchors=4,6, 12,10, 20,20
classes=2
num=3
scale_x_y=1.05
jitter=.2
ignore_thresh=.5
iou_loss=ciou
iou_normalizer=0.07

[route]
layers=-4

[convolutional]
filters=14
size=3
stride=2
pad=1
activation=linear

[yolo]
mask=1,2
anchors=4,6, 12,10, 20,20
classes=2
num=3
)";

// reorg both ways, Darknet's summing downsample with a scale, a
// standalone batch norm, [activation], global avgpool, connected,
// scale_channels per channel and per pixel, dropout, a region head with
// softmax.
const char *test::kMiscCfg = R"(
[net]
width=16
height=16
channels=3

[convolutional]
filters=8
size=3
pad=1
activation=logistic

[reorg]
stride=2

[reorg]
stride=2
reverse=1

[upsample]
stride=-2
scale=0.5

[batchnorm]

[activation]
activation=elu

[avgpool]

[connected]
output=8
activation=logistic

[scale_channels]
from=-3

[dropout]
probability=.3

[convolutional]
filters=1
size=1
activation=logistic

[scale_channels]
from=-2
scale_wh=1
activation=leaky

[convolutional]
filters=16
size=1
activation=linear

[region]
anchors=1,1, 2,2
classes=3
coords=4
num=2
softmax=1
)";

const char *test::kSoftmaxCfg = R"(
[net]
width=12
height=12
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=relu6

[convolutional]
filters=6
size=1
activation=linear

[softmax]
groups=2
temperature=2
)";

const char *test::kNewCoordsCfg = R"(
[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
pad=1
activation=hard_mish

[maxpool]
size=2
stride=2

[convolutional]
filters=14
size=1
activation=logistic

[yolo]
mask=0,1
anchors=4,6, 12,10
classes=2
num=2
new_coords=1
scale_x_y=2.0
)";

const char *test::kTinyYoloCfg = R"(
[net]
width=32
height=32
channels=3
learning_rate=0.002
momentum=0.9
decay=0.0005
burn_in=0
hue=.1
saturation=1.5
exposure=1.5

[convolutional]
batch_normalize=1
filters=8
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
pad=1
activation=leaky

[convolutional]
filters=14
size=1
activation=linear

[yolo]
mask=0,1
anchors=6,6, 14,14
classes=2
num=2
jitter=.1
ignore_thresh=.5
)";

std::string test::activationCfg(const std::string &act) {
  return "[net]\nwidth=8\nheight=8\nchannels=3\n"
         "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=" +
         act +
         "\n[convolutional]\nfilters=6\nsize=1\nactivation=linear\n"
         "[activation]\nactivation=" +
         act + "\n[connected]\noutput=5\nactivation=" + act + "\n";
}

mlir::DialectRegistry test::registry() {
  mlir::DialectRegistry r;
  registerQSimDialects(r);
  return r;
}

mlir::OwningOpRef<mlir::ModuleOp> test::importCfg(mlir::MLIRContext &ctx,
                                                  const std::string &cfg,
                                                  uint64_t seed,
                                                  qsim::Flavor flavor) {
  darknet::ImportOptions io;
  io.randomSeed = seed;
  io.flavor = flavor;
  return darknet::importDarknetFromString(&ctx, cfg, "test.cfg", io);
}

Blob test::randomInput(const NetSpec &spec, int n, uint32_t seed) {
  Blob b;
  b.n = n;
  b.c = spec.input.c;
  b.h = spec.input.h;
  b.w = spec.input.w;
  b.data.resize((size_t)n * b.c * b.h * b.w);
  uint32_t s = seed * 2654435761u + 1;
  for (double &v : b.data) {
    s = s * 1664525u + 1013904223u;
    v = (s >> 8) * (1.0 / 16777216.0);
  }
  return b;
}

std::vector<std::vector<float>>
test::interpreterLayers(mlir::ModuleOp module, const Blob &input, int k) {
  interp::ExecutorOptions eo;
  eo.kernels = interp::KernelSet::Reference;
  eo.threads = 1;
  eo.keepAllOutputs = true;
  std::string error;
  auto ex = interp::Executor::create(module, eo);
  if (!ex)
    return {};
  rt::Tensor in(rt::DType::F32, input.c, input.h, input.w);
  size_t plane = (size_t)input.c * input.h * input.w;
  for (size_t i = 0; i < plane; ++i)
    in.f32()[i] = (float)input.data[k * plane + i];
  ex->setInput(in);
  ex->run();
  std::vector<std::vector<float>> out;
  for (size_t s = 0; s < ex->steps().size(); ++s) {
    size_t layer = ex->steps()[s].layer;
    if (out.size() <= layer)
      out.resize(layer + 1);
    out[layer] = ex->stepOutput(s).toFloat();
  }
  return out;
}

double test::relativeMaxError(const std::vector<float> &ref, const double *test,
                              size_t n) {
  double maxRef = 0, maxErr = 0;
  for (size_t i = 0; i < n && i < ref.size(); ++i) {
    maxRef = std::max(maxRef, std::fabs((double)ref[i]));
    maxErr = std::max(maxErr, std::fabs((double)ref[i] - test[i]));
  }
  return maxRef > 0 ? maxErr / maxRef : maxErr;
}

std::string test::writeImages(int count, int w, int h, int classes,
                              uint32_t seed) {
  llvm::SmallString<128> dir;
  llvm::sys::fs::createUniqueDirectory("qsim-train-images", dir);
  uint32_t s = seed * 747796405u + 2891336453u;
  auto next = [&] {
    s = s * 1664525u + 1013904223u;
    return s >> 8;
  };
  for (int k = 0; k < count; ++k) {
    std::string stem = std::string(dir) + "/img" + std::to_string(k);
    int bw = w / 4 + next() % (w / 3), bh = h / 4 + next() % (h / 3);
    int bx = next() % (w - bw), by = next() % (h - bh);
    int cls = classes ? k % classes : 0;
    FILE *f = fopen((stem + ".ppm").c_str(), "wb");
    fprintf(f, "P6 %d %d 255\n", w, h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        bool inBox = x >= bx && x < bx + bw && y >= by && y < by + bh;
        for (int c = 0; c < 3; ++c) {
          int v = (x * (5 + k) + y * 11 + c * 60 + (next() % 24)) % 256;
          if (inBox)
            v = c == cls ? 230 : 40;
          fputc(v, f);
        }
      }
    fclose(f);
    if (!classes)
      continue;
    FILE *l = fopen((stem + ".txt").c_str(), "w");
    fprintf(l, "%d %.6f %.6f %.6f %.6f\n", cls, (bx + bw / 2.0) / w,
            (by + bh / 2.0) / h, (double)bw / w, (double)bh / h);
    fclose(l);
  }
  return std::string(dir);
}
