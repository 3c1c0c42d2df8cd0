//===- AdaRound.cpp - learned rounding of int8 weights -------------------===//

#include "qsim/Quant/AdaRound.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Support/Progress.h"
#include "qsim/Support/StringUtils.h"

#include <Eigen/Dense>

#include <cmath>
#include <random>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

namespace {

using Matrix =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const Matrix>;

constexpr double kZeta = 1.1, kGamma = -0.1;

/// Per-row losses e_f H e_f^T of the errors E (rows).
Eigen::VectorXd rowLosses(const Matrix &e, const ConstMap &h) {
  Matrix eh = e * h;
  return (eh.array() * e.array()).rowwise().sum().matrix();
}

/// The rounding problem of one weight block, in grid units.
struct Problem {
  int64_t rows = 0, size = 0;
  Matrix grid;             // w / s
  Matrix floorGrid;        // floor(w / s), clamped to [-qmax, qmax]
  Matrix nearest;          // what --qsim-quantize rounds to
  Eigen::VectorXd scale;   // s per row
  std::vector<char> fixed; // rounded to nearest whatever is learned
  double qmax = 127;       // the grid's end (rt::weightQMax of the width)
  Matrix errors(const Matrix &q) const {
    return ((q - grid).array().colwise() * scale.array()).matrix();
  }
};

Problem makeProblem(ArrayRef<float> w, ArrayRef<float> scales, int64_t size,
                    int bits) {
  Problem p;
  p.qmax = rt::weightQMax(bits);
  p.rows = w.size() / size;
  p.size = size;
  p.grid.resize(p.rows, size);
  p.floorGrid.resize(p.rows, size);
  p.nearest.resize(p.rows, size);
  p.scale.resize(p.rows);
  p.fixed.assign(w.size(), 0);
  for (int64_t f = 0; f < p.rows; ++f) {
    p.scale[f] = scales[f];
    for (int64_t i = 0; i < size; ++i) {
      float v = w[f * size + i];
      double g = (double)v / scales[f];
      p.grid(f, i) = g;
      p.nearest(f, i) = rt::quantizeWeight(v, scales[f], bits);
      p.floorGrid(f, i) = std::max(-p.qmax, std::min(p.qmax, std::floor(g)));
      // The largest weights define the scale: they keep it (±qmax), and
      // nothing may round past the grid's ends.
      if (std::fabs(g) > p.qmax - 0.001 || p.floorGrid(f, i) >= p.qmax)
        p.fixed[f * size + i] = 1;
    }
  }
  return p;
}

/// Adam on V for the relaxed problem; returns the hard rounding.
Matrix optimize(const Problem &p, const ConstMap &h, double nearestLoss,
                const AdaRoundOptions &o) {
  int64_t n = p.rows * p.size;
  Matrix v(p.rows, p.size), m = Matrix::Zero(p.rows, p.size),
                            s2 = Matrix::Zero(p.rows, p.size);
  for (int64_t k = 0; k < n; ++k) {
    double frac = p.grid.data()[k] - p.floorGrid.data()[k];
    double prob =
        std::min(1 - 1e-4, std::max(1e-4, (frac - kGamma) / (kZeta - kGamma)));
    v.data()[k] = std::log(prob / (1 - prob));
  }
  Matrix soft(p.rows, p.size), dh(p.rows, p.size);
  // The reconstruction term is normalised to about 1 per weight at nearest
  // rounding, so that `regularization` means the same for every layer.
  double recScale = (double)n / nearestLoss;
  int warm = (int)(o.warmup * o.iterations);
  for (int t = 0; t < o.iterations; ++t) {
    for (int64_t k = 0; k < n; ++k) {
      double sig = 1 / (1 + std::exp(-v.data()[k]));
      double r = sig * (kZeta - kGamma) + kGamma;
      soft.data()[k] = p.fixed[k] ? p.nearest.data()[k] - p.floorGrid.data()[k]
                                  : std::min(1.0, std::max(0.0, r));
      dh.data()[k] = (p.fixed[k] || r <= 0 || r >= 1)
                         ? 0
                         : sig * (1 - sig) * (kZeta - kGamma);
    }
    Matrix e = p.errors(p.floorGrid + soft);
    Matrix grad = ((e * h).array().colwise() * p.scale.array()).matrix();
    grad *= 2 * recScale;
    if (t >= warm) {
      double progress =
          (double)(t - warm) / std::max(1, o.iterations - warm - 1);
      double beta = o.betaStart + (o.betaEnd - o.betaStart) * progress;
      for (int64_t k = 0; k < n; ++k) {
        double x = 2 * soft.data()[k] - 1, ax = std::fabs(x);
        if (ax > 0)
          grad.data()[k] -= o.regularization * beta * std::pow(ax, beta - 1) *
                            (x > 0 ? 1 : -1) * 2;
      }
    }
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1 - std::pow(b1, t + 1), c2 = 1 - std::pow(b2, t + 1);
    for (int64_t k = 0; k < n; ++k) {
      double g = grad.data()[k] * dh.data()[k];
      m.data()[k] = b1 * m.data()[k] + (1 - b1) * g;
      s2.data()[k] = b2 * s2.data()[k] + (1 - b2) * g * g;
      v.data()[k] -= o.learningRate * (m.data()[k] / c1) /
                     (std::sqrt(s2.data()[k] / c2) + eps);
    }
  }
  Matrix q(p.rows, p.size);
  for (int64_t k = 0; k < n; ++k) {
    double r = 1 / (1 + std::exp(-v.data()[k])) * (kZeta - kGamma) + kGamma;
    q.data()[k] =
        p.fixed[k]
            ? p.nearest.data()[k]
            : std::min(p.qmax, std::max(-p.qmax, p.floorGrid.data()[k] +
                                                     (r >= 0.5 ? 1 : 0)));
  }
  return q;
}

} // namespace

