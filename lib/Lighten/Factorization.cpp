//===- Factorization.cpp - conv factorization over the IR ----------------===//

#include "qsim/Lighten/Factorization.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Lighten/Decompositions.h"
#include "qsim/Lighten/Pruning.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Support/StringUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

#include <algorithm>
#include <cmath>
#include <map>

using namespace mlir;
using namespace qsim;
using namespace qsim::lighten;

std::optional<FactorizeMethod>
qsim::lighten::parseFactorizeMethod(StringRef s) {
  if (s == "tucker2")
    return FactorizeMethod::Tucker2;
  if (s == "spatial-svd")
    return FactorizeMethod::SpatialSvd;
  if (s == "depthwise-separable")
    return FactorizeMethod::DepthwiseSeparable;
  if (s == "kernel")
    return FactorizeMethod::Kernel;
  return std::nullopt;
}

StringRef qsim::lighten::stringifyFactorizeMethod(FactorizeMethod m) {
  switch (m) {
  case FactorizeMethod::Tucker2:
    return "tucker2";
  case FactorizeMethod::SpatialSvd:
    return "spatial-svd";
  case FactorizeMethod::DepthwiseSeparable:
    return "depthwise-separable";
  case FactorizeMethod::Kernel:
    return "kernel";
  }
  return "?";
}

