//===- CfgParser.cpp - Darknet .cfg lexer and typed accessors ------------===//

#include "qsim/Target/Darknet/CfgParser.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

using namespace qsim::darknet;
using llvm::StringRef;

bool qsim::darknet::lexCfg(StringRef text, std::vector<CfgSection> &sections,
                           const CfgDiagFn &diag, unsigned maxErrors) {
  bool ok = true;
  unsigned lineNo = 0, errors = 0, warnings = 0;
  // At most maxErrors warnings are passed on (the caller stops showing them
  // there): millions of them in a garbage file cost no message each.
  auto warn = [&](unsigned line, llvm::function_ref<std::string()> msg) {
    if (warnings < maxErrors) {
      ++warnings;
      diag(line, false, msg());
    }
  };
  // Darknet would read "\xEF\xBB\xBF[net]" as a malformed option; editors
  // add the mark invisibly, so it is dropped with a warning.
  if (text.consume_front("\xEF\xBB\xBF"))
    diag(1, false, "UTF-8 byte-order mark at the start of the file ignored");
  // Darknet splits lines at LF only: a CR-only file is one long line.
  if (text.contains('\r') && !text.contains('\n')) {
    diag(1, true,
         "the file has CR-only (classic Mac) line endings; Darknet reads it "
         "as a single line: convert it to LF line endings");
    return false;
  }
  llvm::StringMap<unsigned> sectionKeys; // key -> its line, current section
  auto lexError = [&](unsigned line, const std::string &msg) {
    ok = false;
    diag(line, true, msg);
    return ++errors >= maxErrors;
  };
  while (!text.empty()) {
    auto [rawLine, rest] = text.split('\n');
    text = rest;
    ++lineNo;
    // Darknet removes every space, tab, CR and LF, even inside values.
    std::string line;
    line.reserve(rawLine.size());
    for (char c : rawLine)
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
        line.push_back(c);
    if (line.empty() || line[0] == '#' || line[0] == ';')
      continue;
    if (line[0] == '[') {
      size_t close = line.find(']');
      if (close == std::string::npos) {
        if (lexError(lineNo, "section header '" + line + "' has no ']'"))
          break;
        continue;
      }
      if (close + 1 < line.size()) {
        StringRef tail = StringRef(line).drop_front(close + 1);
        if (!tail.starts_with("#") && !tail.starts_with(";")) {
          if (lexError(lineNo, "unexpected text after section header: '" +
                                   tail.str() + "'"))
            break;
          continue;
        }
        // Darknet would read "[convolutional]#c" as an unknown section.
        warn(lineNo, [] {
          return "comment after a section header ignored (Darknet would not "
                 "recognise this section)";
        });
      }
      if (sections.size() == kMaxCfgSections) {
        diag(lineNo, true,
             "more than " + std::to_string(kMaxCfgSections) +
                 " sections: not a Darknet cfg (the largest have about "
                 "1000)");
        return false;
      }
      CfgSection s;
      s.type = line.substr(1, close - 1);
      s.line = lineNo;
      sections.push_back(std::move(s));
      sectionKeys.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      if (lexError(lineNo, "malformed line '" + line + "': expected key=value"))
        break;
      continue;
    }
    std::string key = line.substr(0, eq);
    std::string value = line.substr(eq + 1);
    // Darknet keeps inline comments in the value ("leaky#x" then falls back to
    // relu); we strip them and say so.
    size_t hash = value.find_first_of("#;");
    if (hash != std::string::npos) {
      warn(lineNo, [&] {
        return "inline comment stripped from '" + key +
               "' (Darknet would read the value '" + value + "')";
      });
      value.resize(hash);
    }
    if (key.empty()) {
      if (lexError(lineNo, "malformed line '" + line + "': empty key"))
        break;
      continue;
    }
    if (value.empty()) {
      if (lexError(lineNo, "key '" + key + "' has an empty value"))
        break;
      continue;
    }
    if (sections.empty()) {
      if (lexError(lineNo, "option '" + key +
                               "' before the first section (expected [net])"))
        break;
      continue;
    }
    // A map, not a scan of the section: a garbage file of a million keys
    // in one section must not take quadratic time.
    auto [first, isNew] = sectionKeys.try_emplace(key, lineNo);
    if (!isNew) {
      warn(lineNo, [&, firstLine = first->second] {
        return "duplicate key '" + key +
               "' ignored (Darknet uses the first, line " +
               std::to_string(firstLine) + ")";
      });
      continue;
    }
    if (sections.back().options.size() == kMaxCfgSectionKeys) {
      diag(lineNo, true,
           "section [" + sections.back().type + "] of line " +
               std::to_string(sections.back().line) + " has more than " +
               std::to_string(kMaxCfgSectionKeys) +
               " keys: not a Darknet cfg (its sections have fewer than 100)");
      return false;
    }
    sections.back().options.push_back({key, value, lineNo, false});
  }
  if (errors >= maxErrors)
    diag(lineNo, true,
         "too many errors (" + std::to_string(maxErrors) + "), stopping");
  return ok;
}