double qsim::quantization::roundingLoss(ArrayRef<float> w, ArrayRef<int8_t> q,
                                        ArrayRef<float> scales, int64_t size,
                                        ArrayRef<double> gram) {
  // Only the grid and the scales enter the loss (any width will do).
  Problem p = makeProblem(w, scales, size, 8);
  Matrix qm(p.rows, size);
  for (int64_t k = 0; k < p.rows * size; ++k)
    qm.data()[k] = q[k];
  ConstMap h(gram.data(), size, size);
  return rowLosses(p.errors(qm), h).sum();
}

RoundingResult qsim::quantization::learnRounding(ArrayRef<float> w,
                                                 ArrayRef<float> scales,
                                                 int64_t size,
                                                 ArrayRef<double> gram,
                                                 const AdaRoundOptions &o) {
  Problem p = makeProblem(w, scales, size, o.quantize.weightBits);
  ConstMap h(gram.data(), size, size);
  Eigen::VectorXd nearestRows = rowLosses(p.errors(p.nearest), h);
  RoundingResult r;
  r.nearestLoss = nearestRows.sum();
  Matrix q = p.nearest;
  if (r.nearestLoss > 0 && o.iterations > 0) {
    Matrix learned = optimize(p, h, r.nearestLoss, o);
    Eigen::VectorXd learnedRows = rowLosses(p.errors(learned), h);
    // Never worse than nearest rounding, output channel by channel.
    for (int64_t f = 0; f < p.rows; ++f) {
      if (learnedRows[f] < nearestRows[f])
        q.row(f) = learned.row(f);
      else
        ++r.keptRows;
    }
  } else {
    r.keptRows = p.rows;
  }
  r.loss = rowLosses(p.errors(q), h).sum();
  r.q.resize(w.size());
  for (int64_t k = 0; k < p.rows * size; ++k) {
    r.q[k] = (int8_t)q.data()[k];
    r.changed += q.data()[k] != p.nearest.data()[k];
  }
  return r;
}

namespace {

class AdaRounder {
public:
  AdaRounder(ModuleOp module, ArrayRef<rt::Tensor> inputs,
             const AdaRoundOptions &o)
      : module(module), inputs(inputs), o(o), rng(o.seed) {}
  FailureOr<std::vector<AdaRoundRow>> run();

private:
  /// Gram matrices X^T X / n of `layer`'s input patches, per group, in the
  /// quantized model with the layers rounded so far.
  LogicalResult measureGrams(const Layer &layer, std::vector<Matrix> &grams);
  FailureOr<AdaRoundRow> roundLayer(const Layer &layer);

