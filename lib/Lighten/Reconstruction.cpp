//===- Reconstruction.cpp - least-squares refit after lightening ----------===//

#include "qsim/Lighten/Reconstruction.h"
#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Evaluation/LayerActivations.h"
#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Runtime/Image.h"

#include <Eigen/Dense>

#include <cmath>
#include <random>

using namespace mlir;
using namespace qsim;
using namespace qsim::lighten;

namespace {

using Matrix =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The layers of `module` by Darknet index.
FailureOr<std::map<int64_t, Layer>> layersByIndex(ModuleOp module) {
  auto layers = getMainLayers(module);
  if (failed(layers))
    return failure();
  std::map<int64_t, Layer> out;
  for (Layer &l : *layers)
    out.emplace(l.index, std::move(l));
  return out;
}

/// The same positions for the original and the lightened layer: one
/// generator per (layer, image).
std::vector<int64_t> positionsFor(const ReconstructOptions &o, int64_t layer,
                                  size_t image, int64_t positions) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + layer * 1000003ull +
                      image);
  return eval::samplePositions(positions, o.samplesPerImage, rng);
}

/// The original layer's pre-activation outputs (filters `kept`) at the
/// sampled positions of every image: rows of kept.size() values.
struct LayerTargets {
  std::vector<int64_t> kept;
  std::vector<std::vector<float>> perImage;
};

/// Pre-activation output rows = patches x weight^T + bias.
void appendLinearOutputs(const std::vector<float> &patches, int64_t patchSize,
                         const std::vector<float> &weight,
                         const std::vector<float> &bias,
                         const std::vector<int64_t> &filters,
                         std::vector<float> &out) {
  size_t rows = patches.size() / patchSize;
  for (size_t r = 0; r < rows; ++r) {
    const float *p = patches.data() + r * patchSize;
    for (int64_t f : filters) {
      const float *w = weight.data() + f * patchSize;
      double sum = bias.empty() ? 0.0 : bias[f];
      for (int64_t k = 0; k < patchSize; ++k)
        sum += (double)w[k] * p[k];
      out.push_back((float)sum);
    }
  }
}

/// Records the targets of every request in one pass of the original:
/// targets[i] belongs to requests[i].
LogicalResult recordTargets(ModuleOp original,
                            const std::map<int64_t, Layer> &layers,
                            const std::vector<rt::Tensor> &inputs,
                            ArrayRef<RefitRequest> requests,
                            const ReconstructOptions &o,
                            std::vector<LayerTargets> &targets) {
  std::vector<int64_t> indices;
  std::map<int64_t, std::pair<std::vector<float>, std::vector<float>>> params;
  targets.resize(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const RefitRequest &r = requests[i];
    auto it = layers.find(r.originalLayer);
    auto conv =
        it == layers.end() ? Conv2DOp() : dyn_cast<Conv2DOp>(it->second.head);
    if (!conv)
      return original.emitError() << "layer " << r.originalLayer
                                  << " of the original is not a convolution";
    for (int64_t f : r.originalFilters)
      if (f < 0 || f >= conv.getFilters())
        return conv.emitError()
               << "reconstruction: filter " << f << " does not exist";
    targets[i].kept = r.originalFilters;
    targets[i].perImage.resize(inputs.size());
    if (params.count(r.originalLayer))
      continue;
    indices.push_back(r.originalLayer);
    params[r.originalLayer] = {getFloats(conv.getWeightAttr()),
                               conv.getBias() ? getFloats(*conv.getBias())
                                              : std::vector<float>()};
  }
  auto sink = [&](size_t image, int64_t layer,
                  const eval::LayerActivations &a) {
    auto conv = cast<Conv2DOp>(layers.at(layer).head);
    auto g = eval::ConvPatchGeometry::of(conv);
    for (size_t i = 0; i < requests.size(); ++i) {
      if (requests[i].originalLayer != layer)
        continue;
      // The positions are drawn for the refit layer (same output size).
      std::vector<int64_t> pos =
          positionsFor(o, requests[i].layer, image, g.outputPositions());
      std::vector<float> patches;
      eval::appendConvPatches(g, a.inputs[0].f32(), 0, pos, patches);
      appendLinearOutputs(patches, g.patchSize(), params[layer].first,
                          params[layer].second, targets[i].kept,
                          targets[i].perImage[image]);
    }
  };
  return eval::recordLayerActivations(original, inputs, indices, sink);
}