//===----------------------------------------------------------------------===//
// SectionReader
//===----------------------------------------------------------------------===//

const CfgOption *SectionReader::find(StringRef key) {
  for (CfgOption &o : section.options)
    if (o.key == key) {
      o.used = true;
      return &o;
    }
  return nullptr;
}

bool SectionReader::has(StringRef key) const {
  for (const CfgOption &o : section.options)
    if (o.key == key)
      return true;
  return false;
}

unsigned SectionReader::lineOf(StringRef key) const {
  for (const CfgOption &o : section.options)
    if (o.key == key)
      return o.line;
  return section.line;
}

void SectionReader::error(StringRef key, const std::string &msg) {
  failed = true;
  diag(lineOf(key), true, label + ": " + msg);
}

void SectionReader::warning(StringRef key, const std::string &msg) {
  diag(lineOf(key), false, label + ": " + msg);
}

static bool parseInt(StringRef s, int64_t &out) {
  return !s.empty() && !s.getAsInteger(10, out);
}

/// Darknet reads integers into a C `int` (atoi): anything outside its range
/// is undefined there, and here an error.
static bool fitsDarknetInt(int64_t v) {
  return v >= std::numeric_limits<int32_t>::min() &&
         v <= std::numeric_limits<int32_t>::max();
}

static std::string intRangeText() {
  return "out of range: Darknet reads a 32-bit int (" +
         std::to_string(std::numeric_limits<int32_t>::min()) + " .. " +
         std::to_string(std::numeric_limits<int32_t>::max()) + ")";
}

static bool parseFloat(StringRef s, float &out) {
  if (s.empty())
    return false;
  std::string str = s.str();
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  // Darknet stores floats: a value beyond FLT_MAX would become infinite.
  if (end != str.c_str() + str.size() || errno == ERANGE || !std::isfinite(v) ||
      std::fabs(v) > std::numeric_limits<float>::max())
    return false;
  out = (float)v;
  return true;
}

int64_t SectionReader::getInt(StringRef key, int64_t def) {
  const CfgOption *o = find(key);
  if (!o)
    return def;
  int64_t v;
  if (!parseInt(o->value, v)) {
    // An overlong digit string is a range problem, not a malformed one.
    bool digits = !o->value.empty() &&
                  llvm::all_of(StringRef(o->value).drop_front(
                                   o->value[0] == '-' || o->value[0] == '+'),
                               llvm::isDigit);
    error(key, "'" + key.str() + "=" + o->value +
                   "': " + (digits ? intRangeText() : "expected an integer"));
    return def;
  }
  if (!fitsDarknetInt(v)) {
    error(key, "'" + key.str() + "=" + o->value + "': " + intRangeText());
    return def;
  }
  return v;
}

float SectionReader::getFloat(StringRef key, float def) {
  const CfgOption *o = find(key);
  if (!o)
    return def;
  float v;
  if (!parseFloat(o->value, v)) {
    error(key, "'" + key.str() + "=" + o->value +
                   "': expected a finite number within the range of a float");
    return def;
  }
  return v;
}

std::string SectionReader::getString(StringRef key, StringRef def) {
  const CfgOption *o = find(key);
  return o ? o->value : def.str();
}

