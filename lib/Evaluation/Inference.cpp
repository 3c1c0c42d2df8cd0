//===- Inference.cpp - image in, detections out --------------------------===//

#include "qsim/Evaluation/Inference.h"

#include "mlir/IR/BuiltinOps.h"

#include <chrono>

using namespace mlir;
using namespace qsim;
using namespace qsim::interp;
using namespace qsim::eval;

ModelInfo qsim::eval::describeModel(ModuleOp module,
                                      const Executor &executor) {
  ModelInfo info;
  info.flavor = getFlavor(module);
  auto in = executor.inputShape();
  info.netC = in.c;
  info.netH = in.h;
  info.netW = in.w;
  if (auto lb = module->getAttrOfType<BoolAttr>("qsim.letter_box"))
    info.letterBoxCfg = lb.getValue();
  const auto &steps = executor.steps();
  for (size_t i = 0; i < steps.size(); ++i) {
    Operation *op = steps[i].head;
    HeadDesc h;
    h.step = i;
    if (auto y = dyn_cast<YoloOp>(op)) {
      auto shape = steps[i].output;
      h.isYolo = true;
      h.yolo.w = shape.w;
      h.yolo.h = shape.h;
      h.yolo.classes = y.getClasses();
      for (int64_t m : y.getMask())
        h.yolo.mask.push_back(m);
      h.yolo.anchors.assign(y.getAnchors().begin(), y.getAnchors().end());
      h.yolo.newCoords = y.getNewCoords();
      h.yolo.layer = steps[i].layer;
      h.nmsKind = decodingNmsKind(y, info.flavor);
      h.betaNms = y.getBetaNms().convertToFloat();
      h.classes = y.getClasses();
      info.heads.push_back(h);
    } else if (auto g = dyn_cast<GaussianYoloOp>(op)) {
      h.isYolo = false;
      h.isGaussianYolo = true;
      h.gaussian.w = steps[i].output.w;
      h.gaussian.h = steps[i].output.h;
      h.gaussian.classes = g.getClasses();
      for (int64_t m : g.getMask())
        h.gaussian.mask.push_back(m);
      h.gaussian.anchors.assign(g.getAnchors().begin(), g.getAnchors().end());
      h.gaussian.layer = steps[i].layer;
      h.classes = g.getClasses();
      info.heads.push_back(h);
    } else if (auto v1 = dyn_cast<DetectionOp>(op)) {
      h.isYolo = false;
      h.isDetectionV1 = true;
      h.v1.side = v1.getSide();
      h.v1.classes = v1.getClasses();
      h.v1.num = v1.getNum();
      h.v1.coords = v1.getCoords();
      h.v1.sqrt = v1.getSqrt();
      h.v1.layer = steps[i].layer;
      h.classes = v1.getClasses();
      info.heads.push_back(h);
    } else if (auto r = dyn_cast<RegionOp>(op)) {
      auto shape = steps[i].output;
      h.isYolo = false;
      h.region.w = shape.w;
      h.region.h = shape.h;
      h.region.classes = r.getClasses();
      h.region.coords = r.getCoords();
      h.region.num = r.getNum();
      h.region.anchors.assign(r.getAnchors().begin(), r.getAnchors().end());
      h.region.softmax = r.getSoftmax();
      h.region.classfix = r.getClassfix();
      h.region.layer = steps[i].layer;
      h.classes = r.getClasses();
      info.heads.push_back(h);
    }
  }
  return info;
}

rt::Preprocess qsim::eval::choosePreprocess(const ModelInfo &info,
                                              std::optional<bool> letterbox) {
  if (letterbox)
    return *letterbox ? rt::Preprocess::Letterbox : rt::Preprocess::Resize;
  if (info.isClassifier())
    return info.flavor == Flavor::AlexeyAB ? rt::Preprocess::CenterCrop
                                           : rt::Preprocess::Letterbox;
  return rt::detectorPreprocess(info.flavor == Flavor::PJReddie,
                                info.letterBoxCfg);
}

InferenceResult qsim::eval::decodeOutputs(Executor &executor,
                                            const ModelInfo &info, int imageW,
                                            int imageH,
                                            const InferenceOptions &options) {
  InferenceResult res;
  res.imageW = imageW;
  res.imageH = imageH;
  std::vector<rt::Tensor> outs = executor.outputs();
  const auto &outSteps = executor.outputSteps();
  if (info.isClassifier()) {
    const rt::Tensor &t = outs.back();
    std::vector<float> v = t.toFloat();
    for (int i :
         rt::topK(v.data(), v.size(), std::min<int>(options.topK, v.size())))
      res.top.push_back({i, v[i]});
    return res;
  }
  rt::DecodeOptions d;
  d.netW = info.netW;
  d.netH = info.netH;
  d.imageW = imageW;
  d.imageH = imageH;
  d.thresh = options.thresh;
  d.relative = true;
  d.flavor = info.flavor == Flavor::AlexeyAB ? rt::Flavor::AlexeyAB
                                             : rt::Flavor::PJReddie;
  d.letterbox =
      choosePreprocess(info, options.letterbox) == rt::Preprocess::Letterbox;
  std::vector<std::vector<float>> keep; // head data must outlive decoding
  std::vector<rt::HeadSpec> specs;
  for (const HeadDesc &h : info.heads) {
    const rt::Tensor *t = nullptr;
    for (size_t i = 0; i < outSteps.size(); ++i)
      if (outSteps[i] == h.step)
        t = &outs[i];
    std::vector<float> data =
        t ? t->toFloat() : executor.stepOutput(h.step).toFloat();
    keep.push_back(std::move(data));
    rt::HeadSpec s;
    s.isYolo = h.isYolo;
    s.yolo = h.yolo;
    s.region = h.region;
    s.isGaussianYolo = h.isGaussianYolo;
    s.isDetectionV1 = h.isDetectionV1;
    s.gaussian = h.gaussian;
    s.v1 = h.v1;
    s.yolo.data = s.region.data = keep.back().data();
    s.gaussian.data = s.v1.data = keep.back().data();
    s.nmsKind = h.nmsKind;
    s.betaNms = h.betaNms;
    s.classes = h.classes;
    specs.push_back(std::move(s));
  }
  res.detections = rt::decodeHeads(specs, d, options.nms);
  res.candidates = res.detections.size();
  res.reported =
      rt::reportDetections(res.detections, imageW, imageH, options.thresh);
  return res;
}

InferenceResult qsim::eval::runImage(Executor &executor,
                                       const ModelInfo &info,
                                       const rt::Image &image,
                                       const InferenceOptions &options) {
  rt::Tensor input = rt::makeNetworkInput(
      image, info.netW, info.netH, choosePreprocess(info, options.letterbox));
  executor.setInput(input);
  auto t0 = std::chrono::steady_clock::now();
  executor.run();
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
  InferenceResult res =
      decodeOutputs(executor, info, image.w, image.h, options);
  res.forwardMillis = ms;
  return res;
}