/// The normal equations of one layer's fit, accumulated over images:
/// [X' 1]^T [X' 1] and [X' 1]^T Y, and Y^T Y.
struct NormalEquations {
  Matrix gram, cross;
  double targetEnergy = 0;
  int64_t samples = 0;
};

/// Squared fit error of `w` (rows: filters, columns: patch then bias).
double fitError(const NormalEquations &n, const Matrix &w) {
  // ||Xw^T - Y||^2 = tr(w G w^T) - 2 tr(w C) + ||Y||^2, G = gram, C = cross.
  double quadratic = (w * n.gram).cwiseProduct(w).sum();
  double linear = (w * n.cross).trace();
  return std::max(0.0, quadratic - 2 * linear + n.targetEnergy);
}

/// Writes the fitted weights (and bias) into the conv (or its batch norm).
void writeBack(const Layer &layer, const Matrix &w, int64_t patchSize,
               bool withBias, StringRef suffix = "_refit") {
  auto conv = cast<Conv2DOp>(layer.head);
  MLIRContext *ctx = conv.getContext();
  int64_t filters = w.rows();
  std::vector<float> weight(filters * patchSize), bias(filters);
  for (int64_t f = 0; f < filters; ++f) {
    for (int64_t k = 0; k < patchSize; ++k)
      weight[f * patchSize + k] = (float)w(f, k);
    bias[f] = withBias ? (float)w(f, patchSize) : 0.0f;
  }
  std::string base = "layer" + std::to_string(layer.index) + suffix.str();
  auto shape = conv.getWeightAttr().getShapedType().getShape();
  conv->setAttr("weight", makeFloatAttr(ctx, shape, base + "_weight", weight));
  // Refitted weights only approximate the output the statistics describe.
  dropBatchNormStats(conv);
  if (!withBias)
    return;
  if (conv.getBias()) {
    conv->setAttr("bias", makeFloatAttr(ctx, {filters}, base + "_bias", bias));
  } else if (BatchNormOp bn = layer.batchNorm; bn && bn.getMean()) {
    // BN((Wx + d) - mean) = BN(Wx - (mean - d)): the offset moves into the
    // mean, the conv keeps no bias.
    std::vector<float> mean = getFloats(*bn.getMean());
    for (int64_t f = 0; f < filters; ++f)
      mean[f] -= bias[f];
    bn->setAttr("mean", makeFloatAttr(ctx, {filters}, base + "_bn_mean", mean));
  }
}

/// The layer's weights as a fit matrix (rows: filters; columns: the patch,
/// then the bias when there is one).
Matrix currentWeights(Conv2DOp conv, int64_t patchSize, bool withBias) {
  std::vector<float> w = getFloats(conv.getWeightAttr());
  std::vector<float> b =
      conv.getBias() ? getFloats(*conv.getBias()) : std::vector<float>();
  int64_t filters = conv.getFilters();
  Matrix m = Matrix::Zero(filters, patchSize + (withBias ? 1 : 0));
  for (int64_t f = 0; f < filters; ++f) {
    for (int64_t k = 0; k < patchSize; ++k)
      m(f, k) = w[f * patchSize + k];
    if (withBias && !b.empty())
      m(f, patchSize) = b[f]; // with a BN, the offset is 0 (the mean holds it)
  }
  return m;
}

NormalEquations zeroEquations(int64_t cols, int64_t filters) {
  NormalEquations n;
  n.gram = Matrix::Zero(cols, cols);
  n.cross = Matrix::Zero(cols, filters);
  return n;
}

void accumulate(NormalEquations &n, const Matrix &x, const Matrix &y) {
  n.gram.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
  n.cross.noalias() += x.transpose() * y;
  n.targetEnergy += y.squaredNorm();
  n.samples += x.rows();
}

void symmetrize(NormalEquations &n) {
  n.gram.triangularView<Eigen::StrictlyUpper>() =
      n.gram.transpose().triangularView<Eigen::StrictlyUpper>();
}

/// The ridge solution of `n` with lambda = relative x mean diagonal,
/// shrunk towards `prior` (the layer's weights as they are) rather than
/// towards zero: min ||X'w^T - Y||^2 + lambda ||w - prior||^2. With fewer
/// samples than unknowns (the deep layers see ~100 positions per image) a
/// pull towards zero erases what the samples do not constrain; the prior
/// keeps it.
Matrix solveRidge(const NormalEquations &n, double relative,
                  const Matrix &prior) {
  double lambda = relative * std::max(n.gram.diagonal().mean(), 1e-12);
  Matrix regularised = n.gram;
  regularised.diagonal().array() += lambda;
  Matrix rhs = n.cross + lambda * prior.transpose();
  return regularised.ldlt().solve(rhs).transpose();
}