template <typename T, typename ParseFn>
static std::optional<std::vector<T>>
getList(SectionReader &r, const CfgOption *o, StringRef key, ParseFn parse,
        const char *what, bool allowTrailingComma) {
  if (!o)
    return std::nullopt;
  std::vector<T> out;
  llvm::SmallVector<StringRef, 16> items;
  StringRef(o->value).split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/true);
  if (items.size() > 1 && items.back().empty()) {
    // Darknet counts the commas of an integer list (layers, from, mask) and
    // reads the empty last item as 0; a float list (anchors) is read up to
    // the count it needs, so a trailing comma is harmless there.
    if (!allowTrailingComma) {
      r.error(key, "'" + key.str() + "=" + o->value +
                       "' ends with ','; Darknet would read an extra item 0: "
                       "remove the comma or write the item");
      return std::nullopt;
    }
    items.pop_back();
  }
  for (StringRef item : items) {
    T v;
    if (!parse(item, v)) {
      r.error(key, "'" + key.str() + "=" + o->value + "': item '" + item.str() +
                       "' is not " + what);
      return std::nullopt;
    }
    out.push_back(v);
  }
  return out;
}

std::optional<std::vector<int64_t>> SectionReader::getIntList(StringRef key) {
  auto parseDarknetInt = [](StringRef s, int64_t &v) {
    return parseInt(s, v) && fitsDarknetInt(v);
  };
  return getList<int64_t>(*this, find(key), key, parseDarknetInt,
                          "an integer within Darknet's 32-bit int range",
                          /*allowTrailingComma=*/false);
}

std::optional<std::vector<float>> SectionReader::getFloatList(StringRef key) {
  return getList<float>(*this, find(key), key, parseFloat, "a number",
                        /*allowTrailingComma=*/true);
}

//===----------------------------------------------------------------------===//
// Known keys
//===----------------------------------------------------------------------===//

// The keys Darknet's parsers read per section (inference and training keys,
// both flavours and yolo2_light), space-separated.
/// The keys AlexeyAB's parse_yolo and parse_gaussian_yolo read alike.
static constexpr const char *kYoloHeadKeys =
    "classes num mask anchors scale_x_y new_coords nms_kind "
    "beta_nms jitter ignore_thresh truth_thresh iou_thresh random "
    "resize iou_loss iou_normalizer cls_normalizer obj_normalizer "
    "max_delta max label_smooth_eps counters_per_class focal_loss "
    "objectness_smooth track_history_size sim_thresh dets_for_track "
    "dets_for_show track_ciou_norm embedding_layer map "
    "uc_normalizer delta_normalizer stopbackward precision quantize";
/// The keys parse_maxpool and parse_local_avgpool read alike.
static constexpr const char *kPoolWindowKeys =
    "size stride stride_x stride_y padding maxpool_depth "
    "out_channels antialiasing train_only_bn stopbackward precision "
    "quantize";

static const std::pair<const char *, const char *> kSectionKeys[] = {
    {"net", "batch subdivisions width height channels inputs momentum decay "
            "angle saturation exposure hue learning_rate burn_in "
            "max_batches policy steps scales step gamma power max_crop "
            "min_crop flip aspect mosaic mosaic_bound cutmix mixup blur "
            "gaussian_noise letter_box contrastive contrastive_jit_flip "
            "contrastive_color unsupervised label_smooth_eps resize_step "
            "adam B1 B2 eps time_steps track augment_speed "
            "sequential_subdivisions init_sequential_subdivisions "
            "try_fix_nan loss_scale dynamic_minibatch optimized_memory "
            "workspace_size_limit_MB max_chart_loss show_receptive_field "
            "rule random input_calibration center adversarial_lr attention "
            "equidistant_point burnin_update cosine learning_rate_min "
            "sgdr_cycle sgdr_mult seq_scales scale weights_reject_freq "
            "badlabels_rejection_percentage num_sigmas_reject_badlabels "
            "ema_alpha use_cuda_graph"},
    {"convolutional",
     "filters size stride stride_x stride_y pad padding groups "
     "dilation activation batch_normalize cbn flipped antialiasing "
     "share_index binary xnor bin_output dontload dontloadscales "
     "numload sway rotate stretch stretch_sway assisted_excitation "
     "train_only_bn deform coordconv learning_rate stopbackward "
     "dont_update burnin_update train input_calibration precision "
     "quantize"},
    {"connected",
     "output activation batch_normalize learning_rate stopbackward "
     "dont_update burnin_update train precision quantize"},
    {"maxpool", kPoolWindowKeys},
    {"local_avgpool", kPoolWindowKeys},
    {"avgpool", "stopbackward precision quantize"},
    {"route", "layers groups group_id stopbackward precision quantize"},
    {"shortcut",
     "from activation weights_type weights_normalization alpha beta "
     "stopbackward precision quantize"},
    {"upsample", "stride scale stopbackward precision quantize"},
    {"reorg", "stride reverse flatten extra stopbackward precision quantize"},
    {"reorg3d", "stride reverse flatten extra stopbackward precision quantize"},
    {"scale_channels",
     "from scale_wh activation stopbackward precision quantize"},
    {"sam", "from activation stopbackward precision quantize"},
    {"local",
     "filters size stride pad activation stopbackward precision quantize"},
    {"crnn", "size stride dilation pad padding output hidden groups "
             "activation batch_normalize xnor shortcut stopbackward "
             "precision quantize"},
    {"detection",
     "classes coords rescore num side softmax sqrt max coord_scale forced "
     "object_scale noobject_scale class_scale jitter resize random reorg "
     "stopbackward"},
    {"contrastive",
     "classes temperature yolo_layer max_delta contrastive_neg_max "
     "cls_normalizer steps"},
    {"softmax", "groups temperature tree spatial noloss stopbackward precision "
                "quantize"},
    {"dropout", "probability dropblock dropblock_size_rel dropblock_size_abs "
                "stopbackward precision quantize"},
    {"batchnorm", "stopbackward precision quantize"},
    {"activation", "activation stopbackward precision quantize"},
    {"yolo", kYoloHeadKeys},
    {"Gaussian_yolo", kYoloHeadKeys},
    {"region", "coords classes num softmax anchors classfix background "
               "bias_match rescore thresh absolute object_scale noobject_scale "
               "class_scale coord_scale jitter random log sqrt max focal_loss "
               "tree map stopbackward precision quantize"},
    {"cost", "type scale ratio noobject_scale thresh"},
    {"crop", "crop_height crop_width flip angle saturation exposure noadjust "
             "shift"},
};

