//===- SessionRoutes.cpp - /api/sessions: step sessions -------------------===//

#include "Api.h"

namespace qsim::studio {

void addSessionRoutes(StudioServer::Impl &s) {
  using Done = StudioServer::Impl::Done;
  asyncRoute(s, "POST", "/api/sessions", Access::Write,
             [&s](Call &call, Done done) {
               s.startSession(call.caller, call.body(), std::move(done));
             });
  jsonRoute(s, "GET", "/api/sessions", Access::Read,
            [&s](Call &call) { return s.listSessions(call.caller); });
  asyncRoute(s, "POST", R"(/api/sessions/(\d+)/command)", Access::Write,
             [&s](Call &call, Done done) {
               s.sessionCommand(call.caller, call.id(), call.body(),
                                std::move(done));
             });
  asyncRoute(s, "DELETE", R"(/api/sessions/(\d+))", Access::Write,
             [&s](Call &call, Done done) {
               s.endSession(call.caller, call.id(), std::move(done));
             });
}

} // namespace qsim::studio