namespace {

/// One convolution of a replacement chain.
struct ConvStage {
  ConvWeight w; // [F][C/groups][kh][kw]
  int64_t groups = 1;
  int64_t sy = 1, sx = 1, py = 0, px = 0;
};

/// A chain of convolutions replacing one layer (applied in order).
struct Replacement {
  std::vector<ConvStage> stages;
  std::string ranks;
  double weightError = 0;
  std::string note;
};

int64_t outSize(int64_t in, int64_t k, int64_t s, int64_t p) {
  return (in + 2 * p - k) / s + 1;
}

/// MACs of the chain on a C x H x W input.
int64_t chainMacs(const std::vector<ConvStage> &stages, int64_t h, int64_t w) {
  int64_t macs = 0;
  for (const ConvStage &s : stages) {
    h = outSize(h, s.w.kh, s.sy, s.py);
    w = outSize(w, s.w.kw, s.sx, s.px);
    macs += h * w * s.w.f * s.w.c * s.w.kh * s.w.kw;
  }
  return macs;
}

/// core[R2][C][kh][kw] = sum_r core[R2][r] * first[r][C] (first is 1x1).
ConvWeight foldInputProjection(const ConvWeight &core,
                               const ConvWeight &first) {
  ConvWeight out{core.f, first.c, core.kh, core.kw, {}};
  int64_t k = core.kh * core.kw;
  out.data.assign(out.size(), 0.0f);
  for (int64_t o = 0; o < core.f; ++o)
    for (int64_t r = 0; r < core.c; ++r)
      for (int64_t c = 0; c < first.c; ++c) {
        float m = first.data[r * first.c + c];
        for (int64_t t = 0; t < k; ++t)
          out.data[(o * first.c + c) * k + t] +=
              core.data[(o * core.c + r) * k + t] * m;
      }
  return out;
}

/// out[F][R1][kh][kw] = sum_r last[F][r] * core[r][R1] (last is 1x1).
ConvWeight foldOutputProjection(const ConvWeight &last,
                                const ConvWeight &core) {
  ConvWeight out{last.f, core.c, core.kh, core.kw, {}};
  int64_t k = core.kh * core.kw;
  out.data.assign(out.size(), 0.0f);
  for (int64_t f = 0; f < last.f; ++f)
    for (int64_t r = 0; r < last.c; ++r) {
      float m = last.data[f * last.c + r];
      for (int64_t c = 0; c < core.c; ++c)
        for (int64_t t = 0; t < k; ++t)
          out.data[(f * core.c + c) * k + t] +=
              core.data[(r * core.c + c) * k + t] * m;
    }
  return out;
}

/// "3x3/2 12->10": kernel, stride, channels.
std::string describeConv(Conv2DOp conv) {
  return strprintf("%lldx%lld/%lld %lld->%lld", (long long)conv.getKernelH(),
                   (long long)conv.getKernelW(), (long long)conv.getStride()[0],
                   (long long)conv.getInputChannels(),
                   (long long)conv.getFilters());
}

/// Why `conv` cannot be factorized by `method`, or empty.
std::string ineligibility(Conv2DOp conv, FactorizeMethod method) {
  if (conv.getGroups() != 1)
    return "grouped convolution";
  if (conv.getDilation() != 1)
    return "dilated convolution";
  if (!conv.getWeight())
    return "no weights (shape-only model)";
  int64_t kh = conv.getKernelH(), kw = conv.getKernelW();
  switch (method) {
  case FactorizeMethod::Tucker2:
  case FactorizeMethod::DepthwiseSeparable:
    if (kh * kw == 1)
      return "1x1 kernel";
    break;
  case FactorizeMethod::SpatialSvd:
    if (kh == 1 || kw == 1)
      return "kernel already 1-D";
    break;
  case FactorizeMethod::Kernel:
    if (kh != kw || (kh != 5 && kh != 7))
      return "kernel method needs a 5x5 or 7x7 kernel";
    break;
  }
  return "";
}

Replacement factorize(Conv2DOp conv, const FactorizeOptions &o) {
  ConvWeight w{conv.getFilters(), conv.getInputChannels(), conv.getKernelH(),
               conv.getKernelW(), getFloats(*conv.getWeight())};
  int64_t sy = conv.getStride()[0], sx = conv.getStride()[1];
  int64_t py = conv.getPadding()[0], px = conv.getPadding()[1];
  Replacement r;
  switch (o.method) {
  case FactorizeMethod::Tucker2: {
    Tucker2 t = tucker2(w, o.rank1, o.rank2, o.energy);
    r.ranks = strprintf("r1=%lld r2=%lld", (long long)t.r1, (long long)t.r2);
    r.weightError = relativeError(w.data, reconstruct(t).data);
    // A projection that keeps every channel saves nothing: fold it into the
    // core (exact, the projections are just bases).
    ConvWeight core = t.core;
    bool keepFirst = t.r1 < w.c, keepLast = t.r2 < w.f;
    if (!keepFirst)
      core = foldInputProjection(core, t.first);
    if (!keepLast)
      core = foldOutputProjection(t.last, core);
    if (keepFirst)
      r.stages.push_back({t.first, 1, 1, 1, 0, 0});
    r.stages.push_back({core, 1, sy, sx, py, px});
    if (keepLast)
      r.stages.push_back({t.last, 1, 1, 1, 0, 0});
    break;
  }
  case FactorizeMethod::SpatialSvd: {
    SpatialSVD s = spatialSvd(w, o.rank1, o.energy);
    r.ranks = strprintf("r=%lld", (long long)s.rank);
    r.weightError = relativeError(w.data, reconstruct(s).data);
    r.stages.push_back({s.vertical, 1, sy, 1, py, 0});
    r.stages.push_back({s.horizontal, 1, 1, sx, 0, px});
    r.note = "k x 1 / 1 x k kernels: Darknet's cfg cannot express them";
    break;
  }
  case FactorizeMethod::DepthwiseSeparable: {
    DepthwiseSeparable d = depthwiseSeparable(w);
    r.ranks = "rank 1 per channel";
    r.weightError = relativeError(w.data, reconstruct(d).data);
    r.stages.push_back({d.depthwise, w.c, sy, sx, py, px});
    r.stages.push_back({d.pointwise, 1, 1, 1, 0, 0});
    r.note = "least-squares fit: fine-tune";
    break;
  }
  case FactorizeMethod::Kernel: {
    int64_t mid = o.rank1 > 0 ? o.rank1 : std::min(w.c, w.f);
    KernelChain k = kernelChain(w, mid);
    r.ranks = strprintf("%zu x 3x3, mid=%lld", k.stages.size(), (long long)mid);
    ConvWeight composed = k.stages[0];
    for (size_t i = 1; i < k.stages.size(); ++i)
      composed = composeKernels(composed, k.stages[i]);
    r.weightError = relativeError(w.data, composed.data);
    // The chain's paddings add up to the original's, so the output size is
    // the same: the later stages take one each while the budget lasts, the
    // first takes what is left. The stride goes to the last stage.
    int64_t n = k.stages.size();
    std::vector<int64_t> padY(n, 0), padX(n, 0);
    int64_t restY = py, restX = px;
    for (int64_t i = n - 1; i >= 1; --i) {
      padY[i] = std::min<int64_t>(1, restY), restY -= padY[i];
      padX[i] = std::min<int64_t>(1, restX), restX -= padX[i];
    }
    padY[0] = restY, padX[0] = restX;
    for (int64_t i = 0; i < n; ++i) {
      bool last = i == n - 1;
      r.stages.push_back(
          {k.stages[i], 1, last ? sy : 1, last ? sx : 1, padY[i], padX[i]});
    }
    r.note = "approximate, borders differ: fine-tune";
    break;
  }
  }
  return r;
}

/// A factorized layer: its line of the report and its new layers alone (with
/// the batch norm they feed), for the layer output error.
struct AppliedFactorization {
  size_t report;
  OwningOpRef<ModuleOp> replacement;
  int64_t stages;
};
/// By the layer's index before the rewrite.
using AppliedFactorizations = std::map<int64_t, AppliedFactorization>;

/// A float model, and `o.layers` names convolutions of it.
LogicalResult checkRequest(ModuleOp module, ArrayRef<Layer> layers,
                           const FactorizeOptions &o) {
  for (const Layer &l : layers)
    for (Type t : l.head->getResultTypes())
      if (!getElementTypeOrSelf(t).isF32())
        return l.head->emitError()
               << describeLayer(l.head)
               << ": factorize the float model (before --qsim-quantize)";
  for (int64_t i : o.layers) {
    if (i < 0 || i >= (int64_t)layers.size())
      return module.emitError()
             << "layer " << i << " does not exist (the model has "
             << layers.size() << " layers)";
    if (!isa<Conv2DOp>(layers[i].head))
      return layers[i].head->emitError()
             << describeLayer(layers[i].head)
             << ": not a convolutional layer, cannot be factorized";
  }
  return success();
}

/// The convolutions to factorize, in layer order: those eligible for the
/// method, the `top` heaviest when it limits them. Named layers that are not
/// eligible go to `result` as skipped.
std::vector<const Layer *> chooseConvs(ArrayRef<Layer> layers,
                                       const FactorizeOptions &o,
                                       FactorizeResult &result) {
  std::vector<const Layer *> chosen;
  for (const Layer &l : layers) {
    auto conv = dyn_cast<Conv2DOp>(l.head);
    if (!conv || (!o.layers.empty() && !o.layers.count(l.index)))
      continue;
    FactorizedLayer f;
    f.layer = l.index;
    f.shape = describeConv(conv);
    f.macsBefore = conv.getMACs();
    std::string why = ineligibility(conv, o.method);
    if (why.empty() && f.macsBefore < o.minMacs)
      why = "below min-macs";
    if (!why.empty()) {
      // Only layers the user named are worth reporting as skipped.
      if (!o.layers.empty()) {
        f.note = why;
        result.layers.push_back(f);
      }
      continue;
    }
    chosen.push_back(&l);
  }
  std::stable_sort(chosen.begin(), chosen.end(),
                   [](const Layer *a, const Layer *b) {
                     return cast<Conv2DOp>(a->head).getMACs() >
                            cast<Conv2DOp>(b->head).getMACs();
                   });
  if (o.top > 0 && (int64_t)chosen.size() > o.top)
    chosen.resize(o.top);
  std::sort(chosen.begin(), chosen.end(),
            [](const Layer *a, const Layer *b) { return a->index < b->index; });
  return chosen;
}

/// Inserts the stages of `r` before `conv` (layer `layerIndex`) and returns
/// them. The last stage takes over the bias, the activation and the
/// recorded analyses; intermediate stages are linear.
std::vector<Operation *> insertStages(Conv2DOp conv, const Replacement &r,
                                      int64_t layerIndex,
                                      FactorizeMethod methodKind) {
  MLIRContext *ctx = conv.getContext();
  OpBuilder b(conv);
  Value cur = conv.getInput();
  std::vector<Operation *> newOps;
  std::string method = stringifyFactorizeMethod(methodKind).str();
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const ConvStage &s = r.stages[i];
    bool last = i + 1 == r.stages.size();
    auto curT = cast<ShapedType>(cur.getType());
    int64_t oh = outSize(curT.getDimSize(2), s.w.kh, s.sy, s.py);
    int64_t ow = outSize(curT.getDimSize(3), s.w.kw, s.sx, s.px);
    std::string origin =
        strprintf("%s %zu/%zu of layer %lld", method.c_str(), i + 1,
                  r.stages.size(), (long long)layerIndex);
    Location loc = FusedLoc::get(
        ctx, {conv.getLoc(), NameLoc::get(b.getStringAttr(origin))});
    OperationState st(loc, Conv2DOp::getOperationName());
    st.addOperands(cur);
    st.addTypes(RankedTensorType::get({1, s.w.f, oh, ow}, b.getF32Type()));
    std::string wname =
        strprintf("factorized%lld_%zu_weight", (long long)layerIndex, i + 1);
    st.addAttribute("filters", b.getI64IntegerAttr(s.w.f));
    st.addAttribute("size", b.getDenseI64ArrayAttr({s.w.kh, s.w.kw}));
    st.addAttribute("stride", b.getDenseI64ArrayAttr({s.sy, s.sx}));
    st.addAttribute("padding", b.getDenseI64ArrayAttr({s.py, s.px}));
    if (s.groups != 1)
      st.addAttribute("groups", b.getI64IntegerAttr(s.groups));
    st.addAttribute("activation",
                    last ? conv.getActivationAttr()
                         : ActivationAttr::get(ctx, Activation::linear));
    st.addAttribute("weight", makeFloatAttr(ctx, {s.w.f, s.w.c, s.w.kh, s.w.kw},
                                            wname, s.w.data));
    if (last && conv.getBias())
      st.addAttribute("bias", conv.getBiasAttr());
    // Training keys and, on the last stage, recorded analyses (e.g.
    // calibration of this layer's output) carry over; batch-norm statistics
    // do not: the factorized layer only approximates the output they
    // describe.
    for (NamedAttribute a : conv->getDiscardableAttrs())
      if (a.getName() != "qsim.origin" && a.getName() != kBatchNormStatsAttr &&
          (last || a.getName() == "qsim.cfg"))
        st.addAttribute(a.getName(), a.getValue());
    st.addAttribute("qsim.origin", b.getStringAttr(origin));
    Operation *op = b.create(st);
    newOps.push_back(op);
    cur = op->getResult(0);
  }
  return newOps;
}

