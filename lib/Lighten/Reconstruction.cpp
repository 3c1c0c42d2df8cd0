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
               bool withBias) {
  auto conv = cast<Conv2DOp>(layer.head);
  MLIRContext *ctx = conv.getContext();
  int64_t filters = w.rows();
  std::vector<float> weight(filters * patchSize), bias(filters);
  for (int64_t f = 0; f < filters; ++f) {
    for (int64_t k = 0; k < patchSize; ++k)
      weight[f * patchSize + k] = (float)w(f, k);
    bias[f] = withBias ? (float)w(f, patchSize) : 0.0f;
  }
  std::string base = "layer" + std::to_string(layer.index) + "_refit";
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
                                const ReconstructOptions &o,
                                std::vector<ReconstructedLayer> &result) {
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
/// now), and the number of rows.
FailureOr<Matrix> inputGram(ModuleOp module, const Layer &layer,
                            const std::vector<rt::Tensor> &inputs,
                            const ReconstructOptions &o, int64_t &rows) {
  auto conv = cast<Conv2DOp>(layer.head);
  auto g = eval::ConvPatchGeometry::of(conv);
  int64_t p = g.patchSize();
  Matrix gram = Matrix::Zero(p, p);
  rows = 0;
  auto sink = [&](size_t image, int64_t, const eval::LayerActivations &a) {
    std::vector<int64_t> pos =
        positionsFor(o, layer.index, image, g.outputPositions());
    std::vector<float> patches;
    eval::appendConvPatches(g, a.inputs[0].f32(), 0, pos, patches);
    Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                                   Eigen::RowMajor>>
        x(patches.data(), pos.size(), p);
    gram.selfadjointView<Eigen::Lower>().rankUpdate(
        x.cast<double>().transpose());
    rows += pos.size();
  };
  if (failed(eval::recordLayerActivations(module, inputs, {layer.index}, sink)))
    return failure();
  gram.triangularView<Eigen::StrictlyUpper>() =
      gram.transpose().triangularView<Eigen::StrictlyUpper>();
  return gram;
}

/// SparseGPT's column sweep on W (filters x patch) with H = X^T X + lambda:
/// per block of columns, the `sparsity` share of the block's weights with
/// the smallest w^2 / [H^-1]_jj^2 are zeroed and every removal's error is
/// pushed onto the columns not yet visited (the OBS update through the
/// Cholesky factor of H^-1). Returns false when H cannot be factorized.
bool sparsifyRows(Matrix &w, const Matrix &gram, double sparsity,
                  double relativeRidge) {
  int64_t p = w.cols();
  Matrix h = gram;
  double lambda = relativeRidge * std::max(h.diagonal().mean(), 1e-12);
  h.diagonal().array() += lambda;
  // Dead inputs (never non-zero) would make H singular; they carry nothing.
  for (int64_t j = 0; j < p; ++j)
    if (gram(j, j) == 0)
      h(j, j) = 1, w.col(j).setZero();
  Eigen::LLT<Matrix> llt(h);
  if (llt.info() != Eigen::Success)
    return false;
  Matrix hinv = llt.solve(Matrix::Identity(p, p));
  Eigen::LLT<Matrix> lltInv(hinv);
  if (lltInv.info() != Eigen::Success)
    return false;
  Matrix u = lltInv.matrixU(); // H^-1 = U^T U
  const int64_t blockSize = 128;
  for (int64_t i1 = 0; i1 < p; i1 += blockSize) {
    int64_t count = std::min(blockSize, p - i1);
    Matrix block = w.middleCols(i1, count);
    Matrix errors = Matrix::Zero(w.rows(), count);
    // The block's mask: the smallest saliencies over the whole block.
    std::vector<double> saliency;
    saliency.reserve(block.size());
    for (int64_t r = 0; r < block.rows(); ++r)
      for (int64_t c = 0; c < count; ++c) {
        double d = u(i1 + c, i1 + c);
        saliency.push_back(block(r, c) * block(r, c) / (d * d));
      }
    size_t k = (size_t)std::floor(sparsity * saliency.size());
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
  return true;
}

} // namespace

LogicalResult qsim::lighten::sparsifyConvs(
    ModuleOp module, const std::vector<rt::Tensor> &networkInputs,
    double sparsity, const std::set<int64_t> &layerSet,
    const ReconstructOptions &o, std::vector<SparsifiedLayer> &result,
    ModuleOp original) {
  if (networkInputs.empty())
    return module.emitError() << "sparsification needs at least one image";
  auto layers = getLayers(getMainFunc(module));
  if (failed(layers))
    return failure();
  std::vector<int64_t> chosen;
  for (const Layer &l : *layers)
    if (auto conv = dyn_cast<Conv2DOp>(l.head))
      if (conv.getGroups() == 1 &&
          (layerSet.empty() || layerSet.count(l.index)))
        chosen.push_back(l.index);
  // In order: each layer's H from the inputs the earlier sparse layers give.
  for (int64_t index : chosen) {
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
    int64_t rows = 0;
    auto gram = inputGram(module, layer, networkInputs, o, rows);
    if (failed(gram))
      return failure();
    int64_t p = gram->rows(), filters = conv.getFilters();
    std::vector<float> w0 = getFloats(conv.getWeightAttr());
    Matrix w(filters, p);
    for (int64_t f = 0; f < filters; ++f)
      for (int64_t k = 0; k < p; ++k)
        w(f, k) = w0[f * p + k];
    Matrix dense = w;
    SparsifiedLayer r;
    r.layer = index;
    r.samples = rows;
    if (!sparsifyRows(w, *gram, sparsity, std::max(o.ridge, 1e-2)))
      return conv.emitError() << "sparsification: the input statistics "
                                 "cannot be factorized";
    // Relative output error on the samples: ||(W - W0) X^T|| / ||W0 X^T||.
    auto energy = [&](const Matrix &m) {
      return (m * *gram).cwiseProduct(m).sum();
    };
    double ref = std::max(energy(dense), 1e-30);
    r.error = std::sqrt(std::max(0.0, energy(w - dense)) / ref);
    std::vector<float> out(filters * p);
    int64_t zeros = 0;
    for (int64_t f = 0; f < filters; ++f)
      for (int64_t k = 0; k < p; ++k) {
        out[f * p + k] = (float)w(f, k);
        zeros += out[f * p + k] == 0.0f;
      }
    r.zeroed = zeros;
    r.weights = filters * p;
    conv->setAttr("weight",
                  makeFloatAttr(conv.getContext(),
                                conv.getWeightAttr().getShapedType().getShape(),
                                "layer" + std::to_string(index) + "_sparse",
                                out));
    dropBatchNormStats(conv);
    result.push_back(r);
  }
  return success();
}
