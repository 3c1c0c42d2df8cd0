//===- SessionChannel.h - one request to a step session's socket -*- C++
//-*-===//
//
// A step session child listens on a Unix socket and answers one JSON line
// per request. The exchange runs on the HTTP server's I/O loop, so a long
// command (a `continue` through the model) holds no thread while it runs.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_STUDIO_SESSIONCHANNEL_H
#define QSIM_LIB_STUDIO_SESSIONCHANNEL_H

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace boost::asio {
class io_context;
}

namespace qsim::studio {

struct ChannelResult {
  bool ok = false;
  nlohmann::json reply;
  std::string error;
  bool noAnswer = false; // nothing accepted the connection: nothing was sent
};

/// Sends `request` and calls done (on the I/O loop) with the reply, or the
/// error when the session cannot be reached, ends, or takes longer than
/// timeoutSeconds.
void askSession(boost::asio::io_context &io, const std::string &socketPath,
                const nlohmann::json &request, double timeoutSeconds,
                std::function<void(ChannelResult)> done);

} // namespace qsim::studio

#endif