/// Fits one layer of `module` on its current inputs. Every fourth sampled
/// position is held out: the ridge is chosen on them (a fit with more
/// unknowns than samples would otherwise learn the noise), and the refit is
/// kept only if it is better there than the weights as they are.
LogicalResult refitLayer(ModuleOp module, const Layer &layer,
                         const std::vector<rt::Tensor> &inputs,
                         const LayerTargets &targets,
                         const ReconstructOptions &o,
                         ReconstructedLayer &report) {
  auto conv = cast<Conv2DOp>(layer.head);
  auto g = eval::ConvPatchGeometry::of(conv);
  int64_t p = g.patchSize(), filters = conv.getFilters();
  if (g.groups != 1)
    return conv.emitError() << "reconstruction of grouped convolutions is "
                               "not supported";
  if ((int64_t)targets.kept.size() != filters)
    return conv.emitError()
           << "reconstruction: " << targets.kept.size()
           << " original filters named for " << filters << " filters";
  BatchNormOp bn = layer.batchNorm;
  bool withBias = conv.getBias() || (bn && bn.getMean());
  int64_t cols = p + (withBias ? 1 : 0);
  NormalEquations fit = zeroEquations(cols, filters);
  NormalEquations heldOut = zeroEquations(cols, filters);
  auto sink = [&](size_t image, int64_t, const eval::LayerActivations &a) {
    std::vector<int64_t> pos =
        positionsFor(o, layer.index, image, g.outputPositions());
    std::vector<float> patches;
    eval::appendConvPatches(g, a.inputs[0].f32(), 0, pos, patches);
    const std::vector<float> &y = targets.perImage[image];
    for (int part = 0; part < 2; ++part) {
      std::vector<int64_t> rows;
      for (int64_t r = 0; r < (int64_t)pos.size(); ++r)
        if ((r % 4 == 3) == (part == 1))
          rows.push_back(r);
      Matrix x(rows.size(), cols), t(rows.size(), filters);
      for (size_t i = 0; i < rows.size(); ++i) {
        for (int64_t k = 0; k < p; ++k)
          x(i, k) = patches[rows[i] * p + k];
        if (withBias)
          x(i, p) = 1.0;
        for (int64_t f = 0; f < filters; ++f)
          t(i, f) = y[rows[i] * filters + f];
      }
      accumulate(part == 0 ? fit : heldOut, x, t);
    }
  };
  if (failed(eval::recordLayerActivations(module, inputs, {layer.index}, sink)))
    return failure();
  symmetrize(fit);
  symmetrize(heldOut);

  Matrix current = currentWeights(conv, p, withBias);
  double energy = std::max(heldOut.targetEnergy, 1e-30);
  double best = fitError(heldOut, current);
  double bestRidge = -1;
  for (double relative : {o.ridge, 1e-3, 1e-2, 1e-1, 1.0}) {
    Matrix w = solveRidge(fit, relative, current);
    double e = w.allFinite() ? fitError(heldOut, w) : INFINITY;
    if (e < best)
      best = e, bestRidge = relative;
  }
  report.layer = layer.index;
  report.samples = fit.samples + heldOut.samples;
  report.errorBefore = std::sqrt(fitError(heldOut, current) / energy);
  report.errorAfter = std::sqrt(best / energy);
  if (bestRidge < 0)
    return success(); // kept as it was
  // The final fit uses every sample, with the ridge the held-out ones chose.
  NormalEquations all = fit;
  all.gram += heldOut.gram;
  all.cross += heldOut.cross;
  all.targetEnergy += heldOut.targetEnergy;
  Matrix w = solveRidge(all, bestRidge, current);
  if (!w.allFinite()) {
    report.errorAfter = report.errorBefore;
    return success();
  }
  writeBack(layer, w, p, withBias);
  return success();
}

} // namespace

LogicalResult
qsim::lighten::loadRefitImages(ModuleOp module,
                               const std::vector<std::string> &items,
                               int maxImages, std::vector<rt::Tensor> &inputs) {
  std::string error;
  std::vector<std::string> files;
  for (const std::string &item : items)
    if (!rt::listImageFiles(item, files, error))
      return module.emitError() << error;
  if (maxImages > 0 && (int)files.size() > maxImages)
    files.resize(maxImages);
  if (!eval::loadNetworkInputs(module, files, inputs, error))
    return module.emitError() << error;
  return success();
}