/// Factorizes the convolution of `l` unless the ranks save no MACs (and
/// `o.force` is off); reports it in `result`, and in `applied` when done.
void factorizeLayer(ModuleOp module, const Layer &l, const FactorizeOptions &o,
                    FactorizeResult &result, AppliedFactorizations &applied) {
  auto conv = cast<Conv2DOp>(l.head);
  auto in = cast<ShapedType>(conv.getInput().getType());
  FactorizedLayer f;
  f.layer = l.index;
  f.shape = describeConv(conv);
  f.macsBefore = conv.getMACs();
  f.paramsBefore = conv.getParameterCount();
  Replacement r = factorize(conv, o);
  f.ranks = r.ranks;
  f.weightError = r.weightError;
  f.note = r.note;
  int64_t macsAfter = chainMacs(r.stages, in.getDimSize(2), in.getDimSize(3));
  if (macsAfter >= f.macsBefore && !o.force) {
    f.macsAfter = macsAfter;
    f.note = "skipped: these ranks save no MACs (lower energy= or give rank=)";
    result.layers.push_back(f);
    return;
  }
  std::vector<Operation *> newOps = insertStages(conv, r, l.index, o.method);
  Value cur = newOps.back()->getResult(0);
  conv.getResult().replaceAllUsesWith(cur);
  conv.erase();
  for (Operation *op : newOps) {
    f.macsAfter += cast<LayerOpInterface>(op).getMACs();
    f.paramsAfter += cast<LayerOpInterface>(op).getParameterCount();
  }
  f.applied = true;
  std::vector<Operation *> layerOps = newOps;
  if (l.batchNorm)
    layerOps.push_back(l.batchNorm);
  Value out = l.batchNorm ? l.batchNorm->getResult(0) : cur;
  applied.emplace(l.index,
                  AppliedFactorization{result.layers.size(),
                                       extractOpsAsModule(layerOps, out),
                                       static_cast<int64_t>(newOps.size())});
  result.layers.push_back(f);
}

