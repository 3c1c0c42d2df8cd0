//===- Progress.cpp - progress bars on stderr ----------------------------===//

#include "qsim/Support/Progress.h"

#include <cstdio>
#include <unistd.h>

using namespace qsim;

ProgressBar::ProgressBar(std::string label, size_t total, bool enabled)
    : label(std::move(label)), total(total), enabled(enabled && total > 0),
      tty(isatty(fileno(stderr))), start(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(size_t done, const std::string &note) {
  if (!enabled || finished)
    return;
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (tty) {
    const int width = 30;
    int filled = total ? (int)(width * done / total) : width;
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    fprintf(stderr, "\r%s [%s] %zu/%zu %.1f s %s\033[K", label.c_str(),
            bar.c_str(), done, total, secs, note.c_str());
    fflush(stderr);
    return;
  }
  size_t decile = total ? done * 10 / total : 10;
  if (decile > lastDecile || done == total) {
    lastDecile = decile;
    fprintf(stderr, "%s: %zu/%zu (%zu%%) %.1f s %s\n", label.c_str(), done,
            total, total ? done * 100 / total : 100, secs, note.c_str());
  }
}

void ProgressBar::finish() {
  if (!enabled || finished)
    return;
  finished = true;
  if (tty)
    fprintf(stderr, "\n");
}