LogicalResult
qsim::lighten::reconstructConvs(ModuleOp module, ModuleOp original,
                                const std::vector<rt::Tensor> &networkInputs,
                                std::vector<RefitRequest> requests,
                                const ReconstructOptions &options,
                                std::vector<ReconstructedLayer> &result) {
  ReconstructOptions o = options;
  o.samplesPerImage = options.positionsPerImage(networkInputs.size());
  if (requests.empty())
    return success();
  if (networkInputs.empty())
    return module.emitError() << "reconstruction needs at least one image";
  if (o.samplesPerImage < 1)
    return module.emitError() << "reconstruction: samples must be positive";
  llvm::sort(requests, [](const RefitRequest &a, const RefitRequest &b) {
    return a.layer < b.layer;
  });
  auto originalLayers = layersByIndex(original);
  if (failed(originalLayers))
    return failure();
  std::vector<LayerTargets> targets;
  if (failed(recordTargets(original, *originalLayers, networkInputs, requests,
                           o, targets)))
    return failure();
  // In layer order, each fit on the inputs the earlier fits produce.
  for (size_t i = 0; i < requests.size(); ++i) {
    int64_t index = requests[i].layer;
    auto layers = layersByIndex(module);
    if (failed(layers))
      return failure();
    auto it = layers->find(index);
    if (it == layers->end() || !isa<Conv2DOp>(it->second.head))
      return module.emitError() << "layer " << index << " is not a convolution";
    auto g = eval::ConvPatchGeometry::of(cast<Conv2DOp>(it->second.head));
    auto og = eval::ConvPatchGeometry::of(
        cast<Conv2DOp>(originalLayers->at(requests[i].originalLayer).head));
    if (g.outH != og.outH || g.outW != og.outW)
      return it->second.head->emitError()
             << "reconstruction: the output size differs from layer "
             << requests[i].originalLayer << " of the original";
    ReconstructedLayer r;
    if (failed(refitLayer(module, it->second, networkInputs, targets[i], o, r)))
      return failure();
    result.push_back(r);
  }
  return success();
}

LogicalResult qsim::lighten::reconstructPrunedConvs(
    ModuleOp module, ModuleOp original,
    const std::vector<rt::Tensor> &networkInputs,
    const std::map<int64_t, std::vector<int64_t>> &keptFilters,
    const ReconstructOptions &o, std::vector<ReconstructedLayer> &result) {
  std::vector<RefitRequest> requests;
  for (auto &[layer, filters] : keptFilters)
    requests.push_back({layer, layer, filters});
  return reconstructConvs(module, original, networkInputs, std::move(requests),
                          o, result);
}

