//===- EventRoutes.cpp - /api/events: the user's server-sent events -------===//
//
// The stream itself lives in the HTTP layer's I/O loop (no worker waits on
// it); the route authenticates and says where the stream starts: after
// Last-Event-ID when the browser resumes, else at the next event.
//
//===----------------------------------------------------------------------===//

#include "Api.h"

namespace qsim::studio {

void addEventRoutes(StudioServer::Impl &s) {
  EventHub *hub = &s.events;
  http::EventSource source;
  source.backlog = [hub](int64_t user, uint64_t after) {
    std::vector<std::pair<uint64_t, std::string>> out;
    for (const Event &e : hub->eventsAfter(user, after))
      out.emplace_back(e.id, e.format());
    return out;
  };
  source.subscribe = [hub](int64_t user,
                           std::function<void(uint64_t, std::string)> fn) {
    return hub->subscribe(user, [fn](const Event &e) { fn(e.id, e.format()); });
  };
  source.unsubscribe = [hub](uint64_t token) { hub->unsubscribe(token); };
  s.http->setEventSource(std::move(source));

  rawRoute(s, "GET", "/api/events", Access::Read, [hub](Call &call) {
    http::Response r;
    r.eventStream = true;
    std::string last = call.req.header("Last-Event-ID");
    r.streamAfter =
        last.empty() ? hub->lastId() : std::strtoull(last.c_str(), nullptr, 10);
    return r;
  });
}

} // namespace qsim::studio