/// Where each replaced layer's first new layer is now: every earlier
/// replacement added (stages - 1) layers.
void locateNewLayers(const AppliedFactorizations &applied,
                     FactorizeResult &result) {
  int64_t added = 0;
  for (auto &[index, a] : applied) {
    FactorizedLayer &f = result.layers[a.report];
    f.firstNewLayer = index + added;
    auto sub = getLayers(getMainFunc(*a.replacement));
    if (succeeded(sub))
      added += sub->size() - 1;
  }
}

/// Each replaced layer's output error: its replacement run on the input the
/// original model gives the layer, against the layer's own output, summed
/// over `inputs`.
LogicalResult measureLayerErrors(ModuleOp module, ModuleOp original,
                                 const std::vector<rt::Tensor> &inputs,
                                 const AppliedFactorizations &applied,
                                 FactorizeResult &result) {
  interp::ExecutorOptions eo;
  auto ex = interp::Executor::create(original, eo);
  if (!ex)
    return failure(); // the diagnostic names the layer
  struct ErrorSums {
    double err = 0, ref = 0;
    std::unique_ptr<interp::Executor> replacement;
  };
  std::map<size_t, ErrorSums> byStep;
  for (size_t s = 0; s < ex->steps().size(); ++s) {
    auto it = applied.find(ex->steps()[s].layer);
    if (it == applied.end())
      continue;
    ErrorSums e;
    e.replacement = interp::Executor::create(*it->second.replacement, eo);
    if (!e.replacement)
      return failure();
    byStep.emplace(s, std::move(e));
  }
  ex->setStepHook([&](size_t step) {
    auto it = byStep.find(step);
    if (it == byStep.end())
      return;
    std::vector<rt::Tensor> ins = ex->stepInputs(step);
    std::vector<float> ref = ex->stepOutput(step).toFloat();
    it->second.replacement->setInput(ins.front());
    it->second.replacement->run();
    std::vector<float> got =
        it->second.replacement->outputs().front().toFloat();
    for (size_t i = 0; i < ref.size(); ++i) {
      double d = (double)got[i] - ref[i];
      it->second.err += d * d;
      it->second.ref += (double)ref[i] * ref[i];
    }
  });
  for (const rt::Tensor &in : inputs) {
    ex->setInput(in);
    ex->run();
  }
  for (auto &[step, e] : byStep) {
    FactorizedLayer &f =
        result.layers[applied.at(ex->steps()[step].layer).report];
    f.outputError = e.ref > 0 ? std::sqrt(e.err / e.ref) : 0;
  }
  return success();
}