namespace {

/// X'^T X' of the layer's input patches on the images (the model as it is
/// now), and the number of rows. With `withOnes`, X' has a last column of
/// ones (the bias's input): the gram's last row holds the patch sums and
/// the row count.
FailureOr<Matrix> inputGram(ModuleOp module, const Layer &layer,
                            const std::vector<rt::Tensor> &inputs,
                            const ReconstructOptions &o, int64_t &rows,
                            bool withOnes = false) {
  auto conv = cast<Conv2DOp>(layer.head);
  auto g = eval::ConvPatchGeometry::of(conv);
  int64_t p = g.patchSize();
  int64_t cols = p + (withOnes ? 1 : 0);
  Matrix gram = Matrix::Zero(cols, cols);
  rows = 0;
  auto sink = [&](size_t image, int64_t, const eval::LayerActivations &a) {
    std::vector<int64_t> pos =
        positionsFor(o, layer.index, image, g.outputPositions());
    std::vector<float> patches;
    eval::appendConvPatches(g, a.inputs[0].f32(), 0, pos, patches);
    Matrix x(pos.size(), cols);
    for (size_t r = 0; r < pos.size(); ++r) {
      for (int64_t k = 0; k < p; ++k)
        x(r, k) = patches[r * p + k];
      if (withOnes)
        x(r, p) = 1.0;
    }
    gram.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
    rows += pos.size();
  };
  if (failed(eval::recordLayerActivations(module, inputs, {layer.index}, sink)))
    return failure();
  gram.triangularView<Eigen::StrictlyUpper>() =
      gram.transpose().triangularView<Eigen::StrictlyUpper>();
  return gram;
}

/// What multiplies each filter's pre-activation output: gamma / sd of the
/// batch norm after the conv; empty without one.
std::vector<double> outputScale(const Layer &layer) {
  BatchNormOp bn = layer.batchNorm;
  if (!bn || !bn.getScale() || !bn.getVariance())
    return {};
  std::vector<float> gamma = getFloats(*bn.getScale());
  std::vector<float> var = getFloats(*bn.getVariance());
  bool alexey = getFlavor(bn) == Flavor::AlexeyAB;
  std::vector<double> s(gamma.size());
  for (size_t f = 0; f < gamma.size(); ++f) {
    double sd = alexey ? std::sqrt((double)var[f] + 1e-5)
                       : std::sqrt((double)var[f]) + 1e-6;
    s[f] = std::fabs((double)gamma[f]) / sd;
  }
  return s;
}

/// -W's smallest-magnitude `sparsity` share of the first `prunable`
/// columns (plain magnitude pruning, no update), for the report.
Matrix magnitudeDelta(const Matrix &w, int64_t prunable, double sparsity) {
  std::vector<std::pair<double, int64_t>> order;
  for (int64_t f = 0; f < w.rows(); ++f)
    for (int64_t k = 0; k < prunable; ++k)
      order.push_back({std::fabs(w(f, k)), f * prunable + k});
  size_t k = (size_t)std::floor(sparsity * order.size());
  std::nth_element(order.begin(), order.begin() + k, order.end());
  Matrix delta = Matrix::Zero(w.rows(), w.cols());
  for (size_t i = 0; i < k; ++i) {
    int64_t f = order[i].second / prunable, c = order[i].second % prunable;
    delta(f, c) = -w(f, c);
  }
  return delta;
}

/// SparseGPT's column sweep on W (filters x columns) with
/// H = X^T X + lambda: per block of columns, the `sparsity` share of the
/// block's prunable weights with the smallest OBS saliency
/// s_f^2 w^2 / [H^-1]_jj (through the Cholesky factor: w^2 / U_jj^2) are
/// zeroed and every removal's error is pushed onto the columns not yet
/// visited (the OBS update through the Cholesky factor of H^-1). The last
/// `fixedCols` columns (the bias's column of ones) are never zeroed: being
/// last, they absorb what the removals leave, e.g. the shift of the mean
/// that non-centred (post-activation) inputs cause. `rowScale` (s_f, empty:
/// 1) is what multiplies each row's output afterwards (the batch norm's
/// gamma / sd): the mask is chosen across rows, and an error in a row the
/// batch norm amplifies costs more. Returns false when H cannot be
/// factorized.
/// The upper Cholesky factor U of (H + lambda)^-1 = U^T U, lambda =
/// `relativeRidge` x the mean diagonal of the first `prunable` columns;
/// inputs that are never non-zero get a unit diagonal (they carry
/// nothing; the sweep zeroes their weights). Fails when H cannot be
/// factorized.
Matrix dampedGram(const Matrix &gram, int64_t prunable, double relativeRidge) {
  Matrix h = gram;
  double lambda =
      relativeRidge * std::max(h.diagonal().head(prunable).mean(), 1e-12);
  h.diagonal().array() += lambda;
  for (int64_t j = 0; j < prunable; ++j)
    if (gram(j, j) == 0)
      h(j, j) = 1;
  return h;
}

FailureOr<Matrix> sweepFactor(const Matrix &gram, int64_t prunable,
                              double relativeRidge) {
  int64_t p = gram.rows();
  Matrix h = dampedGram(gram, prunable, relativeRidge);
  Eigen::LLT<Matrix> llt(h);
  if (llt.info() != Eigen::Success)
    return failure();
  Matrix hinv = llt.solve(Matrix::Identity(p, p));
  Eigen::LLT<Matrix> lltInv(hinv);
  if (lltInv.info() != Eigen::Success)
    return failure();
  return Matrix(lltInv.matrixU());
}

/// The sweep itself, with U from sweepFactor on the same gram.
void sweepColumns(Matrix &w, const Matrix &gram, const Matrix &u,
                  double sparsity, ArrayRef<double> rowScale,
                  int64_t fixedCols) {
  int64_t p = w.cols();
  int64_t prunable = p - fixedCols;
  for (int64_t j = 0; j < prunable; ++j)
    if (gram(j, j) == 0)
      w.col(j).setZero();
  const int64_t blockSize = 128;
  for (int64_t i1 = 0; i1 < p; i1 += blockSize) {
    int64_t count = std::min(blockSize, p - i1);
    Matrix block = w.middleCols(i1, count);
    Matrix errors = Matrix::Zero(w.rows(), count);
    // The block's mask: the smallest saliencies over the whole block.
    // Fixed columns get an infinite saliency: never chosen.
    int64_t open = std::max<int64_t>(0, std::min(count, prunable - i1));
    std::vector<double> saliency;
    saliency.reserve(block.size());
    for (int64_t r = 0; r < block.rows(); ++r) {
      double scale = rowScale.empty() ? 1.0 : rowScale[r] * rowScale[r];
      for (int64_t c = 0; c < count; ++c) {
        double d = u(i1 + c, i1 + c);
        saliency.push_back(
            c < open ? scale * block(r, c) * block(r, c) / (d * d) : INFINITY);
      }
    }
    size_t k = (size_t)std::floor(sparsity * block.rows() * open);
    std::vector<double> sorted = saliency;
    double threshold = -1;
    if (k > 0) {
      std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end());
      threshold = sorted[k - 1];
    }
    size_t removed = 0;
    std::vector<char> zero(saliency.size(), 0);
    for (size_t i = 0; i < saliency.size() && removed < k; ++i)
      if (saliency[i] < threshold)
        zero[i] = 1, ++removed;
    for (size_t i = 0; i < saliency.size() && removed < k; ++i)
      if (saliency[i] == threshold && !zero[i])
        zero[i] = 1, ++removed;
    for (int64_t c = 0; c < count; ++c) {
      double d = u(i1 + c, i1 + c);
      for (int64_t r = 0; r < block.rows(); ++r) {
        if (!zero[r * count + c])
          continue;
        double err = block(r, c) / d;
        // The removed weight's error onto the block's later columns.
        block.row(r).tail(count - c) -=
            err * u.row(i1 + c).segment(i1 + c, count - c);
        block(r, c) = 0;
        errors(r, c) = err;
      }
    }
    w.middleCols(i1, count) = block;
    if (i1 + count < p)
      w.rightCols(p - i1 - count) -=
          errors * u.block(i1, i1 + count, count, p - i1 - count);
  }
}