  ModuleOp module;
  ArrayRef<rt::Tensor> inputs;
  const AdaRoundOptions &o;
  std::mt19937_64 rng;
  std::vector<Layer> layers;
  std::vector<const Layer *> targets;
};

LogicalResult AdaRounder::measureGrams(const Layer &layer,
                                       std::vector<Matrix> &grams) {
  OwningOpRef<ModuleOp> quantized = module.clone();
  if (failed(quantizeModule(*quantized, o.quantize)))
    return failure();
  auto qlayers = getLayers(getMainFunc(*quantized));
  if (failed(qlayers))
    return failure();
  const Layer *qlayer = nullptr;
  for (const Layer &l : *qlayers)
    if (l.index == layer.index)
      qlayer = &l;
  auto conv = dyn_cast<Conv2DOp>(layer.head);
  eval::ConvPatchGeometry g;
  int64_t groups = 1, size;
  if (conv) {
    g = eval::ConvPatchGeometry::of(conv);
    groups = g.groups;
    size = g.patchSize();
  } else {
    auto in = cast<ShapedType>(layer.head->getOperand(0).getType());
    size = in.getNumElements() / in.getDimSize(0);
  }
  grams.assign(groups, Matrix::Zero(size, size));
  int64_t perImage = std::max<int64_t>(
      1, o.samples / (int64_t)std::max<size_t>(1, inputs.size()));
  int64_t rows = 0;
  auto accumulate = [&](size_t, const rt::Tensor &in) {
    if (!conv) {
      Eigen::Map<const Eigen::VectorXf> x(in.f32(), size);
      Eigen::VectorXd xd = x.cast<double>();
      grams[0].noalias() += xd * xd.transpose();
      ++rows;
      return;
    }
    std::vector<int64_t> positions =
        eval::samplePositions(g.outputPositions(), perImage, rng);
    for (int64_t group = 0; group < groups; ++group) {
      std::vector<float> patch;
      eval::appendConvPatches(g, in.f32(), group, positions, patch);
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                                     Eigen::RowMajor>>
          x(patch.data(), positions.size(), size);
      Matrix xd = x.cast<double>();
      grams[group].noalias() += xd.transpose() * xd;
    }
    rows += positions.size();
  };
  if (failed(forEachLayerInput(*quantized, *qlayer, inputs, o.executor,
                               accumulate)))
    return failure();
  for (Matrix &m : grams)
    m /= (double)std::max<int64_t>(1, rows);
  return success();
}

FailureOr<AdaRoundRow> AdaRounder::roundLayer(const Layer &layer) {
  std::vector<Matrix> grams;
  if (failed(measureGrams(layer, grams)))
    return failure();
  Operation *op = layer.head;
  auto weightAttr = op->getAttrOfType<ElementsAttr>("weight");
  std::vector<float> w = getFloats(weightAttr);
  int64_t channels = outputChannels(op), perGroup = filtersPerGroup(op);
  int64_t size = w.size() / channels;
  std::vector<float> scales = chooseWeightScales(w, channels, o.quantize);
  std::vector<RoundingResult> results(grams.size());
  int64_t groups = grams.size();
#pragma omp parallel for schedule(dynamic) if (groups > 1)
  for (int64_t g = 0; g < groups; ++g)
    results[g] = learnRounding(
        ArrayRef<float>(w).slice(g * perGroup * size, perGroup * size),
        ArrayRef<float>(scales).slice(g * perGroup, perGroup), size,
        ArrayRef<double>(grams[g].data(), size * size), o);
  AdaRoundRow row;
  row.layer = layer.index;
  row.weights = w.size();
  row.rows = channels;
  for (int64_t g = 0; g < groups; ++g) {
    const RoundingResult &r = results[g];
    for (int64_t k = 0; k < perGroup * size; ++k) {
      int64_t i = g * perGroup * size + k;
      w[i] = r.q[k] * scales[i / size];
    }
    row.changed += r.changed;
    row.keptRows += r.keptRows;
    row.nearestLoss += r.nearestLoss;
    row.loss += r.loss;
  }
  op->setAttr("weight", makeFloatAttr(op->getContext(),
                                      weightAttr.getShapedType().getShape(),
                                      "layer" + std::to_string(layer.index) +
                                          "_weight_adarounded",
                                      w));
  return row;
}

FailureOr<std::vector<AdaRoundRow>> AdaRounder::run() {
  if (failed(findInt8WeightedLayers(module, "qsim-adaround", layers, targets)))
    return failure();
  if (inputs.empty())
    return module.emitError() << "--qsim-adaround: no images";
  return mapWithProgress<AdaRoundRow>(
      "adaround", targets, o.progress,
      [&](const Layer *l) { return roundLayer(*l); });
}

} // namespace

FailureOr<std::vector<AdaRoundRow>>
qsim::quantization::adaroundModule(ModuleOp module, ArrayRef<rt::Tensor> inputs,
                                   const AdaRoundOptions &options) {
  return AdaRounder(module, inputs, options).run();
}

void qsim::quantization::printAdaRoundReport(ArrayRef<AdaRoundRow> rows,
                                             raw_ostream &os) {
  os << "adaround: " << rows.size() << " layer(s)\n";
  os << strprintf("%-8s %10s %10s %12s %14s %14s %8s\n", "layer", "weights",
                  "changed", "kept nearest", "loss nearest", "loss learned",
                  "gain");
  for (const AdaRoundRow &r : rows)
    os << strprintf(
        "%-8lld %10lld %10lld %5lld/%-6lld %14.4g %14.4g %7.1f%%\n",
        (long long)r.layer, (long long)r.weights, (long long)r.changed,
        (long long)r.keptRows, (long long)r.rows, r.nearestLoss, r.loss,
        r.nearestLoss > 0 ? 100 * (1 - r.loss / r.nearestLoss) : 0.0);
}