/// Refits each replacement's last stage to the original layer's
/// pre-activation output on the images (Reconstruction.h): the stages
/// before it stay as the decomposition made them, the last one absorbs what
/// they lose on the data. The replacements measured afterwards are the
/// refit ones.
LogicalResult refitLastStages(ModuleOp module, ModuleOp original,
                              const std::vector<rt::Tensor> &inputs,
                              const FactorizeOptions &o,
                              AppliedFactorizations &applied,
                              FactorizeResult &result) {
  auto originalLayers = getLayers(getMainFunc(original));
  if (failed(originalLayers))
    return failure();
  std::vector<RefitRequest> requests;
  for (auto &[index, a] : applied) {
    const FactorizedLayer &f = result.layers[a.report];
    RefitRequest r;
    r.layer = f.firstNewLayer + a.stages - 1;
    r.originalLayer = index;
    auto conv = cast<Conv2DOp>((*originalLayers)[index].head);
    for (int64_t i = 0; i < conv.getFilters(); ++i)
      r.originalFilters.push_back(i);
    requests.push_back(std::move(r));
  }
  if (failed(reconstructConvs(module, original, inputs, std::move(requests),
                              o.reconstruct, result.refits)))
    return failure();
  auto layers = getLayers(getMainFunc(module));
  if (failed(layers))
    return failure();
  for (auto &[index, a] : applied) {
    int64_t first = result.layers[a.report].firstNewLayer;
    std::vector<Operation *> ops;
    for (int64_t i = first; i < first + a.stages; ++i)
      ops.insert(ops.end(), (*layers)[i].ops.begin(), (*layers)[i].ops.end());
    a.replacement =
        extractOpsAsModule(ops, (*layers)[first + a.stages - 1].output());
  }
  return success();
}

