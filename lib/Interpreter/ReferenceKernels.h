//===- ReferenceKernels.h - the specification kernels -----------*- C++ -*-===//
//
// Plain loops that define what each qsim op computes in float, following
// docs/darknet.md §R4 (precision notes included: where Darknet evaluates in
// double, so do we). Each output element's sum is accumulated in Darknet's
// order, so the loops are deterministic whatever the thread count (threads
// split output channels, never a reduction).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_INTERPRETER_REFERENCEKERNELS_H
#define QSIM_LIB_INTERPRETER_REFERENCEKERNELS_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Dialect/QSim/IR/Shapes.h"

#include <cstdint>
#include <vector>

namespace qsim::interp::ref {

using shapes::CHW;

struct ConvParams {
  int64_t filters = 0, kh = 1, kw = 1, sy = 1, sx = 1, py = 0, px = 0;
  int64_t groups = 1, dilation = 1;
};

/// out = conv(in, weight) (+ bias when non-null). No activation.
void conv2d(const float *in, const CHW &inShape, const float *weight,
            const float *bias, const ConvParams &p, float *out,
            const CHW &outShape);

/// out[o] = sum_i weight[o][i] * in[i] (+ bias).
void connected(const float *in, int64_t inputs, const float *weight,
               const float *bias, int64_t outputs, float *out);

/// Batch norm with rolling statistics, per flavour (docs/darknet.md §R4.1,
/// §R4.2).
void batchNorm(const float *in, const CHW &shape, const float *scale,
               const float *mean, const float *variance, const float *bias,
               Flavor flavor, float *out);

/// In-place activation over a CHW tensor (the cross-channel normalize_*
/// activations need the shape).
void activate(float *x, const CHW &shape, Activation act, Flavor flavor);
/// One element (not for the normalize_* activations).
float activateOne(float x, Activation act, Flavor flavor);

void maxPool(const float *in, const CHW &inShape, int64_t size, int64_t sy,
             int64_t sx, int64_t padding, float *out, const CHW &outShape);
void avgPool(const float *in, const CHW &inShape, float *out);

/// Copies the route slice of one input (channels [groupId*C/G, ..+C/G)) to
/// `out` at channel offset `outChannelOffset`.
void routeSlice(const float *in, const CHW &inShape, int64_t groups,
                int64_t groupId, float *out, int64_t outChannelOffset);

/// out = in0 + sum of the others over the common channel prefix, then act.
void shortcut(const std::vector<const float *> &ins,
              const std::vector<CHW> &shapes, Activation act, Flavor flavor,
              float *out);

void upsample(const float *in, const CHW &inShape, int64_t stride, float scale,
              float *out, const CHW &outShape);
void reorg(const float *in, const CHW &inShape, int64_t stride, bool reverse,
           float *out);

/// Darknet's reorg_cpu over the dims it is called with: reverse=0 gathers
/// out[A] = in[B], reverse=1 scatters out[B] = in[A] (docs/darknet.md
/// §R4.9). [reorg] calls it with the input dims, AlexeyAB's [reorg3d] with
/// the output dims; int8 moves the same bytes.
template <typename T>
void reorgCpu(const T *in, const CHW &dims, int64_t s, bool reverse, T *out) {
  const int64_t w = dims.w, h = dims.h, c = dims.c;
  const int64_t outC = c / (s * s);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t i = 0; i < w; ++i) {
        int64_t a = i + w * (j + h * k);
        int64_t c2 = k % outC, o = k / outC;
        int64_t b = (i * s + o % s) + w * s * ((j * s + o / s) + h * s * c2);
        if (reverse)
          out[b] = in[a];
        else
          out[a] = in[b];
      }
}
/// Darknet's [crop] at inference: the centred outShape window, times
/// `scale` plus `shift` (docs/darknet.md §R4.14).
void crop(const float *in, const CHW &inShape, const CHW &outShape, float scale,
          float shift, float *out);
void scaleChannels(const float *scales, const float *features,
                   const CHW &featureShape, bool scaleWH, Activation act,
                   Flavor flavor, float *out);
void softmax(const float *in, int64_t n, int64_t groups, float temperature,
             float *out);

struct YoloParams {
  int64_t classes = 0, n = 0;
  float scaleXY = 1.0f;
  bool newCoords = false;
};
/// The [yolo] layer's forward (logistic and scale_x_y; docs/darknet.md
/// §R4.10).
void yolo(const float *in, const CHW &shape, const YoloParams &p, Flavor flavor,
          float *out);

struct RegionParams {
  int64_t classes = 0, coords = 4, num = 1;
  bool softmax = false;
};
/// The [region] layer's forward per flavour (docs/darknet.md §R4.11).
void region(const float *in, const CHW &shape, const RegionParams &p,
            Flavor flavor, float *out);

//===----------------------------------------------------------------------===//
// Layers of the Darknet zoo (docs/darknet.md §R4.16-§R4.21)
//===----------------------------------------------------------------------===//

/// [local]: out[f][p] = bias[f][p] + sum_k weight[p][f][k] * col[k][p], k
/// over (channel, ky, kx) as Darknet's im2col, from the bias in that order.
/// No activation.
void local(const float *in, const CHW &inShape, const float *weight,
           const float *bias, int64_t size, int64_t stride, int64_t pad,
           float *out, const CHW &outShape);
/// [local_avgpool]: the mean of the in-bounds taps of each maxpool window.
void localAvgPool(const float *in, const CHW &inShape, int64_t size, int64_t sy,
                  int64_t sx, int64_t padding, float *out, const CHW &outShape);
/// AlexeyAB's [reorg3d] (docs/darknet.md §R4.18).
void reorg3d(const float *in, const CHW &inShape, int64_t stride, bool reverse,
             float *out, const CHW &outShape);
/// [sam]: out[i] = in[i] * features[i], then act.
void sam(const float *in, const float *features, const CHW &shape,
         Activation act, Flavor flavor, float *out);
/// [detection] (YOLOv1): a copy, with a softmax over each of the side²
/// class blocks when `softmax`.
void detection(const float *in, int64_t n, int64_t side, int64_t classes,
               bool softmax, float *out);
/// [Gaussian_yolo]: logistic on all but mu_w, mu_h, then scale_x_y on
/// mu_x, mu_y (docs/darknet.md §R4.20).
void gaussianYolo(const float *in, const CHW &shape, int64_t classes, int64_t n,
                  float scaleXY, float *out);
/// Darknet's binarize_weights: each filter's `size` weights become
/// +mean|w| (w > 0) or -mean|w|.
void binarizeWeights(const float *weights, int64_t filters, int64_t size,
                     float *out);
/// Darknet's binarize_cpu: +1 where x > 0, else -1.
void binarizeInput(const float *in, int64_t n, float *out);

} // namespace qsim::interp::ref

#endif
