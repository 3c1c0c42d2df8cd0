//===- DarknetImporter.cpp - .cfg/.weights to the qsim dialect -----------===//
//
// One pass over the cfg sections builds one op (two for batch_normalize=1)
// per layer, computing shapes with the same formulas the verifiers use, and
// takes each layer's floats from the weights file in Darknet's order
// (docs/darknet.md §R2.2). Weight attributes reference the mapped file
// directly.
//
//===----------------------------------------------------------------------===//

#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Dialect/QSim/IR/Shapes.h"
#include "qsim/Target/Darknet/CfgParser.h"
#include "qsim/Target/Darknet/WeightsFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::darknet;
using shapes::CHW;

namespace {

std::optional<Activation> parseActivationName(StringRef s) {
  if (s == "revleaky")
    return Activation::leaky; // AlexeyAB: identical to leaky at inference
  return symbolizeActivation(s);
}

/// The product of `dims` in checked 64-bit arithmetic (nullopt: overflow).
std::optional<int64_t> elementCount(ArrayRef<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    std::optional<int64_t> next = llvm::checkedMul(n, d);
    if (!next)
      return std::nullopt;
    n = *next;
  }
  return n;
}

std::string shapeText(ArrayRef<int64_t> dims) {
  std::string s;
  for (int64_t d : dims)
    s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

/// "640 GB" for a float tensor of `count` elements (nullopt: overflowed
/// 64 bits), or for `total` elements when given.
std::string bytesText(std::optional<int64_t> count, uint64_t total = 0) {
  if (!count)
    return "more than 2^63 elements";
  double bytes = (double)(total ? total : (uint64_t)*count) * sizeof(float);
  const char *units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof(buf), u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

/// Where weight values come from: a mapped file, a seeded generator, or
/// nowhere (shape-only model).
class WeightSource {
public:
  bool init(const ImportOptions &opts, std::string &error,
            WeightsHeader &header, bool &hasHeader) {
    if (opts.randomSeed) {
      random = true;
      state = *opts.randomSeed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
      return true;
    }
    if (opts.weightsPath.empty())
      return true;
    llvm::sys::fs::file_status status;
    if (!llvm::sys::fs::status(opts.weightsPath, status) &&
        status.type() != llvm::sys::fs::file_type::regular_file &&
        status.type() != llvm::sys::fs::file_type::directory_file)
      return initStream(opts, error, header, hasHeader);
    auto buf = llvm::MemoryBuffer::getFile(opts.weightsPath, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
    if (!buf) {
      error = "cannot open weights file '" + opts.weightsPath +
              "': " + buf.getError().message();
      return false;
    }
    buffer = std::shared_ptr<llvm::MemoryBuffer>(std::move(*buf));
    ArrayRef<char> bytes(buffer->getBufferStart(), buffer->getBufferSize());
    std::string herr;
    if (!readWeightsHeader(bytes, opts.flavor, header, herr)) {
      error = "weights file '" + opts.weightsPath + "': " + herr;
      return false;
    }
    hasHeader = true;
    headerBytes = header.size(opts.flavor);
    fileBytes = bytes.size();
    size_t payload = fileBytes - headerBytes;
    data = reinterpret_cast<const float *>(bytes.data() + headerBytes);
    total = payload / sizeof(float);
    trailingBytes = payload % sizeof(float);
    return true;
  }

  /// A pipe or device (/dev/zero) has no size to map: its bytes are read as
  /// the layers ask for them, never more than the cfg needs (plus one byte
  /// to tell whether the file is longer).
  bool initStream(const ImportOptions &opts, std::string &error,
                  WeightsHeader &header, bool &hasHeader) {
    std::error_code ec =
        llvm::sys::fs::openFileForRead(opts.weightsPath, streamFd);
    if (ec) {
      error = "cannot open weights file '" + opts.weightsPath +
              "': " + ec.message();
      return false;
    }
    streaming = true;
    char head[20];
    size_t got = readStream(head, 12);
    if (got == 12) {
      WeightsHeader probe;
      probe.major = (int32_t)llvm::support::endian::read32le(head);
      probe.minor = (int32_t)llvm::support::endian::read32le(head + 4);
      got += readStream(head + 12, probe.size(opts.flavor) - 12);
    }
    std::string herr;
    if (!readWeightsHeader(ArrayRef<char>(head, got), opts.flavor, header,
                           herr)) {
      error = "weights file '" + opts.weightsPath + "': " + herr;
      return false;
    }
    hasHeader = true;
    headerBytes = header.size(opts.flavor);
    return true;
  }

  ~WeightSource() {
    if (streamFd >= 0)
      llvm::sys::Process::SafelyCloseFileDescriptor(streamFd);
  }

  bool hasValues() const { return random || buffer || streaming; }

  /// Bytes of weights that may be loaded; a larger model is refused before
  /// anything is allocated.
  void setLimit(uint64_t bytes) { limitBytes = bytes; }
  /// Set when a layer's weights would pass the limit (nothing was taken).
  const std::string &getLimitError() const { return limitError; }

  /// Weights bytes the cfg has asked for so far.
  uint64_t bytesNeeded() const { return needed * sizeof(float); }

  /// Initialisation of synthetic values (variance-preserving for weights).
  enum class Init { Weight, Bias, Scale, Mean, Variance };

  /// The next `shape`-sized array, or null when there are no values (shape
  /// only) or the file ran out (remembered for the final size report).
  ElementsAttr take(MLIRContext *ctx, ArrayRef<int64_t> shape, StringRef name,
                    Init init, int64_t fanIn, const std::string &layerLabel) {
    if (!limitError.empty())
      return {};
    std::optional<int64_t> count = elementCount(shape);
    uint64_t sum = count ? (uint64_t)needed + (uint64_t)*count : UINT64_MAX;
    if (hasValues() && (!count || sum > limitBytes / sizeof(float))) {
      limitError = "weights " + shapeText(shape) +
                   " bring the model's "
                   "weights to " +
                   bytesText(count, sum) + " (limit " +
                   std::to_string(limitBytes >> 20) + " MB, --max-memory-mb)";
      return {};
    }
    int64_t n = count.value_or(0);
    needed += n;
    auto type = RankedTensorType::get(shape, Float32Type::get(ctx));
    if (random) {
      std::vector<float> v(n);
      float a = init == Init::Weight
                    ? std::sqrt(3.0f / std::max<int64_t>(fanIn, 1))
                    : 0.1f;
      for (float &x : v) {
        float u = uniform();
        switch (init) {
        case Init::Weight:
        case Init::Bias:
        case Init::Mean:
          x = (2 * u - 1) * a;
          break;
        case Init::Scale:
        case Init::Variance:
          x = 0.5f + u;
          break;
        }
      }
      return makeFloatAttr(ctx, shape, name, v);
    }
    if (streaming)
      return takeFromStream(ctx, shape, name, n, layerLabel);
    if (!buffer)
      return {};
    if (cursor + n > total) {
      if (firstShortLayer.empty())
        firstShortLayer = layerLabel;
      cursor = total;
      return {};
    }
    ArrayRef<char> bytes(reinterpret_cast<const char *>(data + cursor),
                         n * sizeof(float));
    cursor += n;
    // The blob keeps the mapping alive; no copy of the floats is made.
    auto blob = UnmanagedAsmResourceBlob::allocateWithAlign(
        bytes, alignof(float),
        [keep = buffer](void *, size_t, size_t) { (void)keep; });
    return DenseResourceElementsAttr::get(type, name, std::move(blob));
  }

  /// Checks that the file held exactly the floats the cfg needs.
  bool checkSize(const std::string &path, std::string &error) {
    if (streaming)
      return checkStreamSize(path, error);
    if (!buffer)
      return true;
    size_t expected = headerBytes + needed * sizeof(float);
    if (expected == fileBytes)
      return true;
    error = "weights file '" + path + "' does not match the cfg: expected " +
            std::to_string(expected) + " bytes (" +
            std::to_string(headerBytes) + "-byte header + " +
            std::to_string(needed) + " floats), actual " +
            std::to_string(fileBytes) + " bytes";
    if (!firstShortLayer.empty())
      error += "; the file runs out in " + firstShortLayer;
    else if (fileBytes > expected)
      error += "; " + std::to_string(fileBytes - expected) +
               " bytes left over after the last layer";
    return false;
  }

private:
  size_t readStream(char *dst, size_t bytes) {
    size_t done = 0;
    while (done < bytes) {
      auto r = llvm::sys::fs::readNativeFile(
          streamFd, llvm::MutableArrayRef<char>(dst + done, bytes - done));
      if (!r) {
        llvm::consumeError(r.takeError());
        break;
      }
      if (*r == 0)
        break;
      done += *r;
    }
    return done;
  }

  ElementsAttr takeFromStream(MLIRContext *ctx, ArrayRef<int64_t> shape,
                              StringRef name, int64_t n,
                              const std::string &layerLabel) {
    if (!firstShortLayer.empty())
      return {};
    std::vector<float> v(n);
    size_t got =
        readStream(reinterpret_cast<char *>(v.data()), n * sizeof(float));
    streamBytes += got;
    if (got != n * sizeof(float)) {
      firstShortLayer = layerLabel;
      return {};
    }
    return makeFloatAttr(ctx, shape, name, v);
  }

  bool checkStreamSize(const std::string &path, std::string &error) {
    char extra;
    size_t expected = headerBytes + needed * sizeof(float);
    if (firstShortLayer.empty() && readStream(&extra, 1) == 0)
      return true;
    error = "weights file '" + path +
            "' (not a regular file) does not match "
            "the cfg: expected " +
            std::to_string(expected) + " bytes (" +
            std::to_string(headerBytes) + "-byte header + " +
            std::to_string(needed) + " floats)";
    if (!firstShortLayer.empty())
      error += "; it ends after " + std::to_string(headerBytes + streamBytes) +
               " bytes, in " + firstShortLayer;
    else
      error += "; it continues after them";
    return false;
  }

  float uniform() {
    // splitmix64: deterministic on every platform.
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (z >> 40) * (1.0f / 16777216.0f);
  }

  std::shared_ptr<llvm::MemoryBuffer> buffer;
  const float *data = nullptr;
  size_t total = 0, cursor = 0, needed = 0;
  size_t headerBytes = 0, fileBytes = 0, trailingBytes = 0;
  bool random = false;
  uint64_t state = 0;
  std::string firstShortLayer;
  int streamFd = -1;
  bool streaming = false;
  size_t streamBytes = 0;
  uint64_t limitBytes = UINT64_MAX;
  std::string limitError;
};

class Importer {
public:
  Importer(MLIRContext *ctx, StringRef cfgName, const ImportOptions &opts)
      : ctx(ctx), cfgName(cfgName.str()), opts(opts), builder(ctx) {}

  OwningOpRef<ModuleOp> run(StringRef text);

private:
  void report(unsigned line, bool isError, const std::string &msg) {
    Location loc = FileLineColLoc::get(ctx, cfgName, line, line ? 1 : 0);
    if (isError) {
      hadError = true;
      // At most kMaxCfgErrors errors per file (the lexer stops there too).
      if (errors == kMaxCfgErrors) {
        emitError(loc) << "too many errors (" << kMaxCfgErrors << "), stopping";
        ++errors;
      }
      if (errors > kMaxCfgErrors)
        return;
      ++errors;
      emitError(loc) << msg;
      return;
    }
    // A garbage file must not bury the errors under millions of warnings.
    if (++warnings > kMaxCfgErrors)
      return;
    emitWarning(loc) << msg;
    if (warnings == kMaxCfgErrors)
      emitWarning(loc) << "too many warnings (" << kMaxCfgErrors
                       << "), further warnings are not shown";
  }

  bool importNet(CfgSection &net);
  bool importLayer(CfgSection &section, int64_t index);

  /// A layer being imported: its section's reader, index, location and
  /// input.
  struct LayerSite {
    SectionReader &r;
    int64_t index;
    Location loc;
    Value in;
    CHW inShape;
    /// The name of one of its weight arrays ("layer7_bias").
    std::string name(StringRef what) const {
      return "layer" + std::to_string(index) + "_" + what.str();
    }
  };
  /// An imported layer: its head op and its output (the batch norm's when
  /// one follows). No head: the error is reported.
  struct ImportedLayer {
    Operation *head = nullptr;
    Value output;
  };
  static ImportedLayer single(Operation *head) {
    if (!head)
      return {};
    return {head, head->getResult(0)};
  }
  /// A yolo or region layer: its output is a result of the network.
  ImportedLayer detectionHead(Operation *head) {
    if (!head)
      return {};
    headOutputs.push_back(head->getResult(0));
    return single(head);
  }
  ImportedLayer importConvolutional(LayerSite &s);
  ImportedLayer importConnected(LayerSite &s);
  ImportedLayer importBatchNorm(LayerSite &s);
  ImportedLayer importActivation(LayerSite &s);
  ImportedLayer importMaxPool(LayerSite &s);
  ImportedLayer importPoolWindow(LayerSite &s, StringRef opName);
  ImportedLayer importAvgPool(LayerSite &s);
  ImportedLayer importRoute(LayerSite &s);
  ImportedLayer importShortcut(LayerSite &s);
  /// A `from` layer larger than the shortcut's input, sampled as pjreddie's
  /// shortcut samples it (null: refused, error reported).
  Value subsampleShortcutFrom(LayerSite &s, int64_t fromIndex, Value from);
  ImportedLayer importUpsample(LayerSite &s);
  ImportedLayer importReorg(LayerSite &s);
  ImportedLayer importCrop(LayerSite &s);
  ImportedLayer importScaleChannels(LayerSite &s);
  ImportedLayer importSoftmax(LayerSite &s);
  ImportedLayer importDropout(LayerSite &s);
  ImportedLayer importYolo(LayerSite &s);
  ImportedLayer importRegion(LayerSite &s);
  ImportedLayer importLocal(LayerSite &s);
  ImportedLayer importDetection(LayerSite &s);
  ImportedLayer importSam(LayerSite &s);
  ImportedLayer importReorg3d(LayerSite &s);
  ImportedLayer importReorgKind(LayerSite &s, StringRef opName, StringRef label,
                                bool (*shape)(const CHW &, int64_t, bool, CHW &,
                                              std::string &));
  ImportedLayer importLocalAvgPool(LayerSite &s);
  ImportedLayer importGaussianYolo(LayerSite &s);
  ImportedLayer importCrnn(LayerSite &s);
  /// One of a [crnn]'s three convolutions (`role` "input", "self" or
  /// "output"), its weights taken in Darknet's order, marked qsim.crnn;
  /// with batch_normalize its batch norm follows. Null output: refused.
  ImportedLayer crnnConvolution(LayerSite &s, StringRef role, Value in,
                                int64_t filters, const CHW &out, int64_t size,
                                int64_t stride, int64_t padding, int64_t groups,
                                int64_t dilation, bool bn,
                                Activation activation);
  /// anchors= of [yolo]/[region] as Darknet reads them: the first 2*num
  /// values, the missing ones keeping the 0.5 the layer was made with, each
  /// deviation reported as a warning. `kind` names the section.
  bool readAnchors(SectionReader &r, int64_t num, StringRef kind,
                   std::vector<float> &anchors);
  /// mask= (default 0..num-1, each index below num) and anchors= (as
  /// readAnchors) of a [yolo] or [Gaussian_yolo] head: AlexeyAB's
  /// parse_yolo and parse_gaussian_yolo read them alike.
  bool readMaskAnchors(SectionReader &r, int64_t num, StringRef kind,
                       std::vector<int64_t> &mask, std::vector<float> &anchors);
  /// A softmax tree (YOLO9000): refused, naming the tree file and whether
  /// it was found.
  void refuseTree(SectionReader &r, StringRef key);
  bool importCost(CfgSection &section, SectionReader &r);
  /// Refuses a layer whose output would not fit the memory limit, or whose
  /// window work is absurd, before anything is allocated.
  bool checkOutputSize(SectionReader &r, const CHW &out);

  /// A batch norm's rolling statistics and scales, in the file's order
  /// (null without weights).
  struct BatchNormWeights {
    ElementsAttr scale, mean, variance;
  };
  BatchNormWeights takeBatchNormWeights(LayerSite &s, int64_t channels);
  /// share_index: the convolution reuses another convolution's weights,
  /// biases and batch norm (nothing is read from the weights file).
  bool shareWeights(LayerSite &s, int64_t filters, int64_t cg, int64_t size,
                    bool bn, ElementsAttr &biases, BatchNormWeights &bnWeights,
                    ElementsAttr &weight);
  void appendBatchNormAttrs(SmallVectorImpl<NamedAttribute> &attrs,
                            const BatchNormWeights &bn, ElementsAttr biases);
  /// `head` followed by the batch norm of `batch_normalize=1`, which takes
  /// over the biases and the activation.
  ImportedLayer withBatchNorm(LayerSite &s, Operation *head,
                              const BatchNormWeights &bn, ElementsAttr biases,
                              Activation activation);
  bool checkKeys(CfgSection &section, StringRef type, SectionReader &r);
  void attachExtras(Operation *op, CfgSection &section, SectionReader &r);
  std::optional<Activation> readActivation(SectionReader &r, StringRef def);
  /// Resolves Darknet layer references (negative = relative).
  bool resolveRefs(SectionReader &r, StringRef key,
                   const std::vector<int64_t> &refs, int64_t index,
                   std::vector<int64_t> &out);
  Value input(int64_t index) {
    return index == 0 ? netInput : layerOutputs[index - 1];
  }
  static CHW chw(Value v) {
    auto t = cast<ShapedType>(v.getType());
    return {t.getDimSize(1), t.getDimSize(2), t.getDimSize(3)};
  }
  RankedTensorType tensorType(const CHW &s) {
    return RankedTensorType::get({1, s.c, s.h, s.w}, Float32Type::get(ctx));
  }
  /// The op of the layer being imported; null (error reported) when its
  /// output would pass the memory limit.
  Operation *create(StringRef name, Location loc, RankedTensorType result,
                    ValueRange operands, ArrayRef<NamedAttribute> attrs) {
    auto dims = result.getShape();
    if (currentReader &&
        !checkOutputSize(*currentReader, {dims[1], dims[2], dims[3]}))
      return nullptr;
    OperationState state(loc, name);
    state.addOperands(operands);
    state.addTypes(result);
    state.addAttributes(attrs);
    return builder.create(state);
  }
  NamedAttribute attr(StringRef name, Attribute a) {
    return builder.getNamedAttr(name, a);
  }
  NamedAttribute i64(StringRef name, int64_t v) {
    return attr(name, builder.getI64IntegerAttr(v));
  }
  NamedAttribute f32(StringRef name, float v) {
    return attr(name, builder.getF32FloatAttr(v));
  }
  NamedAttribute act(Activation a) {
    return attr("activation", ActivationAttr::get(ctx, a));
  }
  /// Rejects a key whose value is not the default we support.
  bool rejectUnless(SectionReader &r, StringRef key, int64_t supported,
                    StringRef why) {
    if (!r.has(key))
      return true;
    int64_t v = r.getInt(key, supported);
    if (v == supported)
      return true;
    r.error(key, "'" + key.str() + "=" + std::to_string(v) +
                     "' is not supported by qsim (" + why.str() + ")");
    return false;
  }
  /// `dontload`/`dontloadscales` (read on every layer by AlexeyAB) leave a
  /// weighted layer's values out of the weights file.
  bool rejectPartialLoading(SectionReader &r) {
    return rejectUnless(r, "dontload", 0, "partial weight loading") &&
           rejectUnless(r, "dontloadscales", 0, "partial weight loading");
  }
  /// Keys pjreddie's Darknet does not read: ignored with a warning.
  bool readsKey(SectionReader &r, StringRef key) {
    if (opts.flavor == Flavor::AlexeyAB || !r.has(key))
      return true;
    r.warning(key, "'" + key.str() +
                       "' is ignored by pjreddie Darknet "
                       "(--darknet-flavor=pjreddie)");
    for (CfgOption &o : r.getSection().options)
      if (o.key == key)
        o.used = true;
    return false;
  }

  MLIRContext *ctx;
  std::string cfgName;
  ImportOptions opts;
  OpBuilder builder;
  bool hadError = false;
  unsigned warnings = 0, errors = 0;
  SectionReader *currentReader = nullptr;
  /// Trailing [cost] sections (kept for export) and the line of the first.
  SmallVector<Attribute> costLayers, contrastiveLayers;
  unsigned firstCostLine = 0;
  std::string firstCostType;
  WeightSource weights;
  WeightsHeader header;
  bool hasHeader = false;
  Value netInput;
  std::vector<Value> layerOutputs;
  std::vector<std::string> layerKinds;
  std::vector<Operation *> layerHeads;
  SmallVector<Value> headOutputs;
  bool letterBox = false;
  CHW netShape;
  SmallVector<NamedAttribute> netExtras;
};

} // namespace

//===----------------------------------------------------------------------===//

static StringRef canonicalSection(StringRef type) {
  return llvm::StringSwitch<StringRef>(type)
      .Case("network", "net")
      .Case("conv", "convolutional")
      .Case("conn", "connected")
      .Case("max", "maxpool")
      .Case("avg", "avgpool")
      .Case("local_avg", "local_avgpool")
      .Case("soft", "softmax")
      .Case("lrn", "normalization")
      .Case("deconv", "deconvolutional")
      .Case("silence", "empty")
      .Default(type);
}

static bool isUnsupportedDarknetSection(StringRef type) {
  return llvm::StringSwitch<bool>(type)
      .Cases("normalization", "implicit", "conv_lstm", "history", "empty", true)
      .Cases("deconvolutional", "logistic", "l2norm", "iseg", "rnn", true)
      .Cases("gru", "lstm", true)
      .Default(false);
}

bool Importer::checkKeys(CfgSection &section, StringRef type,
                         SectionReader &r) {
  ArrayRef<StringRef> known = getKnownKeys(type);
  bool ok = true;
  for (CfgOption &o : section.options) {
    if (llvm::is_contained(known, StringRef(o.key)))
      continue;
    if (isKeyDarknetIgnores(type, o.key)) {
      r.warning(o.key, "key '" + o.key + "' is not read by Darknet's [" +
                           type.str() +
                           "] parser (it prints \"Unused field\" and goes "
                           "on); ignored here too and kept for export only");
      continue;
    }
    // [net] holds training hyperparameters of many Darknet forks; an
    // unknown one cannot change inference (a misspelt width/height/channels
    // is caught as missing), so it is only a warning there.
    bool isWarning = opts.allowUnknownKeys || type == "net";
    // Past the report limit nothing more is shown: a garbage section of
    // millions of keys must not cost a message (and a search for the key's
    // line) each.
    if (isWarning ? warnings >= kMaxCfgErrors : errors > kMaxCfgErrors) {
      ok &= isWarning;
      continue;
    }
    std::string msg = "unknown key '" + o.key + "'";
    std::string suggestion = suggestKey(type, o.key);
    if (!suggestion.empty())
      msg += " (did you mean '" + suggestion + "'?)";
    if (isWarning) {
      r.warning(o.key, msg + "; kept for export only");
    } else {
      r.error(o.key, msg + "; use --allow-unknown-keys to accept it");
      ok = false;
    }
  }
  return ok;
}

void Importer::attachExtras(Operation *op, CfgSection &section,
                            SectionReader &r) {
  // Training-only keys (and accepted unknown ones) travel with the layer so
  // that the exported cfg can still be trained by Darknet.
  SmallVector<NamedAttribute> extras;
  for (CfgOption &o : section.options)
    if (!o.used && o.key != "precision" && o.key != "quantize")
      extras.push_back(attr(o.key, builder.getStringAttr(o.value)));
  if (!extras.empty())
    op->setAttr("qsim.cfg", builder.getDictionaryAttr(extras));

  // A precision plan written into the cfg (issue: per-layer precision).
  std::optional<std::string> precision;
  if (r.has("precision")) {
    std::string p = r.getString("precision", "");
    if (!parsePrecision(p)) {
      r.error("precision", "'precision=" + p +
                               "': expected fp32, fp16, bf16, int8 or w8a16");
      return;
    }
    precision = p;
  }
  if (r.has("quantize")) {
    int64_t q = r.getInt("quantize", 0);
    if (q != 0 && q != 1) {
      r.error("quantize", "'quantize' must be 0 or 1");
      return;
    }
    std::string p = q ? "int8" : "fp32";
    if (precision && *precision != p) {
      r.error("quantize", "'quantize=" + std::to_string(q) +
                              "' contradicts 'precision=" + *precision + "'");
      return;
    }
    precision = p;
  }
  if (precision) {
    op->setAttr("qsim.precision", builder.getStringAttr(*precision));
    op->setAttr("qsim.precision_reason", builder.getStringAttr("cfg"));
  }
}

std::optional<Activation> Importer::readActivation(SectionReader &r,
                                                   StringRef def) {
  std::string name = r.getString("activation", def);
  auto a = parseActivationName(name);
  if (!a) {
    r.error("activation", "unknown activation '" + name +
                              "' (Darknet would silently use relu)");
    return std::nullopt;
  }
  return a;
}

bool Importer::resolveRefs(SectionReader &r, StringRef key,
                           const std::vector<int64_t> &refs, int64_t index,
                           std::vector<int64_t> &out) {
  for (int64_t ref : refs) {
    int64_t idx = ref < 0 ? index + ref : ref;
    if (idx < 0) {
      r.error(key, "'" + key.str() + "' item " + std::to_string(ref) +
                       " refers to layer " + std::to_string(idx) +
                       ", before the first layer");
      return false;
    }
    if (idx >= index) {
      r.error(key, "'" + key.str() + "' item " + std::to_string(ref) +
                       " refers to layer " + std::to_string(idx) +
                       ", which does not come before this layer");
      return false;
    }
    out.push_back(idx);
  }
  return true;
}

bool Importer::importNet(CfgSection &net) {
  SectionReader r(
      net, "[net]",
      [this](unsigned l, bool e, const std::string &m) { report(l, e, m); });
  if (!checkKeys(net, "net", r))
    return false;
  int64_t w = r.getInt("width", 0), h = r.getInt("height", 0),
          c = r.getInt("channels", 0);
  letterBox = r.getInt("letter_box", 0) != 0;
  if (!r.ok())
    return false;
  if (w <= 0 || h <= 0 || c <= 0) {
    r.error("[net] needs width, height and channels > 0 (got width=" +
            std::to_string(w) + " height=" + std::to_string(h) +
            " channels=" + std::to_string(c) + ")");
    return false;
  }
  for (CfgOption &o : net.options)
    if (!o.used)
      netExtras.push_back(attr(o.key, builder.getStringAttr(o.value)));
  netShape = {c, h, w};
  return checkOutputSize(r, netShape);
}

bool Importer::checkOutputSize(SectionReader &r, const CHW &out) {
  std::optional<int64_t> count = elementCount({out.c, out.h, out.w});
  uint64_t limit = opts.maxMemoryMB << 20;
  if (count && (uint64_t)*count <= limit / sizeof(float))
    return true;
  r.error((r.getLabel() == "[net]" ? "input " : "output ") + out.str() +
          " needs " + bytesText(count) + " (limit " +
          std::to_string(opts.maxMemoryMB) + " MB, --max-memory-mb)");
  return false;
}

bool Importer::importCost(CfgSection &section, SectionReader &r) {
  // Darknet's network output is the last non-[cost] layer (the cost layer
  // only computes the training loss), so a trailing [cost] is dropped at
  // inference and kept on the module for export. A layer after it would read
  // the cost layer's never-written output: refused. [contrastive] likewise:
  // AlexeyAB's forward returns at once when not training (docs/darknet.md
  // §R4.21).
  StringRef type = canonicalSection(section.type);
  if (!checkKeys(section, type, r))
    return false;
  SmallVector<NamedAttribute> keys;
  for (CfgOption &o : section.options)
    keys.push_back(attr(o.key, builder.getStringAttr(o.value)));
  (type == "cost" ? costLayers : contrastiveLayers)
      .push_back(builder.getDictionaryAttr(keys));
  if (!firstCostLine) {
    firstCostLine = section.line;
    firstCostType = type.str();
  }
  return true;
}

OwningOpRef<ModuleOp> Importer::run(StringRef text) {
  ctx->loadDialect<QSimDialect, func::FuncDialect,
                   quant::QuantizationDialect>();
  std::vector<CfgSection> sections;
  bool lexOk =
      lexCfg(text, sections, [this](unsigned l, bool e, const std::string &m) {
        report(l, e, m);
      });
  if (!lexOk)
    return nullptr;
  if (sections.empty() || canonicalSection(sections[0].type) != "net") {
    report(sections.empty() ? 0 : sections[0].line, true,
           "the first section must be [net] or [network]");
    return nullptr;
  }
  if (!importNet(sections[0]))
    return nullptr;
  std::string werr;
  weights.setLimit(opts.maxMemoryMB << 20);
  if (!weights.init(opts, werr, header, hasHeader)) {
    report(0, true, werr);
    return nullptr;
  }

  OwningOpRef<ModuleOp> module =
      ModuleOp::create(FileLineColLoc::get(ctx, cfgName, 1, 1));
  builder.setInsertionPointToEnd(module->getBody());
  CfgSection &net = sections[0];
  auto inputType = tensorType(netShape);
  auto func = builder.create<func::FuncOp>(
      FileLineColLoc::get(ctx, cfgName, net.line, 1), "main",
      builder.getFunctionType({inputType}, {}));
  Block *body = func.addEntryBlock();
  netInput = body->getArgument(0);
  builder.setInsertionPointToEnd(body);

  for (size_t i = 1; i < sections.size(); ++i)
    if (!importLayer(sections[i], i - 1))
      return nullptr;
  if (layerOutputs.empty()) {
    report(net.line, true, "the cfg has no layers after [net]");
    return nullptr;
  }
  if (!weights.checkSize(opts.weightsPath, werr)) {
    report(0, true, werr);
    return nullptr;
  }

  SmallVector<Value> results(headOutputs.begin(), headOutputs.end());
  if (results.empty())
    results.push_back(layerOutputs.back());
  builder.create<func::ReturnOp>(func.getLoc(), results);
  func.setFunctionType(
      builder.getFunctionType({inputType}, ValueRange(results).getTypes()));

  setFlavor(*module, opts.flavor);
  if (letterBox)
    (*module)->setAttr("qsim.letter_box", builder.getBoolAttr(true));
  if (!netExtras.empty())
    (*module)->setAttr("qsim.net", builder.getDictionaryAttr(netExtras));
  if (!costLayers.empty())
    (*module)->setAttr("qsim.cost", builder.getArrayAttr(costLayers));
  if (!contrastiveLayers.empty())
    (*module)->setAttr("qsim.contrastive",
                       builder.getArrayAttr(contrastiveLayers));
  if (hasHeader)
    (*module)->setAttr(
        "qsim.weights_header",
        builder.getDenseI64ArrayAttr({header.major, header.minor,
                                      header.revision, (int64_t)header.seen}));
  (*module)->setAttr("qsim.source", builder.getStringAttr(cfgName));
  if (hadError || mlir::failed(verify(*module)))
    return nullptr;
  return module;
}

bool Importer::importLayer(CfgSection &section, int64_t index) {
  StringRef type = canonicalSection(section.type);
  std::string label =
      "layer " + std::to_string(index) + " (" + type.str() + ")";
  SectionReader r(
      section, label,
      [this](unsigned l, bool e, const std::string &m) { report(l, e, m); });
  if (type == "net") {
    r.error("a second [net] section");
    return false;
  }
  if (isUnsupportedDarknetSection(type)) {
    r.error("Darknet layer type [" + section.type +
            "] is not supported by qsim (see docs/darknet.md)");
    return false;
  }
  if (getKnownKeys(type).empty()) {
    r.error("unknown section [" + section.type + "]");
    return false;
  }
  if (type == "cost" || type == "contrastive")
    return importCost(section, r);
  if (firstCostLine) {
    r.error("a layer after the [" + firstCostType + "] layer of line " +
            std::to_string(firstCostLine) + " (Darknet would feed it the " +
            firstCostType + " layer's unset output; [" + firstCostType +
            "] is accepted only at the end of the network)");
    return false;
  }
  if (!checkKeys(section, type, r))
    return false;

  using ImportFn = ImportedLayer (Importer::*)(LayerSite &);
  ImportFn importFn =
      llvm::StringSwitch<ImportFn>(type)
          .Case("convolutional", &Importer::importConvolutional)
          .Case("connected", &Importer::importConnected)
          .Case("batchnorm", &Importer::importBatchNorm)
          .Case("activation", &Importer::importActivation)
          .Case("maxpool", &Importer::importMaxPool)
          .Case("avgpool", &Importer::importAvgPool)
          .Case("route", &Importer::importRoute)
          .Case("shortcut", &Importer::importShortcut)
          .Case("upsample", &Importer::importUpsample)
          .Case("reorg", &Importer::importReorg)
          .Case("crop", &Importer::importCrop)
          .Case("scale_channels", &Importer::importScaleChannels)
          .Case("softmax", &Importer::importSoftmax)
          .Case("dropout", &Importer::importDropout)
          .Case("yolo", &Importer::importYolo)
          .Case("region", &Importer::importRegion)
          .Case("local", &Importer::importLocal)
          .Case("detection", &Importer::importDetection)
          .Case("sam", &Importer::importSam)
          .Case("reorg3d", &Importer::importReorg3d)
          .Case("local_avgpool", &Importer::importLocalAvgPool)
          .Case("Gaussian_yolo", &Importer::importGaussianYolo)
          .Case("crnn", &Importer::importCrnn)
          .Default(nullptr);
  if (!importFn) {
    r.error("unknown section [" + section.type + "]");
    return false;
  }
  Value in = input(index);
  LayerSite site{r, index, makeLayerLoc(ctx, cfgName, section.line, index), in,
                 chw(in)};
  currentReader = &r;
  ImportedLayer layer = (this->*importFn)(site);
  currentReader = nullptr;
  if (!weights.getLimitError().empty()) {
    if (r.ok()) // else the output was refused first
      r.error(weights.getLimitError());
    return false;
  }
  if (!layer.head || !r.ok())
    return false;
  attachExtras(layer.head, section, r);
  if (!r.ok())
    return false;
  layerOutputs.push_back(layer.output);
  layerKinds.push_back(type.str());
  layerHeads.push_back(layer.head);
  return true;
}

//===----------------------------------------------------------------------===//
// One importer per section type
//===----------------------------------------------------------------------===//

Importer::BatchNormWeights Importer::takeBatchNormWeights(LayerSite &s,
                                                          int64_t channels) {
  using Init = WeightSource::Init;
  const std::string &label = s.r.getLabel();
  BatchNormWeights bn;
  bn.scale =
      weights.take(ctx, {channels}, s.name("bn_scale"), Init::Scale, 0, label);
  bn.mean =
      weights.take(ctx, {channels}, s.name("bn_mean"), Init::Mean, 0, label);
  bn.variance = weights.take(ctx, {channels}, s.name("bn_variance"),
                             Init::Variance, 0, label);
  return bn;
}

void Importer::appendBatchNormAttrs(SmallVectorImpl<NamedAttribute> &attrs,
                                    const BatchNormWeights &bn,
                                    ElementsAttr biases) {
  if (bn.scale)
    attrs.append({attr("scale", bn.scale), attr("mean", bn.mean),
                  attr("variance", bn.variance), attr("bias", biases)});
}

Importer::ImportedLayer Importer::withBatchNorm(LayerSite &s, Operation *head,
                                                const BatchNormWeights &bn,
                                                ElementsAttr biases,
                                                Activation activation) {
  if (!head)
    return {};
  SmallVector<NamedAttribute> attrs = {act(activation)};
  appendBatchNormAttrs(attrs, bn, biases);
  Operation *norm = create("qsim.batchnorm", s.loc,
                           cast<RankedTensorType>(head->getResult(0).getType()),
                           head->getResult(0), attrs);
  if (!norm)
    return {};
  return {head, norm->getResult(0)};
}

Importer::ImportedLayer Importer::importConvolutional(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t filters = r.getInt("filters", 1);
  int64_t size = r.getInt("size", 1);
  int64_t stride = r.getInt("stride", 1);
  int64_t sx = stride, sy = stride;
  if (readsKey(r, "stride_x")) {
    int64_t v = r.getInt("stride_x", -1);
    if (v >= 1)
      sx = v;
  }
  if (readsKey(r, "stride_y")) {
    int64_t v = r.getInt("stride_y", -1);
    if (v >= 1)
      sy = v;
  }
  int64_t pad = r.getInt("pad", 0);
  int64_t padding = r.getInt("padding", 0);
  if (pad)
    padding = size / 2;
  int64_t groups = r.getInt("groups", 1);
  int64_t dilation = readsKey(r, "dilation") ? r.getInt("dilation", 1) : 1;
  if (size == 1)
    dilation = 1;
  auto activation = readActivation(r, "logistic");
  bool bn = r.getInt("batch_normalize", 0) != 0 || r.getInt("cbn", 0) != 0;
  bool supported =
      rejectUnless(r, "flipped", 0, "transposed weight files") &&
      rejectUnless(r, "antialiasing", 0, "anti-aliased convolutions") &&
      rejectUnless(r, "binary", 0, "binary weights") &&
      rejectUnless(r, "dontload", 0, "partial weight loading") &&
      rejectUnless(r, "dontloadscales", 0, "partial weight loading") &&
      rejectUnless(r, "deform", 0, "deformable convolutions") &&
      rejectUnless(r, "coordconv", 0, "coordinate convolutions") &&
      rejectUnless(r, "sway", 0, "rotation-shared weights") &&
      rejectUnless(r, "rotate", 0, "rotation-shared weights") &&
      rejectUnless(r, "stretch", 0, "rotation-shared weights") &&
      rejectUnless(r, "stretch_sway", 0, "rotation-shared weights");
  if (r.has("numload")) {
    r.error("numload", "'numload' (partial weight loading) is not "
                       "supported by qsim");
    return {};
  }
  if (!r.ok() || !supported || !activation)
    return {};
  if (groups < 1) {
    r.error("groups", "groups must be >= 1, got " + std::to_string(groups));
    return {};
  }
  CHW out;
  std::string err;
  if (!shapes::conv2d(s.inShape, filters, size, size, sy, sx, padding, padding,
                      groups, dilation, out, err)) {
    r.error(err);
    return {};
  }
  bool xnor = r.getInt("xnor", 0) != 0;
  if (!r.ok())
    return {};
  // Darknet's order: biases, batch norm, weights; none with share_index.
  int64_t cg = s.inShape.c / groups;
  using Init = WeightSource::Init;
  ElementsAttr biases, weight;
  BatchNormWeights bnWeights;
  if (r.has("share_index")) {
    if (!shareWeights(s, filters, cg, size, bn, biases, bnWeights, weight))
      return {};
  } else {
    biases = weights.take(ctx, {filters}, s.name("bias"), Init::Bias, 0,
                          r.getLabel());
    if (bn)
      bnWeights = takeBatchNormWeights(s, filters);
    weight = weights.take(ctx, {filters, cg, size, size}, s.name("weight"),
                          Init::Weight, cg * size * size, r.getLabel());
  }
  SmallVector<NamedAttribute> attrs = {
      i64("filters", filters),
      attr("size", builder.getDenseI64ArrayAttr({size, size})),
      attr("stride", builder.getDenseI64ArrayAttr({sy, sx})),
      attr("padding", builder.getDenseI64ArrayAttr({padding, padding})),
      i64("groups", groups),
      i64("dilation", dilation),
      act(bn ? Activation::linear : *activation)};
  if (xnor)
    attrs.push_back(attr("xnor", builder.getBoolAttr(true)));
  if (weight)
    attrs.push_back(attr("weight", weight));
  if (biases && !bn)
    attrs.push_back(attr("bias", biases));
  Operation *head = create("qsim.conv2d", s.loc, tensorType(out), s.in, attrs);
  if (!head)
    return {};
  if (bn)
    return withBatchNorm(s, head, bnWeights, biases, *activation);
  return {head, head->getResult(0)};
}

Importer::ImportedLayer Importer::importConnected(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t outputs = r.getInt("output", 1);
  auto activation = readActivation(r, "logistic");
  bool bn = r.getInt("batch_normalize", 0) != 0;
  if (!r.ok() || !activation || !rejectPartialLoading(r))
    return {};
  if (outputs < 1) {
    r.error("output", "output must be >= 1");
    return {};
  }
  // Darknet's order: biases, weights, batch norm.
  int64_t inputs = s.inShape.size();
  using Init = WeightSource::Init;
  ElementsAttr biases =
      weights.take(ctx, {outputs}, s.name("bias"), Init::Bias, 0, r.getLabel());
  ElementsAttr weight = weights.take(ctx, {outputs, inputs}, s.name("weight"),
                                     Init::Weight, inputs, r.getLabel());
  if (weight && header.transposed()) {
    // The file holds [in][out]; Darknet transposes after reading.
    std::vector<float> src = getFloats(weight), dst(src.size());
    for (int64_t o = 0; o < outputs; ++o)
      for (int64_t i = 0; i < inputs; ++i)
        dst[o * inputs + i] = src[i * outputs + o];
    weight = makeFloatAttr(ctx, {outputs, inputs}, s.name("weight"), dst);
  }
  BatchNormWeights bnWeights;
  if (bn)
    bnWeights = takeBatchNormWeights(s, outputs);
  SmallVector<NamedAttribute> attrs = {
      i64("output_size", outputs), act(bn ? Activation::linear : *activation)};
  if (weight)
    attrs.push_back(attr("weight", weight));
  if (biases && !bn)
    attrs.push_back(attr("bias", biases));
  Operation *head =
      create("qsim.connected", s.loc, tensorType({outputs, 1, 1}), s.in, attrs);
  if (!head)
    return {};
  if (bn)
    return withBatchNorm(s, head, bnWeights, biases, *activation);
  return {head, head->getResult(0)};
}

Importer::ImportedLayer Importer::importBatchNorm(LayerSite &s) {
  if (!rejectPartialLoading(s.r))
    return {};
  using Init = WeightSource::Init;
  int64_t c = s.inShape.c;
  ElementsAttr biases;
  if (opts.flavor == Flavor::AlexeyAB)
    biases =
        weights.take(ctx, {c}, s.name("bias"), Init::Bias, 0, s.r.getLabel());
  BatchNormWeights bn = takeBatchNormWeights(s, c);
  if (bn.scale && !biases) // pjreddie: no biases in the file, bias = 0
    biases =
        makeFloatAttr(ctx, {c}, s.name("bias"), std::vector<float>(c, 0.0f));
  SmallVector<NamedAttribute> attrs = {
      act(Activation::linear), attr("standalone", builder.getBoolAttr(true))};
  appendBatchNormAttrs(attrs, bn, biases);
  return single(
      create("qsim.batchnorm", s.loc, tensorType(s.inShape), s.in, attrs));
}

Importer::ImportedLayer Importer::importActivation(LayerSite &s) {
  auto activation = readActivation(s.r, "linear");
  if (!s.r.ok() || !activation)
    return {};
  return single(create("qsim.activation", s.loc, tensorType(s.inShape), s.in,
                       {act(*activation)}));
}

/// [maxpool] and [local_avgpool]: AlexeyAB's parse_maxpool and
/// parse_local_avgpool read the same window keys.
Importer::ImportedLayer Importer::importPoolWindow(LayerSite &s,
                                                   StringRef opName) {
  SectionReader &r = s.r;
  int64_t stride = r.getInt("stride", 1);
  int64_t sx = stride, sy = stride;
  if (readsKey(r, "stride_x"))
    sx = r.getInt("stride_x", stride);
  if (readsKey(r, "stride_y"))
    sy = r.getInt("stride_y", stride);
  int64_t size = r.getInt("size", stride);
  int64_t padding = r.getInt("padding", size - 1);
  bool max = opName == "qsim.maxpool";
  bool supported =
      rejectUnless(r, "maxpool_depth", 0,
                   max ? "channel-wise max pooling" : "channel-wise pooling") &&
      rejectUnless(r, "antialiasing", 0, "anti-aliased pooling");
  if (!r.ok() || !supported)
    return {};
  CHW out;
  std::string err;
  if (!shapes::maxpool(s.inShape, size, sy, sx, padding, out, err)) {
    r.error(err);
    return {};
  }
  // Every output reads size² taps (Darknet's BFLOPs count): a window this
  // large is not a network anyone runs, and would keep a kernel busy for
  // days.
  constexpr double kMaxWindowTaps = 1e12;
  double taps = (double)size * size * out.c * out.h * out.w;
  if (taps > kMaxWindowTaps) {
    r.error("size", "'size=" + std::to_string(size) + "' over a " + out.str() +
                        " output reads " + llvm::formatv("{0:e1}", taps).str() +
                        " window taps (qsim's limit is 1e12 per layer)");
    return {};
  }
  return single(create(opName, s.loc, tensorType(out), s.in,
                       {i64("size", size),
                        attr("stride", builder.getDenseI64ArrayAttr({sy, sx})),
                        i64("padding", padding)}));
}

Importer::ImportedLayer Importer::importMaxPool(LayerSite &s) {
  return importPoolWindow(s, "qsim.maxpool");
}

Importer::ImportedLayer Importer::importAvgPool(LayerSite &s) {
  return single(
      create("qsim.avgpool", s.loc, tensorType({s.inShape.c, 1, 1}), s.in, {}));
}

Importer::ImportedLayer Importer::importRoute(LayerSite &s) {
  SectionReader &r = s.r;
  auto refs = r.getIntList("layers");
  int64_t groups = 1, groupId = 0;
  if (readsKey(r, "groups"))
    groups = r.getInt("groups", 1);
  if (readsKey(r, "group_id"))
    groupId = r.getInt("group_id", 0);
  if (!r.ok())
    return {};
  if (!refs) {
    r.error("[route] needs 'layers='");
    return {};
  }
  std::vector<int64_t> idx;
  if (!resolveRefs(r, "layers", *refs, s.index, idx))
    return {};
  SmallVector<Value> ins;
  std::vector<CHW> inShapes;
  for (int64_t i : idx) {
    ins.push_back(layerOutputs[i]);
    inShapes.push_back(chw(layerOutputs[i]));
  }
  CHW out;
  std::string err;
  if (!shapes::route(inShapes, groups, groupId, out, err)) {
    r.error("layers", err);
    return {};
  }
  return single(create("qsim.route", s.loc, tensorType(out), ins,
                       {i64("groups", groups), i64("group_id", groupId)}));
}

Importer::ImportedLayer Importer::importShortcut(LayerSite &s) {
  SectionReader &r = s.r;
  auto refs = r.getIntList("from");
  auto activation = readActivation(r, "linear");
  std::string wt = r.getString("weights_type", "none");
  std::string wn = r.getString("weights_normalization", "none");
  float alpha = r.getFloat("alpha", 1.0f), beta = r.getFloat("beta", 1.0f);
  if (!r.ok() || !activation)
    return {};
  if (!refs) {
    r.error("[shortcut] needs 'from='");
    return {};
  }
  if (wt != "none" || wn != "none") {
    r.error(r.has("weights_type") ? "weights_type" : "weights_normalization",
            "weighted shortcuts are not supported by qsim");
    return {};
  }
  if (alpha != 1.0f || beta != 1.0f) {
    r.error(r.has("alpha") ? "alpha" : "beta",
            "shortcut alpha/beta other than 1 are not supported by qsim");
    return {};
  }
  if (opts.flavor == Flavor::PJReddie && refs->size() > 1) {
    r.warning("from", "pjreddie Darknet uses only the first 'from' layer");
    refs->resize(1);
  }
  std::vector<int64_t> idx;
  if (!resolveRefs(r, "from", *refs, s.index, idx))
    return {};
  SmallVector<Value> ins = {s.in};
  std::vector<CHW> inShapes = {s.inShape};
  for (int64_t i : idx) {
    Value from = layerOutputs[i];
    CHW fromShape = chw(from);
    if ((fromShape.h != s.inShape.h || fromShape.w != s.inShape.w) &&
        idx.size() == 1) {
      from = subsampleShortcutFrom(s, i, from);
      if (!from)
        return {};
      fromShape = chw(from);
    }
    ins.push_back(from);
    inShapes.push_back(fromShape);
  }
  CHW out;
  std::string err;
  if (!shapes::shortcut(inShapes, out, err)) {
    r.error("from", err);
    return {};
  }
  return single(
      create("qsim.shortcut", s.loc, tensorType(out), ins, {act(*activation)}));
}

Value Importer::subsampleShortcutFrom(LayerSite &s, int64_t fromIndex,
                                      Value from) {
  // pjreddie's shortcut (docs/darknet.md §R4.7) adds
  // from[k][j*stride][i*stride] to out[k][j][i], stride = W/w, for the
  // first min(C, c) channels; AlexeyAB asserts equal sizes. A larger `from`
  // is taken as pjreddie defines it, by a 1x1 maxpool of that stride (its
  // window is the single tap from[k][j*s][i*s], Darknet's maxpool formula
  // with size 1 and padding 0), so that every backend runs it with the
  // ops it has; the marker makes the exporter fold it back into from=.
  SectionReader &r = s.r;
  CHW f = chw(from), in = s.inShape;
  std::string what = "from layer " + std::to_string(fromIndex) + " is " +
                     f.str() + " but the previous layer is " + in.str();
  int64_t stride = std::max<int64_t>(1, f.w / in.w);
  int64_t strideH = std::max<int64_t>(1, f.h / in.h);
  int64_t sample = std::max<int64_t>(1, in.w / f.w);
  int64_t sampleH = std::max<int64_t>(1, in.h / f.h);
  if (sample > 1 || sampleH > 1) {
    r.error("from", what +
                        ": pjreddie's Darknet adds a smaller from layer on a "
                        "sparse grid of the output, which qsim does not "
                        "implement (AlexeyAB's Darknet asserts equal sizes)");
    return {};
  }
  if (stride != strideH || (f.w - 1) / stride + 1 != in.w ||
      (f.h - 1) / stride + 1 != in.h) {
    r.error("from", what + ": its width and height are not the previous "
                           "layer's times one stride (pjreddie's Darknet "
                           "would add only part of it; AlexeyAB's asserts "
                           "equal sizes)");
    return {};
  }
  if (opts.flavor == Flavor::AlexeyAB)
    r.warning("from", what +
                          ": AlexeyAB's Darknet asserts equal sizes; qsim "
                          "uses pjreddie's definition, adding the from "
                          "layer sampled with stride " +
                          std::to_string(stride) + " (its first " +
                          std::to_string(std::min(f.c, in.c)) + " channels)");
  Operation *pool =
      create("qsim.maxpool", s.loc, tensorType({f.c, in.h, in.w}), from,
             {i64("size", 1),
              attr("stride", builder.getDenseI64ArrayAttr({stride, stride})),
              i64("padding", 0),
              attr("qsim.shortcut_subsample", builder.getUnitAttr())});
  return pool ? pool->getResult(0) : Value();
}

Importer::ImportedLayer Importer::importUpsample(LayerSite &s) {
  int64_t stride = s.r.getInt("stride", 2);
  float scale = s.r.getFloat("scale", 1.0f);
  if (!s.r.ok())
    return {};
  CHW out;
  std::string err;
  if (!shapes::upsample(s.inShape, stride, out, err)) {
    s.r.error("stride", err);
    return {};
  }
  return single(create("qsim.upsample", s.loc, tensorType(out), s.in,
                       {i64("stride", stride), f32("scale", scale)}));
}

Importer::ImportedLayer Importer::importReorg(LayerSite &s) {
  return importReorgKind(s, "qsim.reorg", "pjreddie reorg", shapes::reorg);
}

Importer::ImportedLayer Importer::importCrop(LayerSite &s) {
  // Inference keys only; flip, angle, saturation, exposure and shift are
  // training augmentation and travel in qsim.cfg.
  SectionReader &r = s.r;
  int64_t height = r.getInt("crop_height", 1);
  int64_t width = r.getInt("crop_width", 1);
  bool noAdjust = r.getInt("noadjust", 0) != 0;
  if (!r.ok())
    return {};
  CHW out;
  std::string err;
  if (!shapes::crop(s.inShape, height, width, out, err)) {
    r.error(r.has("crop_height") ? "crop_height" : "crop_width", err);
    return {};
  }
  return single(create("qsim.crop", s.loc, tensorType(out), s.in,
                       {i64("crop_height", height), i64("crop_width", width),
                        f32("scale", noAdjust ? 1.0f : 2.0f),
                        f32("shift", noAdjust ? 0.0f : -1.0f)}));
}

Importer::ImportedLayer Importer::importScaleChannels(LayerSite &s) {
  SectionReader &r = s.r;
  auto refs = r.getIntList("from");
  bool scaleWH = r.getInt("scale_wh", 0) != 0;
  auto activation = readActivation(r, "linear");
  if (!r.ok() || !activation)
    return {};
  if (!refs || refs->size() != 1) {
    r.error("from", "[scale_channels] needs exactly one 'from=' layer");
    return {};
  }
  std::vector<int64_t> idx;
  if (!resolveRefs(r, "from", *refs, s.index, idx))
    return {};
  Value features = layerOutputs[idx[0]];
  CHW out;
  std::string err;
  if (!shapes::scaleChannels(s.inShape, chw(features), scaleWH, out, err)) {
    r.error("from", err);
    return {};
  }
  return single(create(
      "qsim.scale_channels", s.loc, tensorType(out), ValueRange{s.in, features},
      {attr("scale_wh", builder.getBoolAttr(scaleWH)), act(*activation)}));
}

Importer::ImportedLayer Importer::importSoftmax(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t groups = r.getInt("groups", 1);
  float temperature = r.getFloat("temperature", 1.0f);
  if (r.has("tree")) {
    refuseTree(r, "tree");
    return {};
  }
  if (!r.ok())
    return {};
  if (groups < 1 || s.inShape.size() % groups != 0) {
    r.error("groups", "groups=" + std::to_string(groups) + " must divide the " +
                          std::to_string(s.inShape.size()) + " inputs");
    return {};
  }
  return single(
      create("qsim.softmax", s.loc, tensorType(s.inShape), s.in,
             {i64("groups", groups), f32("temperature", temperature)}));
}

Importer::ImportedLayer Importer::importDropout(LayerSite &s) {
  float p = s.r.getFloat("probability",
                         opts.flavor == Flavor::AlexeyAB ? 0.2f : 0.5f);
  if (!s.r.ok())
    return {};
  return single(create("qsim.dropout", s.loc, tensorType(s.inShape), s.in,
                       {f32("probability", p)}));
}

Importer::ImportedLayer Importer::importYolo(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t classes = r.getInt("classes", 20);
  int64_t num = r.getInt("num", 1);
  float scaleXY = 1.0f, betaNms = 0.6f;
  bool newCoords = false;
  NmsKind nms = NmsKind::default_nms;
  if (readsKey(r, "scale_x_y"))
    scaleXY = r.getFloat("scale_x_y", 1.0f);
  if (readsKey(r, "new_coords"))
    newCoords = r.getInt("new_coords", 0) != 0;
  if (readsKey(r, "beta_nms"))
    betaNms = r.getFloat("beta_nms", 0.6f);
  if (readsKey(r, "nms_kind")) {
    std::string k = r.getString("nms_kind", "default");
    nms = k == "greedynms" ? NmsKind::greedynms
          : k == "diounms" ? NmsKind::diounms
                           : NmsKind::default_nms;
    if (k != "greedynms" && k != "diounms" && k != "default")
      r.warning("nms_kind", "unknown nms_kind '" + k +
                                "' means the default IoU NMS in Darknet");
  }
  if (!r.ok())
    return {};
  std::vector<int64_t> maskV;
  std::vector<float> anchorsV;
  if (!readMaskAnchors(r, num, "yolo", maskV, anchorsV))
    return {};
  CHW out;
  std::string err;
  if (!shapes::yolo(s.inShape, classes, maskV.size(), out, err)) {
    r.error(err);
    return {};
  }
  return detectionHead(
      create("qsim.yolo", s.loc, tensorType(out), s.in,
             {i64("classes", classes), i64("num", num),
              attr("mask", builder.getDenseI64ArrayAttr(maskV)),
              attr("anchors", builder.getDenseF32ArrayAttr(anchorsV)),
              f32("scale_x_y", scaleXY),
              attr("new_coords", builder.getBoolAttr(newCoords)),
              attr("nms_kind", NmsKindAttr::get(ctx, nms)),
              f32("beta_nms", betaNms)}));
}

Importer::ImportedLayer Importer::importRegion(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t coords = r.getInt("coords", 4);
  int64_t classes = r.getInt("classes", 20);
  int64_t num = r.getInt("num", 1);
  bool softmax = r.getInt("softmax", 0) != 0;
  int64_t classfix = 0;
  if (readsKey(r, "classfix"))
    classfix = r.getInt("classfix", 0);
  bool supported = rejectUnless(r, "background", 0, "region background");
  if (r.has("tree")) {
    refuseTree(r, "tree");
    return {};
  }
  if (r.has("map")) {
    r.error("map", "class maps (YOLO9000 'map=') are not supported by qsim");
    return {};
  }
  if (!r.ok() || !supported)
    return {};
  std::vector<float> anchors;
  if (!readAnchors(r, num, "region", anchors))
    return {};
  if (opts.flavor == Flavor::AlexeyAB && coords != 4) {
    r.error("coords", "AlexeyAB's region layer needs coords=4");
    return {};
  }
  CHW out;
  std::string err;
  if (!shapes::region(s.inShape, classes, coords, num, out, err)) {
    r.error(err);
    return {};
  }
  return detectionHead(
      create("qsim.region", s.loc, tensorType(out), s.in,
             {i64("classes", classes), i64("coords", coords), i64("num", num),
              attr("anchors", builder.getDenseF32ArrayAttr(anchors)),
              attr("softmax", builder.getBoolAttr(softmax)),
              i64("classfix", classfix)}));
}

//===----------------------------------------------------------------------===//
// Layers of the Darknet zoo (docs/darknet.md §R4.16-§R4.21)
//===----------------------------------------------------------------------===//

bool Importer::shareWeights(LayerSite &s, int64_t filters, int64_t cg,
                            int64_t size, bool bn, ElementsAttr &biases,
                            BatchNormWeights &bnWeights, ElementsAttr &weight) {
  // AlexeyAB's parse_convolutional: share_index >= 0 is absolute, else
  // relative to this layer; the shared layer's weights, biases, scales and
  // rolling statistics are used and nothing is read from the file.
  SectionReader &r = s.r;
  std::string raw;
  for (CfgOption &o : r.getSection().options)
    if (o.key == "share_index")
      raw = o.value; // kept unread: it travels in qsim.cfg for export
  int64_t ref = 0;
  if (StringRef(raw).getAsInteger(10, ref)) {
    r.error("share_index", "'share_index=" + raw + "' is not an integer");
    return false;
  }
  int64_t idx = ref >= 0 ? ref : s.index + ref;
  if (idx < 0 || idx >= s.index) {
    r.error("share_index", "'share_index=" + raw + "' refers to layer " +
                               std::to_string(idx) +
                               ", which does not come before this layer");
    return false;
  }
  auto conv = dyn_cast_or_null<Conv2DOp>(layerHeads[idx]);
  if (!conv || layerKinds[idx] != "convolutional") {
    r.error("share_index", "'share_index' layer " + std::to_string(idx) +
                               " is not a [convolutional] layer");
    return false;
  }
  auto norm = dyn_cast<BatchNormOp>(layerOutputs[idx].getDefiningOp());
  if (conv.getFilters() != filters || conv.getKernelH() != size ||
      conv.getKernelW() != size ||
      conv.getInputChannels() / conv.getGroups() != cg || (bool)norm != bn) {
    r.error("share_index", "'share_index' layer " + std::to_string(idx) +
                               " has other weight shapes or batch_normalize "
                               "than this layer");
    return false;
  }
  if (auto w = conv.getWeight())
    weight = *w;
  if (!bn) {
    if (auto b = conv.getBias())
      biases = *b;
    return true;
  }
  biases = norm.getBiasAttr();
  bnWeights.scale = norm.getScaleAttr();
  bnWeights.mean = norm.getMeanAttr();
  bnWeights.variance = norm.getVarianceAttr();
  return true;
}

void Importer::refuseTree(SectionReader &r, StringRef key) {
  // Darknet reads the tree file (relative to its working directory) at
  // parse time; qsim has no hierarchical softmax, so it names the file and
  // says whether it is there.
  std::string file = r.getString(key, "");
  SmallString<256> nearCfg(llvm::sys::path::parent_path(cfgName));
  llvm::sys::path::append(nearCfg, file);
  bool found = llvm::sys::fs::exists(file) || llvm::sys::fs::exists(nearCfg);
  r.error(key, "softmax tree '" + file + "' (YOLO9000 hierarchy): " +
                   (found ? std::string("the file is there, but hierarchical "
                                        "softmax is not implemented in qsim")
                          : "file not found (looked in the working directory "
                            "and next to the cfg); qsim does not implement "
                            "hierarchical softmax"));
}

Importer::ImportedLayer Importer::importLocal(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t filters = r.getInt("filters", 1);
  int64_t size = r.getInt("size", 1);
  int64_t stride = r.getInt("stride", 1);
  int64_t pad = r.getInt("pad", 0);
  auto activation = readActivation(r, "logistic");
  if (!r.ok() || !activation || !rejectPartialLoading(r))
    return {};
  CHW out;
  std::string err;
  if (!shapes::local(s.inShape, filters, size, stride, pad, out, err)) {
    r.error(err);
    return {};
  }
  if (!checkOutputSize(r, out))
    return {};
  // Darknet's order: one bias per output value, then per position the
  // filters x (C x size x size) weights.
  using Init = WeightSource::Init;
  int64_t k = s.inShape.c * size * size;
  ElementsAttr bias = weights.take(ctx, {filters, out.h, out.w}, s.name("bias"),
                                   Init::Bias, 0, r.getLabel());
  ElementsAttr weight =
      weights.take(ctx, {out.h * out.w, filters, s.inShape.c, size, size},
                   s.name("weight"), Init::Weight, k, r.getLabel());
  SmallVector<NamedAttribute> attrs = {i64("filters", filters),
                                       i64("size", size), i64("stride", stride),
                                       i64("pad", pad), act(*activation)};
  if (weight)
    attrs.push_back(attr("weight", weight));
  if (bias)
    attrs.push_back(attr("bias", bias));
  return single(create("qsim.local", s.loc, tensorType(out), s.in, attrs));
}

Importer::ImportedLayer Importer::importDetection(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t coords = r.getInt("coords", 1);
  int64_t classes = r.getInt("classes", 1);
  int64_t num = r.getInt("num", 1);
  int64_t side = r.getInt("side", 7);
  bool softmax = r.getInt("softmax", 0) != 0;
  bool sqrtBox = r.getInt("sqrt", 0) != 0;
  if (!r.ok())
    return {};
  if (classes < 0 || coords < 1 || num < 1 || side < 1) {
    r.error("[detection] needs classes >= 0 and coords, num, side >= 1");
    return {};
  }
  // make_detection_layer asserts side²·((1 + coords)·num + classes) inputs.
  int64_t expected = side * side * ((1 + coords) * num + classes);
  if (expected != s.inShape.size()) {
    r.error("the input " + s.inShape.str() + " has " +
            std::to_string(s.inShape.size()) +
            " values, but side^2*((1+coords)*num+classes) = " +
            std::to_string(expected));
    return {};
  }
  return detectionHead(
      create("qsim.detection", s.loc, tensorType(s.inShape), s.in,
             {i64("classes", classes), i64("coords", coords), i64("num", num),
              i64("side", side), attr("softmax", builder.getBoolAttr(softmax)),
              attr("sqrt", builder.getBoolAttr(sqrtBox))}));
}

Importer::ImportedLayer Importer::importSam(LayerSite &s) {
  SectionReader &r = s.r;
  auto refs = r.getIntList("from");
  auto activation = readActivation(r, "linear");
  if (!r.ok() || !activation)
    return {};
  if (!refs || refs->size() != 1) {
    r.error("from", "[sam] needs exactly one 'from=' layer");
    return {};
  }
  std::vector<int64_t> idx;
  if (!resolveRefs(r, "from", *refs, s.index, idx))
    return {};
  Value features = layerOutputs[idx[0]];
  if (chw(features) != s.inShape) {
    r.error("from", "from layer is " + chw(features).str() +
                        " but the previous layer is " + s.inShape.str() +
                        " ([sam] multiplies equal shapes)");
    return {};
  }
  return single(create("qsim.sam", s.loc, tensorType(s.inShape),
                       ValueRange{s.in, features}, {act(*activation)}));
}

Importer::ImportedLayer Importer::importReorg3d(LayerSite &s) {
  return importReorgKind(s, "qsim.reorg3d", "reorg", shapes::reorg3d);
}

/// [reorg] and [reorg3d] read the same keys and differ only in how channels
/// and positions are shuffled (their shape function and op).
Importer::ImportedLayer Importer::importReorgKind(
    LayerSite &s, StringRef opName, StringRef label,
    bool (*shape)(const CHW &, int64_t, bool, CHW &, std::string &)) {
  SectionReader &r = s.r;
  int64_t stride = r.getInt("stride", 1);
  bool reverse = r.getInt("reverse", 0) != 0;
  bool supported = rejectUnless(r, "flatten", 0, (label + " flatten").str()) &&
                   rejectUnless(r, "extra", 0, (label + " extra").str());
  if (!r.ok() || !supported)
    return {};
  CHW out;
  std::string err;
  if (!shape(s.inShape, stride, reverse, out, err)) {
    r.error("stride", err);
    return {};
  }
  return single(create(
      opName, s.loc, tensorType(out), s.in,
      {i64("stride", stride), attr("reverse", builder.getBoolAttr(reverse))}));
}

Importer::ImportedLayer Importer::importLocalAvgPool(LayerSite &s) {
  return importPoolWindow(s, "qsim.local_avgpool");
}

bool Importer::readAnchors(SectionReader &r, int64_t num, StringRef kind,
                           std::vector<float> &anchors) {
  std::string numText = "num=" + std::to_string(num);
  if (num < 1) {
    r.error("num", "[" + kind.str() + "] needs num >= 1 (got " + numText + ")");
    return false;
  }
  std::optional<std::vector<float>> given = r.getFloatList("anchors");
  if (!r.ok())
    return false;
  if (!given) {
    r.error("[" + kind.str() +
            "] needs 'anchors=' (Darknet would use 0.5 for each)");
    return false;
  }
  // Darknet allocates 2*num values set to 0.5 (make_yolo_layer,
  // make_region_layer) before parsing, so a missing value is 0.5: padding
  // to 2*num must fit the memory limit like any other array.
  uint64_t needed = 2 * (uint64_t)num;
  if (needed > (opts.maxMemoryMB << 20) / sizeof(float)) {
    r.error("num", numText + " needs " + std::to_string(needed) +
                       " anchor values (" + bytesText((int64_t)needed) +
                       ", limit " + std::to_string(opts.maxMemoryMB) +
                       " MB, --max-memory-mb)");
    return false;
  }
  size_t count = given->size();
  std::string countText = "'anchors' has " + std::to_string(count) +
                          " values but " + numText + " uses " +
                          std::to_string(needed);
  anchors = std::move(*given);
  if (count > needed) {
    // AlexeyAB stops at 2*num; pjreddie writes every value into the 2*num
    // array, past its end.
    if (opts.flavor == Flavor::PJReddie) {
      r.error("anchors", countText +
                             ": pjreddie's Darknet would write the extra "
                             "values past its anchor array");
      return false;
    }
    r.warning("anchors", countText + ": the first " + std::to_string(needed) +
                             " are used and the last " +
                             std::to_string(count - needed) +
                             " ignored, as Darknet does");
    anchors.resize(needed);
  } else if (count < needed) {
    // A trailing comma is one more (empty) item to Darknet, which atof reads
    // as 0 (getFloatList drops it).
    std::string used;
    if (StringRef(r.getString("anchors", "")).ends_with(",")) {
      used = "value " + std::to_string(anchors.size()) +
             " (0-based) is 0 (Darknet reads the empty item after the last "
             "',' as 0)";
      anchors.push_back(0.0f);
    }
    if (anchors.size() < needed) {
      size_t first = anchors.size();
      std::string range =
          needed - first == 1
              ? "value " + std::to_string(first) + " (0-based) takes"
              : "values " + std::to_string(first) + ".." +
                    std::to_string(needed - 1) + " (0-based) take";
      used += (used.empty() ? "" : "; ") + range + " Darknet's default 0.5";
    }
    anchors.resize(needed, 0.5f);
    r.warning("anchors", countText + ": " + used + ", as in Darknet");
  }
  return true;
}

bool Importer::readMaskAnchors(SectionReader &r, int64_t num, StringRef kind,
                               std::vector<int64_t> &mask,
                               std::vector<float> &anchors) {
  auto maskList = r.getIntList("mask");
  if (!r.ok())
    return false;
  if (maskList)
    mask = *maskList;
  else
    for (int64_t i = 0; i < num; ++i)
      mask.push_back(i);
  int64_t maxMask = -1;
  for (int64_t m : mask) {
    if (m < 0) {
      r.error("mask", "mask index " + std::to_string(m) + " is negative");
      return false;
    }
    maxMask = std::max(maxMask, m);
  }
  if (maxMask >= num && num >= 1 && opts.flavor == Flavor::AlexeyAB) {
    // Darknet indexes its 2*num anchor values with the mask unchecked: an
    // index past them reads beyond the array (undefined behaviour). When
    // the anchors= line lists the pairs the mask names (cspx-p7-mish: 20
    // pairs, num=16, mask=16..19), the cfg clearly means them: qsim uses
    // them and says so, instead of reproducing the out-of-bounds read.
    std::optional<std::vector<float>> given = r.getFloatList("anchors");
    if (!r.ok())
      return false;
    uint64_t pairs = given ? given->size() / 2 : 0;
    if (given && (uint64_t)maxMask < pairs) {
      anchors.assign(given->begin(), given->begin() + 2 * (maxMask + 1));
      r.warning("mask", "mask index " + std::to_string(maxMask) +
                            " is past num=" + std::to_string(num) +
                            ": AlexeyAB's Darknet would read anchor values "
                            "past the " +
                            std::to_string(2 * num) +
                            " it holds (undefined); qsim uses the " +
                            std::to_string(anchors.size()) +
                            " values the cfg's anchors= lists (it has " +
                            std::to_string(given->size()) + ")");
      return true;
    }
  }
  if (!readAnchors(r, num, kind, anchors))
    return false;
  if (maxMask >= num) {
    r.error("mask", "mask index " + std::to_string(maxMask) +
                        " out of range for num=" + std::to_string(num) +
                        " (Darknet would read anchor values past the " +
                        std::to_string(2 * num) +
                        " it holds, and anchors= does not list pair " +
                        std::to_string(maxMask) + " either)");
    return false;
  }
  return true;
}

Importer::ImportedLayer Importer::importGaussianYolo(LayerSite &s) {
  SectionReader &r = s.r;
  int64_t classes = r.getInt("classes", 20);
  int64_t num = r.getInt("num", 1);
  float scaleXY = r.getFloat("scale_x_y", 1.0f);
  bool supported =
      rejectUnless(r, "new_coords", 0, "new_coords in [Gaussian_yolo]");
  std::vector<int64_t> mask;
  std::vector<float> anchors;
  if (!r.ok() || !supported ||
      !readMaskAnchors(r, num, "Gaussian_yolo", mask, anchors))
    return {};
  int64_t expected = (int64_t)mask.size() * (9 + classes);
  if (classes < 0 || s.inShape.c != expected) {
    r.error("the input has " + std::to_string(s.inShape.c) +
            " channels, but len(mask) * (9 + classes) = " +
            std::to_string(expected));
    return {};
  }
  return detectionHead(
      create("qsim.gaussian_yolo", s.loc, tensorType(s.inShape), s.in,
             {i64("classes", classes), i64("num", num),
              attr("mask", builder.getDenseI64ArrayAttr(mask)),
              attr("anchors", builder.getDenseF32ArrayAttr(anchors)),
              f32("scale_x_y", scaleXY)}));
}

Importer::ImportedLayer
Importer::crnnConvolution(LayerSite &s, StringRef role, Value in,
                          int64_t filters, const CHW &out, int64_t size,
                          int64_t stride, int64_t padding, int64_t groups,
                          int64_t dilation, bool bn, Activation activation) {
  // AlexeyAB's load_weights reads each sublayer as a convolution: biases,
  // the batch norm's scales, means and variances, then the weights.
  using Init = WeightSource::Init;
  const std::string &label = s.r.getLabel();
  auto name = [&](StringRef what) {
    return s.name(role.str() + "_" + what.str());
  };
  int64_t cg = chw(in).c / groups;
  ElementsAttr biases =
      weights.take(ctx, {filters}, name("bias"), Init::Bias, 0, label);
  BatchNormWeights bnWeights;
  if (bn) {
    bnWeights.scale =
        weights.take(ctx, {filters}, name("bn_scale"), Init::Scale, 0, label);
    bnWeights.mean =
        weights.take(ctx, {filters}, name("bn_mean"), Init::Mean, 0, label);
    bnWeights.variance = weights.take(ctx, {filters}, name("bn_variance"),
                                      Init::Variance, 0, label);
  }
  ElementsAttr weight =
      weights.take(ctx, {filters, cg, size, size}, name("weight"), Init::Weight,
                   cg * size * size, label);
  SmallVector<NamedAttribute> attrs = {
      i64("filters", filters),
      attr("size", builder.getDenseI64ArrayAttr({size, size})),
      attr("stride", builder.getDenseI64ArrayAttr({stride, stride})),
      attr("padding", builder.getDenseI64ArrayAttr({padding, padding})),
      i64("groups", groups),
      i64("dilation", dilation),
      act(bn ? Activation::linear : activation),
      attr("qsim.crnn", builder.getStringAttr(role))};
  if (weight)
    attrs.push_back(attr("weight", weight));
  if (biases && !bn)
    attrs.push_back(attr("bias", biases));
  Operation *head = create("qsim.conv2d", s.loc, tensorType(out), in, attrs);
  if (!head)
    return {};
  if (bn)
    return withBatchNorm(s, head, bnWeights, biases, activation);
  return {head, head->getResult(0)};
}

Importer::ImportedLayer Importer::importCrnn(LayerSite &s) {
  // AlexeyAB's [crnn] (parse_crnn, make_crnn_layer, forward_crnn_layer):
  // three convolutions with the section's size, stride, padding, groups,
  // dilation, batch_normalize and activation, input_layer (C -> hidden),
  // self_layer (hidden -> hidden) and output_layer (hidden -> output); per
  // frame state = input_layer(x) + self_layer(old state) (+ old state with
  // shortcut=1), out = output_layer(state). qsim runs one frame from the
  // zero state Darknet allocates (docs/darknet.md §R4.22): self_layer then
  // sees an all-zero input, which the import makes explicit (an upsample
  // with scale 0 of input_layer's output) so that every op is an ordinary
  // one and self_layer keeps its own weights; a shortcut adds the two.
  SectionReader &r = s.r;
  if (opts.flavor != Flavor::AlexeyAB) {
    r.error("[crnn] is imported as AlexeyAB's parse_crnn reads it "
            "(pjreddie's reads output_filters/hidden_filters with a fixed "
            "3x3 kernel); use --darknet-flavor=alexeyab");
    return {};
  }
  int64_t size = r.getInt("size", 3);
  int64_t stride = r.getInt("stride", 1);
  int64_t dilation = r.getInt("dilation", 1);
  int64_t pad = r.getInt("pad", 0);
  int64_t padding = r.getInt("padding", 0);
  if (pad)
    padding = size / 2;
  int64_t output = r.getInt("output", 1);
  int64_t hidden = r.getInt("hidden", 1);
  int64_t groups = r.getInt("groups", 1);
  auto activation = readActivation(r, "logistic");
  bool bn = r.getInt("batch_normalize", 0) != 0;
  bool supported =
      rejectUnless(r, "xnor", 0, "binary recurrent convolutions") &&
      rejectPartialLoading(r);
  if (!r.ok() || !supported || !activation)
    return {};
  if (groups < 1) {
    r.error("groups", "groups must be >= 1, got " + std::to_string(groups));
    return {};
  }
  CHW state, out;
  std::string err;
  if (!shapes::conv2d(s.inShape, hidden, size, size, stride, stride, padding,
                      padding, groups, dilation, state, err) ||
      !shapes::conv2d(state, output, size, size, stride, stride, padding,
                      padding, groups, dilation, out, err)) {
    r.error(err);
    return {};
  }
  // make_crnn_layer asserts that the state keeps the input's width and
  // height (input_layer's outputs are output_layer's inputs).
  if (state.h != s.inShape.h || state.w != s.inShape.w) {
    r.error("size=" + std::to_string(size) + ", stride=" +
            std::to_string(stride) + " and padding=" + std::to_string(padding) +
            " turn the " + s.inShape.str() + " input into a " + state.str() +
            " state; [crnn] needs a state of the input's width and height "
            "(AlexeyAB's make_crnn_layer asserts it)");
    return {};
  }
  ImportedLayer input =
      crnnConvolution(s, "input", s.in, hidden, state, size, stride, padding,
                      groups, dilation, bn, *activation);
  if (!input.head)
    return {};
  Operation *zero =
      create("qsim.upsample", s.loc, tensorType(state), input.output,
             {i64("stride", 1), f32("scale", 0.0f),
              attr("qsim.crnn", builder.getStringAttr("zero"))});
  if (!zero)
    return {};
  ImportedLayer self =
      crnnConvolution(s, "self", zero->getResult(0), hidden, state, size,
                      stride, padding, groups, dilation, bn, *activation);
  if (!self.head)
    return {};
  Operation *sum = create("qsim.shortcut", s.loc, tensorType(state),
                          ValueRange{input.output, self.output},
                          {act(Activation::linear),
                           attr("qsim.crnn", builder.getStringAttr("state"))});
  if (!sum)
    return {};
  ImportedLayer result =
      crnnConvolution(s, "output", sum->getResult(0), output, out, size, stride,
                      padding, groups, dilation, bn, *activation);
  if (!result.head)
    return {};
  return {input.head, result.output};
}

OwningOpRef<ModuleOp>
qsim::darknet::importDarknetFromString(MLIRContext *ctx, StringRef cfgText,
                                       StringRef cfgName,
                                       const ImportOptions &options) {
  Importer importer(ctx, cfgName, options);
  return importer.run(cfgText);
}

OwningOpRef<ModuleOp>
qsim::darknet::importDarknet(MLIRContext *ctx, StringRef cfgPath,
                             const ImportOptions &options) {
  auto buf = llvm::MemoryBuffer::getFile(cfgPath, /*IsText=*/true);
  if (!buf) {
    // The file itself is the location (line 0), never <unknown>.
    emitError(FileLineColLoc::get(ctx, cfgPath, 0, 0))
        << "cannot open cfg file '" << cfgPath
        << "': " << buf.getError().message();
    return nullptr;
  }
  return importDarknetFromString(ctx, (*buf)->getBuffer(), cfgPath, options);
}
