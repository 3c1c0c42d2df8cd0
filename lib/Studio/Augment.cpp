//===- Augment.cpp - one image to five (libvips) --------------------------===//

#include "qsim/Studio/Augment.h"

#include "qsim/Runtime/AtomicFile.h"

#include <cstdio>
#include <mutex>
#include <vips/vips.h>

namespace qsim::studio {

bool initImageLibrary(std::string &error) {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    ok = VIPS_INIT("qsim-studio") == 0;
    if (ok)
      vips_cache_set_max(0); // every request reads fresh files
  });
  if (!ok)
    error = std::string("libvips: ") + vips_error_buffer();
  return ok;
}

namespace {
/// Owns a VipsImage reference.
struct ImageRef {
  VipsImage *image = nullptr;
  ~ImageRef() {
    if (image)
      g_object_unref(image);
  }
};

std::string takeVipsError() {
  std::string e = vips_error_buffer();
  vips_error_clear();
  while (!e.empty() && (e.back() == '\n' || e.back() == ' '))
    e.pop_back();
  return e.empty() ? "libvips failed" : e;
}
} // namespace

std::optional<double> imageMegapixels(const std::string &path,
                                      std::string &error) {
  if (!initImageLibrary(error))
    return std::nullopt;
  ImageRef image;
  image.image = vips_image_new_from_file(path.c_str(), nullptr);
  if (!image.image) {
    error = "cannot read the image: " + takeVipsError();
    return std::nullopt;
  }
  return double(vips_image_get_width(image.image)) *
         vips_image_get_height(image.image) / 1e6;
}

bool augmentImage(const std::string &input, const std::string &stem,
                  const std::string &ext, double maxMegapixels,
                  std::vector<std::string> &written, std::string &error) {
  if (!initImageLibrary(error))
    return false;
  ImageRef in;
  // Sequential access would forbid the rotation's random reads.
  in.image = vips_image_new_from_file(input.c_str(), nullptr);
  if (!in.image) {
    error = "cannot read the image: " + takeVipsError();
    return false;
  }
  double mpix = double(vips_image_get_width(in.image)) *
                vips_image_get_height(in.image) / 1e6;
  if (mpix > maxMegapixels) {
    char b[128];
    snprintf(b, sizeof b, "the image has %.1f megapixels (limit %.0f)", mpix,
             maxMegapixels);
    error = b;
    return false;
  }
  struct Variant {
    const char *name;
    int (*make)(VipsImage *, VipsImage **);
  };
  static const Variant variants[] = {
      {"original",
       [](VipsImage *i, VipsImage **o) { return vips_copy(i, o, nullptr); }},
      {"rotated",
       [](VipsImage *i, VipsImage **o) {
         return vips_rot(i, o, VIPS_ANGLE_D90, nullptr);
       }},
      {"blurred",
       [](VipsImage *i, VipsImage **o) {
         return vips_gaussblur(i, o, 3.0, nullptr);
       }},
      {"flipped",
       [](VipsImage *i, VipsImage **o) {
         return vips_flip(i, o, VIPS_DIRECTION_VERTICAL, nullptr);
       }},
      {"flopped",
       [](VipsImage *i, VipsImage **o) {
         return vips_flip(i, o, VIPS_DIRECTION_HORIZONTAL, nullptr);
       }},
  };
  std::vector<std::string> done;
  std::string suffix = "." + ext;
  for (const Variant &v : variants) {
    ImageRef out;
    void *buffer = nullptr;
    size_t size = 0;
    if (v.make(in.image, &out.image) != 0 ||
        vips_image_write_to_buffer(out.image, suffix.c_str(), &buffer, &size,
                                   nullptr) != 0) {
      error = std::string(v.name) + ": " + takeVipsError();
      return false;
    }
    std::string target = stem + "-" + v.name + suffix;
    bool ok = rt::writeFileAtomically(target, buffer, size, error);
    g_free(buffer);
    if (!ok)
      return false;
    done.push_back(target);
  }
  written = done;
  return true;
}

} // namespace qsim::studio