/// The sweep updates only the columns after each removal, so its weights
/// are not the best ones for the mask it chose. Per filter, the kept
/// weights (and the fixed columns) are refit exactly on the same damped
/// objective, min (w' - w)(H + lambda)(w' - w)^T over the kept support
/// (Optimal Brain Compression's final weights for SparseGPT's mask): never
/// worse on it than the sweep's.
void refitSupport(Matrix &w, const Matrix &dense, const Matrix &gram,
                  int64_t fixedCols, double relativeRidge) {
  int64_t p = w.cols(), prunable = p - fixedCols;
  Matrix h = dampedGram(gram, prunable, relativeRidge);
  for (int64_t f = 0; f < w.rows(); ++f) {
    std::vector<int64_t> kept;
    for (int64_t j = 0; j < p; ++j)
      if (j >= prunable || (w(f, j) != 0 && gram(j, j) != 0))
        kept.push_back(j);
    if (kept.empty())
      continue;
    Matrix hs = h(kept, kept);
    Eigen::VectorXd rhs = h(kept, Eigen::all) * dense.row(f).transpose();
    Eigen::LLT<Matrix> llt(hs);
    if (llt.info() != Eigen::Success)
      continue;
    Eigen::VectorXd x = llt.solve(rhs);
    if (!x.allFinite())
      continue;
    for (size_t i = 0; i < kept.size(); ++i)
      w(f, kept[i]) = x[i];
  }
}

bool sparsifyRows(Matrix &w, const Matrix &gram, double sparsity,
                  double relativeRidge, ArrayRef<double> rowScale = {},
                  int64_t fixedCols = 0) {
  auto u = sweepFactor(gram, w.cols() - fixedCols, relativeRidge);
  if (failed(u))
    return false;
  sweepColumns(w, gram, *u, sparsity, rowScale, fixedCols);
  return true;
}

/// The non-grouped convolutions in `layerSet` (empty: all), in order.
FailureOr<std::vector<int64_t>> sweptLayers(ModuleOp module,
                                            const std::set<int64_t> &layerSet) {
  auto layers = getLayers(getMainFunc(module));
  if (failed(layers))
    return failure();
  std::vector<int64_t> chosen;
  for (const Layer &l : *layers)
    if (auto conv = dyn_cast<Conv2DOp>(l.head))
      if (conv.getGroups() == 1 &&
          (layerSet.empty() || layerSet.count(l.index)))
        chosen.push_back(l.index);
  return chosen;
}

} // namespace