/// The layer output errors and the model output SQNR on the images.
LogicalResult measureOutputErrors(ModuleOp module, ModuleOp original,
                                  const std::vector<rt::Tensor> &inputs,
                                  const AppliedFactorizations &applied,
                                  FactorizeResult &result) {
  std::string error;
  if (failed(measureLayerErrors(module, original, inputs, applied, result)))
    return failure();
  std::vector<float> refOut, newOut;
  if (!eval::runOutputs(original, inputs, refOut, error) ||
      !eval::runOutputs(module, inputs, newOut, error))
    return module.emitError() << error;
  result.outputSqnr = eval::sqnr(refOut, newOut);
  result.imagesUsed = inputs.size();
  return success();
}

} // namespace

LogicalResult qsim::lighten::factorizeConvs(ModuleOp module,
                                            const FactorizeOptions &options,
                                            FactorizeResult &result) {
  FactorizeOptions o = options; // the positions per image once known
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function";
  if (o.energy <= 0 || o.energy > 1)
    return module.emitError() << "energy must be in (0, 1]";
  auto layers = getLayers(func);
  auto before = computeModelStats(module);
  if (failed(layers) || failed(before) ||
      failed(checkRequest(module, *layers, o)))
    return failure();
  result = FactorizeResult();
  result.macsBefore = before->macs;
  result.paramsBefore = before->params;
  std::vector<const Layer *> chosen = chooseConvs(*layers, o, result);

  // The original, for the output errors.
  OwningOpRef<ModuleOp> original;
  if (!o.images.empty())
    original = module.clone();
  AppliedFactorizations applied;
  for (const Layer *l : chosen)
    factorizeLayer(module, *l, o, result, applied);
  if (failed(refreshResultTypes(func)))
    return failure();
  renumberLayerLocations(func);
  if (failed(verify(module)))
    return module.emitError() << "factorized module does not verify (bug)";
  auto after = computeModelStats(module);
  if (failed(after))
    return failure();
  result.macsAfter = after->macs;
  result.paramsAfter = after->params;
  locateNewLayers(applied, result);
  if (o.images.empty() || applied.empty())
    return success();
  std::vector<rt::Tensor> inputs;
  if (failed(loadRefitImages(*original, o.images, o.maxImages, inputs)))
    return failure();
  o.reconstruct.samplesPerImage =
      o.reconstruct.positionsPerImage(inputs.size());
  if (o.refit &&
      failed(refitLastStages(module, *original, inputs, o, applied, result)))
    return failure();
  return measureOutputErrors(module, *original, inputs, applied, result);
}

