//===- SessionChannel.cpp - one request to a step session's socket --------===//

#include "SessionChannel.h"

#include <boost/asio.hpp>

namespace qsim::studio {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;

namespace {

struct Exchange : std::enable_shared_from_this<Exchange> {
  Exchange(asio::io_context &io, std::function<void(ChannelResult)> done)
      : socket(io), timer(io), input(64u << 20), done(std::move(done)) {}
  Local::socket socket;
  asio::steady_timer timer;
  asio::streambuf input;
  std::string output;
  std::function<void(ChannelResult)> done;

  void finish(ChannelResult r) {
    timer.cancel();
    boost::system::error_code ec;
    socket.close(ec);
    if (done)
      std::exchange(done, nullptr)(std::move(r));
  }
  void fail(const std::string &error, bool noAnswer = false) {
    ChannelResult r;
    r.error = error;
    r.noAnswer = noAnswer;
    finish(std::move(r));
  }
  void onLine() {
    std::string line(asio::buffers_begin(input.data()),
                     asio::buffers_end(input.data()));
    ChannelResult r;
    r.reply = nlohmann::json::parse(line, nullptr, false);
    r.ok = !r.reply.is_discarded();
    if (!r.ok)
      r.error = "the session sent a malformed reply";
    finish(std::move(r));
  }
};

} // namespace

void askSession(asio::io_context &io, const std::string &socketPath,
                const nlohmann::json &request, double timeoutSeconds,
                std::function<void(ChannelResult)> done) {
  auto x = std::make_shared<Exchange>(io, std::move(done));
  x->output = request.dump() + "\n";
  x->timer.expires_after(
      std::chrono::milliseconds(static_cast<int64_t>(timeoutSeconds * 1000)));
  x->timer.async_wait([x](boost::system::error_code ec) {
    if (!ec)
      x->fail("the session did not answer in time");
  });
  x->socket.async_connect(
      Local::endpoint(socketPath), [x](boost::system::error_code ec) {
        if (ec)
          return x->fail("the session does not accept connections", true);
        asio::async_write(
            x->socket, asio::buffer(x->output),
            [x](boost::system::error_code ec, size_t) {
              if (ec)
                return x->fail("the session ended or did not answer");
              asio::async_read_until(
                  x->socket, x->input, '\n',
                  [x](boost::system::error_code ec, size_t) {
                    if (ec)
                      return x->fail("the session ended or did not answer");
                    x->onLine();
                  });
            });
      });
}

} // namespace qsim::studio