LogicalResult qsim::lighten::allocateSparsity(
    ModuleOp module, const std::vector<rt::Tensor> &networkInputs,
    double sparsity, const std::set<int64_t> &layerSet,
    const ReconstructOptions &options, std::map<int64_t, double> &out) {
  ReconstructOptions o = options;
  o.samplesPerImage = options.positionsPerImage(networkInputs.size());
  if (networkInputs.empty())
    return module.emitError() << "sparsity allocation needs at least one image";
  auto chosen = sweptLayers(module, layerSet);
  auto layers = layersByIndex(module);
  if (failed(chosen) || failed(layers))
    return failure();
  // Every layer's X^T X (with the ones column of its bias) in one pass of
  // the unpruned model.
  struct Curve {
    Layer layer;
    eval::ConvPatchGeometry geometry;
    bool withBias = false;
    Matrix gram;
    int64_t weights = 0;
    std::vector<double> error2; // squared relative error per level
  };
  std::map<int64_t, Curve> curves;
  for (int64_t index : *chosen) {
    Curve c{layers->at(index), eval::ConvPatchGeometry::of(
                                   cast<Conv2DOp>(layers->at(index).head))};
    auto conv = cast<Conv2DOp>(c.layer.head);
    c.withBias =
        conv.getBias() || (c.layer.batchNorm && c.layer.batchNorm.getMean());
    int64_t cols = c.geometry.patchSize() + (c.withBias ? 1 : 0);
    c.gram = Matrix::Zero(cols, cols);
    c.weights = conv.getFilters() * c.geometry.patchSize();
    curves.emplace(index, std::move(c));
  }
  auto sink = [&](size_t image, int64_t index,
                  const eval::LayerActivations &a) {
    Curve &c = curves.at(index);
    const eval::ConvPatchGeometry &g = c.geometry;
    std::vector<int64_t> pos =
        positionsFor(o, index, image, g.outputPositions());
    std::vector<float> patches;
    eval::appendConvPatches(g, a.inputs[0].f32(), 0, pos, patches);
    int64_t p = g.patchSize();
    Matrix x = Matrix::Ones(pos.size(), c.gram.cols());
    for (size_t r = 0; r < pos.size(); ++r)
      for (int64_t k = 0; k < p; ++k)
        x(r, k) = patches[r * p + k];
    c.gram.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
  };
  if (failed(
          eval::recordLayerActivations(module, networkInputs, *chosen, sink)))
    return failure();
  // Each layer's error curve: the sweep at 0, 5, ..., 95 % on its own
  // (unpruned) inputs, relative to its output energy.
  const int levels = 20;
  const double step = 1.0 / levels;
  int64_t total = 0;
  for (auto &[index, c] : curves) {
    c.gram.triangularView<Eigen::StrictlyUpper>() =
        c.gram.transpose().triangularView<Eigen::StrictlyUpper>();
    int64_t p = c.geometry.patchSize(), fixed = c.withBias ? 1 : 0;
    auto conv = cast<Conv2DOp>(c.layer.head);
    Matrix dense = currentWeights(conv, p, c.withBias);
    std::vector<double> scale = outputScale(c.layer);
    Matrix s = Matrix::Ones(dense.rows(), 1);
    for (size_t f = 0; f < scale.size(); ++f)
      s(f, 0) = scale[f];
    auto energy = [&](const Matrix &m) {
      Matrix scaled = s.asDiagonal() * m;
      return (scaled * c.gram).cwiseProduct(scaled).sum();
    };
    auto u = sweepFactor(c.gram, p, std::max(o.ridge, 1e-2));
    if (failed(u))
      return conv.emitError() << "sparsity allocation: the input statistics "
                                 "cannot be factorized";
    double ref = std::max(energy(dense), 1e-30);
    c.error2.push_back(0.0);
    for (int i = 1; i < levels; ++i) {
      Matrix w = dense;
      sweepColumns(w, c.gram, *u, i * step, scale, fixed);
      c.error2.push_back(std::max(0.0, energy(w - dense)) / ref);
    }
    total += c.weights;
    c.gram.resize(0, 0); // memory
  }
  // Greedy on the marginal cost: each step raises the layer whose next
  // level adds the least squared error per zeroed weight, until the
  // budget is met; the last step is taken fractionally, so that the total
  // is the asked share.
  std::map<int64_t, int> level;
  for (auto &[index, c] : curves)
    level[index] = 0;
  double budget = sparsity * (double)total, have = 0;
  out.clear();
  while (have < budget) {
    int64_t pick = -1;
    double best = INFINITY;
    for (auto &[index, c] : curves) {
      int l = level[index];
      if (l + 1 >= levels)
        continue;
      double cost = (c.error2[l + 1] - c.error2[l]) / (c.weights * step);
      if (cost < best)
        best = cost, pick = index;
    }
    if (pick < 0)
      break;
    const Curve &c = curves.at(pick);
    double gain = c.weights * step;
    if (have + gain >= budget) {
      out[pick] = level[pick] * step + (budget - have) / c.weights;
      have = budget;
      break;
    }
    ++level[pick];
    have += gain;
  }
  for (auto &[index, l] : level)
    if (!out.count(index))
      out[index] = l * step;
  return success();
}

