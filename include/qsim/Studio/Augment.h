//===- Augment.h - one image to five (libvips) ------------------*- C++ -*-===//
//
// The seed platform's augmentation: the original, rotated by 90 degrees,
// blurred (Gaussian, sigma 3), flipped (top-bottom) and flopped (left-right),
// in Sharp's sense of flip and flop. Each output is encoded in memory and
// written atomically (rt::writeFileAtomically).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_AUGMENT_H
#define QSIM_STUDIO_AUGMENT_H

#include <optional>
#include <string>
#include <vector>

namespace qsim::studio {

/// Starts libvips once per process; false (with the reason) if it cannot.
bool initImageLibrary(std::string &error);

/// The megapixels of an image from its header (nothing decoded), or
/// nullopt with the reason when libvips cannot read it.
std::optional<double> imageMegapixels(const std::string &path,
                                      std::string &error);

/// Writes <stem>-original.<ext>, -rotated, -blurred, -flipped and -flopped
/// next to `stem` (absolute, without extension); `ext` is jpg or png.
/// Refuses images above maxMegapixels.
bool augmentImage(const std::string &input, const std::string &stem,
                  const std::string &ext, double maxMegapixels,
                  std::vector<std::string> &written, std::string &error);

} // namespace qsim::studio

#endif