// AlexeyAB's parse_network_cfg reads these on every layer after its own keys
// (training controls; `dontload*` decide whether the layer's weights are in
// the file, which the weighted importers check).
static constexpr const char kEveryLayerKeys[] =
    "clip onlyforward dont_update burnin_update stopbackward train_only_bn "
    "dontload dontloadscales learning_rate";

// Keys that cfgs of Darknet's own zoo (AlexeyAB's cfg/ folder) write but no
// Darknet parser reads: Darknet prints "Unused field" and goes on, so qsim
// accepts exactly these with a warning. A short explicit list, not a
// blanket accept: any other unknown key is still an error (a misspelt key
// that Darknet would also ignore is more likely a mistake than a choice).
static const std::pair<const char *, const char *> kKeysDarknetIgnores[] = {
    // yolov4-sam-mish-csp-reorg-bfm.cfg; parse_yolo reads beta_nms, never
    // beta1 (an Adam hyperparameter of [net] is B1).
    {"yolo", "beta1"},
};

bool qsim::darknet::isKeyDarknetIgnores(StringRef type, StringRef key) {
  for (const auto &[section, k] : kKeysDarknetIgnores)
    if (type == section && key == k)
      return true;
  return false;
}

static const llvm::StringMap<std::vector<StringRef>> &knownKeys() {
  static const llvm::StringMap<std::vector<StringRef>> keys = [] {
    llvm::StringMap<std::vector<StringRef>> m;
    auto split = [](StringRef text, std::vector<StringRef> &out) {
      llvm::SmallVector<StringRef> words;
      text.split(words, ' ', -1, /*KeepEmpty=*/false);
      for (StringRef w : words)
        if (!llvm::is_contained(out, w))
          out.push_back(w);
    };
    for (const auto &[section, list] : kSectionKeys) {
      std::vector<StringRef> &known = m[section];
      split(list, known);
      if (StringRef(section) != "net")
        split(kEveryLayerKeys, known);
    }
    return m;
  }();
  return keys;
}

llvm::ArrayRef<StringRef> qsim::darknet::getKnownKeys(StringRef type) {
  auto it = knownKeys().find(type);
  if (it == knownKeys().end())
    return {};
  return it->second;
}

std::string qsim::darknet::suggestKey(StringRef type, StringRef key) {
  std::string best;
  unsigned bestDist = 3;
  for (StringRef k : getKnownKeys(type)) {
    unsigned d = key.edit_distance(k, true, bestDist);
    if (d < bestDist) {
      bestDist = d;
      best = k.str();
    }
  }
  return best;
}