LogicalResult qsim::lighten::sparsifyConvs(
    ModuleOp module, const std::vector<rt::Tensor> &networkInputs,
    double sparsity, const std::set<int64_t> &layerSet,
    const ReconstructOptions &options, std::vector<SparsifiedLayer> &result,
    ModuleOp original, const std::map<int64_t, double> &sparsityByLayer) {
  ReconstructOptions o = options;
  o.samplesPerImage = options.positionsPerImage(networkInputs.size());
  if (networkInputs.empty())
    return module.emitError() << "sparsification needs at least one image";
  auto chosen = sweptLayers(module, layerSet);
  if (failed(chosen))
    return failure();
  // In order: each layer's H from the inputs the earlier sparse layers give.
  for (int64_t index : *chosen) {
    if (original) {
      // First the dense least-squares fit to the original's output on the
      // inputs the sparse layers before give: then W X' - Y splits into the
      // fit's residual (orthogonal to X') and (W - W') X', which the sweep
      // below minimises.
      std::vector<RefitRequest> request(1, RefitRequest{index, index, {}});
      auto layers = layersByIndex(original);
      if (failed(layers))
        return failure();
      auto oconv = cast<Conv2DOp>(layers->at(index).head);
      for (int64_t f = 0; f < oconv.getFilters(); ++f)
        request[0].originalFilters.push_back(f);
      std::vector<ReconstructedLayer> fits;
      if (failed(reconstructConvs(module, original, networkInputs, request, o,
                                  fits)))
        return failure();
    }
    auto now = layersByIndex(module);
    if (failed(now))
      return failure();
    const Layer &layer = now->at(index);
    auto conv = cast<Conv2DOp>(layer.head);
    BatchNormOp bn = layer.batchNorm;
    // The bias (or the batch norm's mean) joins the sweep as a last column
    // that is never zeroed.
    bool withBias = conv.getBias() || (bn && bn.getMean());
    int64_t rows = 0;
    auto gram = inputGram(module, layer, networkInputs, o, rows, withBias);
    if (failed(gram))
      return failure();
    auto g = eval::ConvPatchGeometry::of(conv);
    int64_t p = g.patchSize(), filters = conv.getFilters();
    Matrix w = currentWeights(conv, p, withBias);
    std::vector<double> scale = outputScale(layer);
    double layerSparsity = sparsity;
    if (auto it = sparsityByLayer.find(index); it != sparsityByLayer.end())
      layerSparsity = it->second;
    Matrix dense = w;
    SparsifiedLayer r;
    r.layer = index;
    r.samples = rows;
    r.sparsity = layerSparsity;
    if (!sparsifyRows(w, *gram, layerSparsity, std::max(o.ridge, 1e-2), scale,
                      withBias ? 1 : 0))
      return conv.emitError() << "sparsification: the input statistics "
                                 "cannot be factorized";
    refitSupport(w, dense, *gram, withBias ? 1 : 0, std::max(o.ridge, 1e-2));
    // Relative output error on the samples, ||S (W - W0) X^T|| /
    // ||S W0 X^T|| (S: the batch norm's scale), and the same for the
    // smallest-magnitude weights zeroed without an update.
    Matrix s = Matrix::Ones(filters, 1);
    for (size_t f = 0; f < scale.size(); ++f)
      s(f, 0) = scale[f];
    auto energy = [&](const Matrix &m) {
      Matrix scaled = s.asDiagonal() * m;
      return (scaled * *gram).cwiseProduct(scaled).sum();
    };
    double ref = std::max(energy(dense), 1e-30);
    r.error = std::sqrt(std::max(0.0, energy(w - dense)) / ref);
    r.magnitudeError = std::sqrt(
        std::max(0.0, energy(magnitudeDelta(dense, p, layerSparsity))) / ref);
    int64_t zeros = 0;
    for (int64_t f = 0; f < filters; ++f)
      for (int64_t k = 0; k < p; ++k)
        zeros += (float)w(f, k) == 0.0f;
    r.zeroed = zeros;
    r.weights = filters * p;
    writeBack(layer, w, p, withBias, "_sparse");
    result.push_back(r);
  }
  return success();
}