void qsim::lighten::printFactorizeReport(const FactorizeOptions &o,
                                         const FactorizeResult &r,
                                         raw_ostream &os) {
  os << "--qsim-factorize-conv: method=" << stringifyFactorizeMethod(o.method);
  if (o.rank1 > 0)
    os << " rank=" << o.rank1
       << (o.method == FactorizeMethod::Tucker2 && o.rank2 > 0
               ? ":" + std::to_string(o.rank2)
               : "");
  else if (o.method != FactorizeMethod::DepthwiseSeparable &&
           o.method != FactorizeMethod::Kernel)
    os << " energy=" << strprintf("%g", o.energy);
  os << "\n";
  os << strprintf("%5s %5s  %-18s %-22s %10s %10s %7s %10s %10s  %s\n", "layer",
                  "now", "conv", "ranks", "MACs", "MACs after", "saved",
                  "weight err", "output err", "note");
  int applied = 0;
  for (const FactorizedLayer &f : r.layers) {
    std::string now = f.applied ? std::to_string(f.firstNewLayer) : "-";
    std::string saved =
        f.macsAfter && f.macsBefore
            ? strprintf("%.1f%%",
                        100.0 * (1.0 - (double)f.macsAfter / f.macsBefore))
            : "-";
    std::string outErr =
        f.outputError >= 0 ? strprintf("%.4f", f.outputError) : "-";
    std::string wErr = f.ranks.empty() ? "-" : strprintf("%.4f", f.weightError);
    os << strprintf("%5lld %5s  %-18s %-22s %10lld %10s %7s %10s %10s  %s\n",
                    (long long)f.layer, now.c_str(), f.shape.c_str(),
                    f.ranks.c_str(), (long long)f.macsBefore,
                    f.macsAfter ? std::to_string(f.macsAfter).c_str() : "-",
                    saved.c_str(), wErr.c_str(), outErr.c_str(),
                    f.note.c_str());
    applied += f.applied;
  }
  os << strprintf("factorized %d layer(s): MACs %lld -> %lld (%.1f%%), params "
                  "%lld -> %lld (%.1f%%)\n",
                  applied, (long long)r.macsBefore, (long long)r.macsAfter,
                  r.macsBefore ? 100.0 * r.macsAfter / r.macsBefore : 100.0,
                  (long long)r.paramsBefore, (long long)r.paramsAfter,
                  r.paramsBefore ? 100.0 * r.paramsAfter / r.paramsBefore
                                 : 100.0);
  for (const ReconstructedLayer &f : r.refits)
    os << strprintf("refit of layer %lld (last stage) on the images: relative "
                    "output error %.4f -> %.4f%s\n",
                    (long long)f.layer, f.errorBefore, f.errorAfter,
                    f.errorAfter < f.errorBefore ? "" : " (kept: no better)");
  if (r.outputSqnr)
    os << strprintf(
        "model output SQNR vs the original on %d image(s): %.2f dB\n",
        r.imagesUsed, *r.outputSqnr);
  if (applied == 0)
    os << "note: no layer was factorized"
       << (r.layers.empty()
               ? strprintf(" (no convolution eligible for %s)",
                           stringifyFactorizeMethod(o.method).data())
               : std::string())
       << "\n";
}
