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
  /// The asymmetric problem (learnRounding with `cross`): B = W C^T, the
  /// target's correlation with each input, and e_f = E[(w_f x_f)^2].
  bool asymmetric = false;
  Matrix target;
  Eigen::VectorXd energy;
  Matrix errors(const Matrix &q) const {
    return ((q - grid).array().colwise() * scale.array()).matrix();
  }
  Matrix real(const Matrix &q) const {
    return (q.array().colwise() * scale.array()).matrix();
  }
  /// d loss / d (q s), halved: (q s - w) H, or q s H - B.
  Matrix residual(const Matrix &q, const ConstMap &h) const {
    if (!asymmetric)
      return errors(q) * h;
    return real(q) * h - target;
  }
  /// Each row's loss.
  Eigen::VectorXd losses(const Matrix &q, const ConstMap &h) const {
    if (!asymmetric)
      return rowLosses(errors(q), h);
    Matrix r = real(q);
    Matrix t = r * h - 2 * target;
    Eigen::VectorXd l = (t.array() * r.array()).rowwise().sum().matrix();
    return l + energy;
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
    Matrix grad =
        (p.residual(p.floorGrid + soft, h).array().colwise() * p.scale.array())
            .matrix();
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

static RoundingResult solve(const Problem &p, const ConstMap &h,
                            const AdaRoundOptions &o) {
  Eigen::VectorXd nearestRows = p.losses(p.nearest, h);
  RoundingResult r;
  r.nearestLoss = nearestRows.sum();
  Matrix q = p.nearest;
  // The optimiser's scale: the loss nearest rounding itself causes (for
  // the asymmetric problem the loss also holds the error that reaches the
  // layer, which no rounding removes and which would dilute the gradient
  // against the regulariser).
  double ownLoss = rowLosses(p.errors(p.nearest), h).sum();
  if (r.nearestLoss > 0 && ownLoss > 0 && o.iterations > 0) {
    Matrix learned = optimize(p, h, ownLoss, o);
    Eigen::VectorXd learnedRows = p.losses(learned, h);
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
  r.loss = p.losses(q, h).sum();
  r.q.resize(p.rows * p.size);
  for (int64_t k = 0; k < p.rows * p.size; ++k) {
    r.q[k] = (int8_t)q.data()[k];
    r.changed += q.data()[k] != p.nearest.data()[k];
  }
  return r;
}

RoundingResult qsim::quantization::learnRounding(ArrayRef<float> w,
                                                 ArrayRef<float> scales,
                                                 int64_t size,
                                                 ArrayRef<double> gram,
                                                 const AdaRoundOptions &o) {
  Problem p = makeProblem(w, scales, size, o.quantize.weightBits);
  ConstMap h(gram.data(), size, size);
  return solve(p, h, o);
}

/// The asymmetric problem's target terms (learnRounding with `cross`).
static void setAsymmetric(Problem &p, ArrayRef<float> w, const ConstMap &c,
                          ArrayRef<double> floatEnergy) {
  p.asymmetric = true;
  Matrix wm(p.rows, p.size);
  for (int64_t k = 0; k < p.rows * p.size; ++k)
    wm.data()[k] = w[k];
  p.target = wm * c.transpose();
  p.energy.resize(p.rows);
  for (int64_t f = 0; f < p.rows; ++f)
    p.energy[f] = floatEnergy[f];
}

RoundingResult qsim::quantization::learnRounding(
    ArrayRef<float> w, ArrayRef<float> scales, int64_t size,
    ArrayRef<double> gram, ArrayRef<double> cross, ArrayRef<double> floatEnergy,
    const AdaRoundOptions &o) {
  Problem p = makeProblem(w, scales, size, o.quantize.weightBits);
  ConstMap h(gram.data(), size, size), c(cross.data(), size, size);
  setAsymmetric(p, w, c, floatEnergy);
  return solve(p, h, o);
}

std::vector<float> qsim::quantization::searchScales(
    ArrayRef<float> w, ArrayRef<float> scales, int64_t size,
    ArrayRef<double> gram, ArrayRef<double> cross, ArrayRef<double> floatEnergy,
    const AdaRoundOptions &o) {
  int64_t rows = w.size() / size;
  const int bits = o.quantize.weightBits;
  const double qmax = rt::weightQMax(bits);
  ConstMap h(gram.data(), size, size);
  std::vector<float> best(scales.begin(), scales.end());
  Eigen::VectorXd bestLoss = Eigen::VectorXd::Constant(rows, INFINITY);
  std::vector<float> maxAbs(rows, 0.0f);
  for (int64_t f = 0; f < rows; ++f)
    for (int64_t i = 0; i < size; ++i)
      maxAbs[f] = std::max(maxAbs[f], std::fabs(w[f * size + i]));
  // The given scales first (they win ties), then clipped ranges.
  std::vector<std::vector<float>> candidates = {best};
  for (int step = 100; step >= 30; step -= 2) {
    std::vector<float> c(rows);
    for (int64_t f = 0; f < rows; ++f)
      c[f] = maxAbs[f] > 0 ? (float)(step / 100.0) * maxAbs[f] / (float)qmax
                           : scales[f];
    candidates.push_back(std::move(c));
  }
  for (const std::vector<float> &c : candidates) {
    Problem p = makeProblem(w, c, size, bits);
    if (!cross.empty())
      setAsymmetric(p, w, ConstMap(cross.data(), size, size), floatEnergy);
    Eigen::VectorXd l = p.losses(p.nearest, h);
    for (int64_t f = 0; f < rows; ++f)
      if (l[f] < bestLoss[f]) {
        bestLoss[f] = l[f];
        best[f] = c[f];
      }
  }
  return best;
}

namespace {

/// What one group of a layer's input patches says: H = E[x_q x_q^T], and
/// with a float target C = E[x_q x_f^T] and the float patches themselves
/// (for E[(w x_f)^2]); the mean patches for the bias.
struct PatchStats {
  Matrix gram, cross, floatRows;
  Eigen::VectorXd meanQ, meanF;
};

class AdaRounder {
public:
  AdaRounder(ModuleOp module, ArrayRef<rt::Tensor> inputs,
             const AdaRoundOptions &o)
      : module(module), inputs(inputs), o(o), rng(o.seed) {}
  FailureOr<std::vector<AdaRoundRow>> run();

private:
  /// The statistics of `layer`'s input patches, per group, in the
  /// quantized model with the layers rounded so far (and in the original
  /// float model at the same positions when the target is float).
  LogicalResult measure(const Layer &layer, std::vector<PatchStats> &stats);
  FailureOr<AdaRoundRow> roundLayer(const Layer &layer);

  ModuleOp module;
  ArrayRef<rt::Tensor> inputs;
  const AdaRoundOptions &o;
  std::mt19937_64 rng;
  std::vector<Layer> layers;
  std::vector<const Layer *> targets;
  /// The float model before any rounding (the float target).
  OwningOpRef<ModuleOp> original;
};

LogicalResult AdaRounder::measure(const Layer &layer,
                                  std::vector<PatchStats> &stats) {
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
  // The same positions in both models: drawn once per image.
  int64_t perImage = std::max<int64_t>(
      1, o.samples / (int64_t)std::max<size_t>(1, inputs.size()));
  std::vector<std::vector<int64_t>> positions(inputs.size());
  std::vector<int64_t> first(inputs.size() + 1, 0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    positions[i] =
        conv ? eval::samplePositions(g.outputPositions(), perImage, rng)
             : std::vector<int64_t>{0};
    first[i + 1] = first[i] + positions[i].size();
  }
  int64_t rows = first.back();
  bool floatTarget = o.floatTarget && original;
  stats.assign(groups, PatchStats());
  for (PatchStats &st : stats) {
    st.gram = Matrix::Zero(size, size);
    st.meanQ = Eigen::VectorXd::Zero(size);
    if (floatTarget) {
      st.cross = Matrix::Zero(size, size);
      st.floatRows.resize(rows, size);
      st.meanF = Eigen::VectorXd::Zero(size);
    }
  }
  // Rows of X for image i and group `group`, as doubles.
  auto patches = [&](size_t i, const rt::Tensor &in, int64_t group) {
    if (!conv)
      return Matrix(Eigen::Map<const Eigen::Matrix<float, 1, Eigen::Dynamic>>(
                        in.f32(), size)
                        .cast<double>());
    std::vector<float> patch;
    eval::appendConvPatches(g, in.f32(), group, positions[i], patch);
    return Matrix(
        Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                                       Eigen::RowMajor>>(
            patch.data(), positions[i].size(), size)
            .cast<double>());
  };
  if (floatTarget &&
      failed(forEachLayerInput(
          *original, layer, inputs, o.executor,
          [&](size_t i, const rt::Tensor &in) {
            for (int64_t group = 0; group < groups; ++group) {
              Matrix x = patches(i, in, group);
              stats[group].floatRows.middleRows(first[i], x.rows()) = x;
              stats[group].meanF += x.colwise().sum().transpose();
            }
          })))
    return failure();
  auto accumulate = [&](size_t i, const rt::Tensor &in) {
    for (int64_t group = 0; group < groups; ++group) {
      PatchStats &st = stats[group];
      Matrix x = patches(i, in, group);
      st.gram.noalias() += x.transpose() * x;
      st.meanQ += x.colwise().sum().transpose();
      if (floatTarget)
        st.cross.noalias() +=
            x.transpose() * st.floatRows.middleRows(first[i], x.rows());
    }
  };
  if (failed(forEachLayerInput(*quantized, *qlayer, inputs, o.executor,
                               accumulate)))
    return failure();
  double n = (double)std::max<int64_t>(1, rows);
  for (PatchStats &st : stats) {
    st.gram /= n;
    st.meanQ /= n;
    if (floatTarget) {
      st.cross /= n;
      st.meanF /= n;
    }
  }
  return success();
}

FailureOr<AdaRoundRow> AdaRounder::roundLayer(const Layer &layer) {
  std::vector<PatchStats> stats;
  if (failed(measure(layer, stats)))
    return failure();
  Operation *op = layer.head;
  auto weightAttr = op->getAttrOfType<ElementsAttr>("weight");
  std::vector<float> w = getFloats(weightAttr);
  const std::vector<float> floatWeights = w;
  int64_t channels = outputChannels(op), perGroup = filtersPerGroup(op);
  int64_t size = w.size() / channels;
  // This layer's width (w8-layers keeps some at 8 bits).
  AdaRoundOptions lo = o;
  lo.quantize = o.quantize.forLayer(layer.index);
  std::vector<float> scales = chooseWeightScales(w, channels, lo.quantize);
  std::vector<RoundingResult> results(stats.size());
  int64_t groups = stats.size();
#pragma omp parallel for schedule(dynamic) if (groups > 1)
  for (int64_t g = 0; g < groups; ++g) {
    PatchStats &st = stats[g];
    ArrayRef<float> wg =
        ArrayRef<float>(w).slice(g * perGroup * size, perGroup * size);
    ArrayRef<float> sg = ArrayRef<float>(scales).slice(g * perGroup, perGroup);
    // With the bias corrected, only the error's variance is left: the
    // centred second moments.
    if (o.correctBias)
      st.gram -= st.meanQ * st.meanQ.transpose();
    // Per-channel scales may be fitted to the layer's loss (a clipped
    // range whose nearest rounding does best), before the rounding is.
    bool search = o.searchScales && lo.quantize.perChannelWeights &&
                  !lo.quantize.pow2Scales;
    if (st.floatRows.size() == 0) {
      ArrayRef<double> gram(st.gram.data(), size * size);
      if (search) {
        std::vector<float> found = searchScales(wg, sg, size, gram, {}, {}, lo);
        std::copy(found.begin(), found.end(), scales.begin() + g * perGroup);
      }
      results[g] = learnRounding(wg, sg, size, gram, lo);
      continue;
    }
    if (o.correctBias)
      st.cross -= st.meanQ * st.meanF.transpose();
    Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                                   Eigen::RowMajor>>
        wm(wg.data(), perGroup, size);
    Matrix wd = wm.cast<double>();
    Matrix y = st.floatRows * wd.transpose(); // float outputs, rows x filters
    std::vector<double> energy(perGroup);
    for (int64_t f = 0; f < perGroup; ++f) {
      double mean = y.col(f).mean();
      energy[f] = y.col(f).squaredNorm() / std::max<int64_t>(1, y.rows()) -
                  (o.correctBias ? mean * mean : 0.0);
    }
    ArrayRef<double> gram(st.gram.data(), size * size),
        cross(st.cross.data(), size * size);
    if (search) {
      std::vector<float> found =
          searchScales(wg, sg, size, gram, cross, energy, lo);
      std::copy(found.begin(), found.end(), scales.begin() + g * perGroup);
    }
    results[g] = learnRounding(wg, sg, size, gram, cross, energy, lo);
  }
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
  std::string base = "layer" + std::to_string(layer.index);
  op->setAttr("weight", makeFloatAttr(op->getContext(),
                                      weightAttr.getShapedType().getShape(),
                                      base + "_weight_adarounded", w));
  if (o.correctBias) {
    // b += w . E[x_ref] - w~ . E[x_q]: the mean output is the target's.
    std::vector<float> bias(channels, 0.0f);
    if (auto b = op->getAttrOfType<ElementsAttr>("bias"))
      bias = getFloats(b);
    for (int64_t g = 0; g < groups; ++g) {
      const PatchStats &st = stats[g];
      const Eigen::VectorXd &ref = st.floatRows.size() ? st.meanF : st.meanQ;
      for (int64_t f = g * perGroup; f < (g + 1) * perGroup; ++f) {
        double shift = 0;
        for (int64_t i = 0; i < size; ++i)
          shift += (double)floatWeights[f * size + i] * ref[i] -
                   (double)w[f * size + i] * st.meanQ[i];
        bias[f] += (float)shift;
        row.meanBiasShift += std::fabs(shift) / channels;
      }
    }
    op->setAttr("bias", makeFloatAttr(op->getContext(), {channels},
                                      base + "_bias_adarounded", bias));
  }
  return row;
}

FailureOr<std::vector<AdaRoundRow>> AdaRounder::run() {
  if (failed(findInt8WeightedLayers(module, "qsim-adaround", layers, targets)))
    return failure();
  if (inputs.empty())
    return module.emitError() << "--qsim-adaround: no images";
  if (o.floatTarget)
    original = module.clone();
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
  bool biases = false;
  for (const AdaRoundRow &r : rows)
    biases |= r.meanBiasShift > 0;
  os << "adaround: " << rows.size() << " layer(s)\n";
  os << strprintf("%-8s %10s %10s %12s %14s %14s %8s%s\n", "layer", "weights",
                  "changed", "kept nearest", "loss nearest", "loss learned",
                  "gain", biases ? "  mean |bias shift|" : "");
  for (const AdaRoundRow &r : rows) {
    os << strprintf(
        "%-8lld %10lld %10lld %5lld/%-6lld %14.4g %14.4g %7.1f%%",
        (long long)r.layer, (long long)r.weights, (long long)r.changed,
        (long long)r.keptRows, (long long)r.rows, r.nearestLoss, r.loss,
        r.nearestLoss > 0 ? 100 * (1 - r.loss / r.nearestLoss) : 0.0);
    if (biases)
      os << strprintf(" %19.4g", r.meanBiasShift);
    os << "\n";
  }
}
