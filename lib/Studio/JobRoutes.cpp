//===- JobRoutes.cpp - /api/jobs: start, list, read, control --------------===//

#include "Jobs.h"

namespace qsim::studio {

namespace {

/// A job in the list: its result only as a flag (results can be large:
/// GET /api/jobs/N has them).
json summary(const JobRecord &j) {
  json s = jobToJson(j);
  s["result"] = j.result.empty() ? json(nullptr) : json(true);
  return s;
}

json startJob(StudioServer::Impl &s, Call &call) {
  std::string kind = call.req.matches.at(1);
  for (const JobKind &k : kJobKinds)
    if (kind == k.name) {
      call.status = 202;
      return (s.*k.start)(call.caller, call.body());
    }
  fail(404, "no job kind '" + kind + "'");
}

} // namespace

void addJobRoutes(StudioServer::Impl &s) {
  jsonRoute(s, "GET", "/api/jobs", Access::Read, [&s](Call &call) {
    json jobs = json::array();
    for (const JobRecord &j : s.db->listJobs(call.caller.userId, 100))
      jobs.push_back(summary(j));
    return json{{"jobs", jobs}};
  });
  jsonRoute(s, "GET", R"(/api/jobs/(\d+))", Access::Read, [&s](Call &call) {
    return jobToJson(s.ownJob(call.caller, call.id()));
  });
  jsonRoute(s, "GET", R"(/api/jobs/(\d+)/log)", Access::Read, [&s](Call &call) {
    int64_t id = s.ownJob(call.caller, call.id()).id;
    return json{{"log", s.userVisibleLog(s.logFileOf(id), call.caller.userId)}};
  });
  jsonRoute(s, "POST", R"(/api/jobs/(\d+)/(stop|pause|resume))", Access::Write,
            [&s](Call &call) {
              return s.controlJob(call.caller, call.id(), call.req.matches[2]);
            });
  jsonRoute(s, "POST", R"(/api/jobs/([a-z]+))", Access::Write,
            [&s](Call &call) { return startJob(s, call); });
}

} // namespace qsim::studio
