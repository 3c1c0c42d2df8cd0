//===- StudioApiTest.cpp - qsim-studio's HTTP API, refusals included ------===//
//
// Every endpoint and the refusals (StudioTestSupport.h starts the server).
// The defects of issue 18 and the HTTP layer under abuse are tested in
// StudioAbuseTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "StudioTestSupport.h"

using namespace qsim::studio;
using namespace qsim::studio::test;

namespace {

TEST_F(StudioApiTest, RegisterLoginLogout) {
  startServer(defaultConfig());
  Browser alice = registerUser("alice");
  auto r = alice.post("/api/register",
                      {{"name", "alice"}, {"password", "another-pass"}});
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(
      alice.post("/api/register", {{"name", "Al"}, {"password", "longenough"}})
          ->status,
      400);
  EXPECT_EQ(
      alice.post("/api/register", {{"name", "bobby"}, {"password", "short"}})
          ->status,
      400);
  Browser anon = anonymous();
  r = anon.post("/api/login", {{"name", "alice"}, {"password", "wrong-one"}});
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"], "wrong user name or password");
  r = anon.post("/api/login",
                {{"name", "alice"}, {"password", "secret-alice"}});
  ASSERT_EQ(r->status, 200);
  std::string setCookie = r->get_header_value("Set-Cookie");
  EXPECT_NE(setCookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(setCookie.find("SameSite=Strict"), std::string::npos);
  Browser again{client.get(), setCookie.substr(0, setCookie.find(';')),
                json::parse(r->body)["csrf"]};
  EXPECT_EQ(again.getJson("/api/me")["name"], "alice");
  EXPECT_EQ(again.post("/api/logout", json::object())->status, 200);
  EXPECT_EQ(again.get("/api/me")->status, 401);
  // The other login of alice is unaffected.
  EXPECT_EQ(alice.get("/api/me")->status, 200);
}

TEST_F(StudioApiTest, ThrottlesPasswordGuessing) {
  startServer(defaultConfig());
  registerUser("alice");
  Browser anon = anonymous();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(
        anon.post("/api/login", {{"name", "alice"},
                                 {"password", "guess-" + std::to_string(i)}})
            ->status,
        401);
  // Even the right password waits now; other names are not affected.
  auto r = anon.post("/api/login",
                     {{"name", "alice"}, {"password", "secret-alice"}});
  EXPECT_EQ(r->status, 429);
  EXPECT_NE(r->body.find("too many failed logins"), std::string::npos)
      << r->body;
  registerUser("bobby");
  EXPECT_EQ(
      anon.post("/api/login", {{"name", "bobby"}, {"password", "secret-bobby"}})
          ->status,
      200);
}

TEST_F(StudioApiTest, RefusesUnauthenticatedRequests) {
  startServer(defaultConfig());
  Browser anon = anonymous();
  for (const char *path :
       {"/api/me", "/api/files", "/api/files/content?path=a", "/api/jobs",
        "/api/jobs/1", "/api/jobs/1/log", "/api/sessions", "/api/events",
        "/api/models/graph?path=m.mlirbc"}) {
    auto r = anon.get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path;
  }
  for (const char *path :
       {"/api/logout", "/api/files/augment", "/api/models/import",
        "/api/jobs/inference", "/api/jobs/quantize", "/api/jobs/1/stop",
        "/api/sessions", "/api/sessions/1/command"}) {
    auto r = anon.post(path, json::object());
    EXPECT_EQ(r->status, 401) << path;
  }
  EXPECT_EQ(anon.upload("x.txt", "data")->status, 401);
  EXPECT_EQ(anon.del("/api/files?path=x")->status, 401);
  EXPECT_EQ(anon.del("/api/sessions/1")->status, 401);
  Browser forged{client.get(), "qsim_session=" + std::string(64, 'a'), "x"};
  EXPECT_EQ(forged.get("/api/files")->status, 401);
}

TEST_F(StudioApiTest, RefusesMissingCsrfTokenAndCrossOrigin) {
  startServer(defaultConfig());
  Browser alice = registerUser("alice");
  Browser noToken{client.get(), alice.cookie, ""};
  auto r = noToken.post("/api/jobs/inference", json::object());
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("CSRF"), std::string::npos);
  Browser wrongToken{client.get(), alice.cookie, std::string(64, '0')};
  EXPECT_EQ(wrongToken.upload("a.txt", "x")->status, 403);
  EXPECT_EQ(wrongToken.del("/api/files?path=a.txt")->status, 403);
  httplib::Headers h = alice.headers();
  h.emplace("Origin", "http://evil.example");
  r = client->Post("/api/files/augment", h, "{}", "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("cross-origin"), std::string::npos);
  // Reads need no token.
  EXPECT_EQ(noToken.get("/api/files")->status, 200);
}

TEST_F(StudioApiTest, RefusesMalformedJson) {
  startServer(defaultConfig());
  Browser alice = registerUser("alice");
  auto r = client->Post("/api/jobs/inference", alice.headers(),
                        "{\"model\":", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("malformed JSON"), std::string::npos);
  r = client->Post("/api/jobs/inference", alice.headers(), "[1,2]",
                   "application/json");
  EXPECT_EQ(r->status, 400);
  r = client->Post("/api/jobs/inference", alice.headers(), "model=x",
                   "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 415);
  r = alice.post("/api/jobs/inference", {{"model", 3}});
  EXPECT_EQ(r->status, 400);
  r = anonymous().post("/api/login", {{"name", "alice"}});
  EXPECT_EQ(r->status, 400);
}

TEST_F(StudioApiTest, FilesUploadListDownloadDelete) {
  startServer(defaultConfig());
  Browser alice = registerUser("alice");
  std::string data(300000, 'q');
  data[1234] = 'x';
  auto r = alice.upload("notes/a.txt", data);
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(alice.upload("notes/a.txt", "again")->status, 409);
  EXPECT_EQ(alice.upload("notes/a.txt&overwrite=1", data)->status, 201);
  json files = alice.getJson("/api/files")["files"];
  ASSERT_EQ(files.size(), 2u); // notes/ and notes/a.txt
  EXPECT_EQ(files[1]["path"], "notes/a.txt");
  EXPECT_EQ(files[1]["size"], data.size());
  r = alice.get("/api/files/content?path=notes/a.txt");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body, data);
  EXPECT_EQ(alice.get("/api/files/content?path=notes/b.txt")->status, 404);
  EXPECT_EQ(alice.del("/api/files?path=notes/a.txt")->status, 200);
  EXPECT_EQ(alice.get("/api/files/content?path=notes/a.txt")->status, 404);
}

TEST_F(StudioApiTest, RefusesPathTraversalAndSymlinks) {
  startServer(defaultConfig());
  Browser alice = registerUser("alice");
  ASSERT_EQ(alice.upload("a.txt", "mine")->status, 201);
  for (const char *bad :
       {"../a.txt", "/etc/passwd", "x/../../a.txt", ".hidden", "x/./a.txt",
        "a%20b.txt", "..", "%2e%2e/%2e%2e/studio.sqlite"}) {
    auto r = alice.get(std::string("/api/files/content?path=") + bad);
    EXPECT_EQ(r->status, 403) << bad << ": " << r->body;
    EXPECT_EQ(alice.upload(bad, "x")->status, 403) << bad;
    EXPECT_EQ(alice.del(std::string("/api/files?path=") + bad)->status, 403)
        << bad;
  }
  // A symbolic link planted in the workspace (not creatable through the API)
  // leads nowhere.
  std::string ws;
  if (DIR *d = opendir((dataDir + "/workspaces").c_str())) {
    while (struct dirent *e = readdir(d))
      if (e->d_name[0] != '.')
        ws = dataDir + "/workspaces/" + e->d_name;
    closedir(d);
  }
  ASSERT_FALSE(ws.empty());
  ASSERT_EQ(symlink("/etc", (ws + "/etc").c_str()), 0);
  ASSERT_EQ(symlink("/etc/passwd", (ws + "/passwd").c_str()), 0);
  EXPECT_EQ(alice.get("/api/files/content?path=etc/passwd")->status, 403);
  EXPECT_EQ(alice.get("/api/files/content?path=passwd")->status, 403);
  EXPECT_EQ(alice.upload("etc/x.txt", "x")->status, 403);
  for (const json &f : alice.getJson("/api/files")["files"])
    EXPECT_NE(f["path"], "passwd");
  // Session requests are checked the same way.
  auto r = alice.post("/api/sessions", {{"model", "../../x.mlirbc"}});
  EXPECT_EQ(r->status, 403);
}

TEST_F(StudioApiTest, RefusesOversizedUpload) {
  StudioConfig config = defaultConfig();
  config.maxUploadMiB = 1;
  startServer(config);
  Browser alice = registerUser("alice");
  // The refusal comes before the body is read: a raw request that announces
  // 2 MiB and sends nothing gets the 413 and its message.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string head =
      "POST /api/files?path=big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Cookie: " +
      alice.cookie + "\r\nX-CSRF-Token: " + alice.csrf +
      "\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: 2097152\r\n\r\n";
  ASSERT_EQ(write(fd, head.data(), head.size()),
            static_cast<ssize_t>(head.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;)
    response.append(buffer, static_cast<size_t>(n));
  close(fd);
  EXPECT_EQ(response.compare(0, 12, "HTTP/1.1 413"), 0) << response;
  EXPECT_NE(response.find("limit"), std::string::npos) << response;
  // Sending the whole body anyway: the server answers 413 or closes the
  // connection while the client still writes; either way nothing is stored.
  auto r = alice.upload("big.bin", std::string(1536 * 1024, 'b'));
  if (r) {
    EXPECT_EQ(r->status, 413);
  }
  EXPECT_EQ(alice.upload("small.bin", std::string(512 * 1024, 's'))->status,
            201);
  json files = alice.getJson("/api/files")["files"];
  ASSERT_EQ(files.size(), 1u); // nothing of the refused upload remains
  EXPECT_EQ(files[0]["path"], "small.bin");
}

TEST_F(StudioApiTest, UsersCannotReachEachOthersResources) {
  startServer(defaultConfig());
  Browser alice = userWithModel("alice");
  Browser bob = registerUser("bob");
  // Bob's paths are in Bob's workspace: Alice's file is not there.
  EXPECT_EQ(bob.get("/api/files/content?path=images/a.ppm")->status, 404);
  EXPECT_TRUE(bob.getJson("/api/files")["files"].empty());
  EXPECT_EQ(bob.del("/api/files?path=images/a.ppm")->status, 404);
  auto r = alice.post("/api/jobs/inference", {{"model", "models/tiny.mlirbc"},
                                              {"image", "images/a.ppm"}});
  ASSERT_EQ(r->status, 202) << r->body;
  int64_t job = json::parse(r->body)["job"];
  EXPECT_EQ(bob.get("/api/jobs/" + std::to_string(job))->status, 404);
  EXPECT_EQ(bob.get("/api/jobs/" + std::to_string(job) + "/log")->status, 404);
  EXPECT_EQ(
      bob.post("/api/jobs/" + std::to_string(job) + "/stop", json::object())
          ->status,
      404);
  EXPECT_TRUE(bob.getJson("/api/jobs")["jobs"].empty());
  r = alice.post("/api/sessions",
                 {{"model", "models/tiny.mlirbc"}, {"image", "images/a.ppm"}});
  ASSERT_EQ(r->status, 201) << r->body;
  int64_t session = json::parse(r->body)["session"];
  std::string command = "/api/sessions/" + std::to_string(session) + "/command";
  EXPECT_EQ(bob.post(command, {{"cmd", "step"}})->status, 404);
  EXPECT_EQ(bob.del("/api/sessions/" + std::to_string(session))->status, 404);
  EXPECT_TRUE(bob.getJson("/api/sessions")["sessions"].empty());
  EXPECT_EQ(alice.post(command, {{"cmd", "step"}})->status, 200);
  EXPECT_EQ(alice.waitJob(job)["status"], "done");
}

TEST_F(StudioApiTest, ImportGraphInferenceAndQuantize) {
  startServer(defaultConfig());
  Browser alice = userWithModel("alice");
  ASSERT_EQ(alice
                .upload("models/t.cfg",
                        readFile(QSIM_SOURCE_DIR
                                 "/examples/models/synthetic-yolov3-tiny.cfg"))
                ->status,
            201);
  auto r = alice.post("/api/models/import", {{"cfg", "models/t.cfg"}});
  ASSERT_EQ(r->status, 202) << r->body;
  json job = alice.waitJob(json::parse(r->body)["job"]);
  ASSERT_EQ(job["status"], "done") << job.dump();
  EXPECT_EQ(job["result"]["model"], "models/t.mlirbc");

  json graph = alice.getJson("/api/models/graph?path=models/t.mlirbc");
  ASSERT_EQ(graph["layers"].size(), 22u);
  EXPECT_EQ(graph["layers"][15]["type"], "route");
  EXPECT_GT(graph["totals"]["macs"].get<double>(), 1e8);
  EXPECT_EQ(alice.get("/api/models/graph?path=images/a.ppm")->status, 400);

  r = alice.post("/api/jobs/inference", {{"model", "models/tiny.mlirbc"},
                                         {"image", "images/a.ppm"},
                                         {"mode", "int8"},
                                         {"calib", "calib"}});
  ASSERT_EQ(r->status, 202) << r->body;
  job = alice.waitJob(json::parse(r->body)["job"]);
  ASSERT_EQ(job["status"], "done") << job.dump();
  const json &result = job["result"];
  ASSERT_EQ(result["layers"].size(), 22u);
  EXPECT_EQ(result["layers"][0]["precision"], "int8");
  double sqnr = result["layers"][0]["sqnr_db"];
  EXPECT_GT(sqnr, 20.0);
  EXPECT_LT(sqnr, 80.0);
  EXPECT_GT(result["detection_count"].get<int>(), 0);
  EXPECT_EQ(result["image_size"]["width"], 200);

  r = alice.post("/api/jobs/quantize",
                 {{"model", "models/tiny.mlirbc"},
                  {"calib", "calib"},
                  {"mode", "mixed"},
                  {"plan", {{"fp32", {0, 13}}, {"default", "int8"}}}});
  ASSERT_EQ(r->status, 202) << r->body;
  job = alice.waitJob(json::parse(r->body)["job"]);
  ASSERT_EQ(job["status"], "done") << job.dump();
  std::string report = alice
                           .get("/api/files/content?path=" +
                                job["result"]["report"].get<std::string>())
                           ->body;
  EXPECT_NE(report.find("int8"), std::string::npos) << report;
  std::string log = alice.getJson(
      "/api/jobs/" + std::to_string(job["id"].get<int64_t>()) + "/log")["log"];
  EXPECT_NE(log.find("calibrating: 2/2"), std::string::npos) << log;
  graph = alice.getJson("/api/models/graph?path=" +
                        job["result"]["model"].get<std::string>());
  EXPECT_EQ(graph["layers"][0]["precision"], "fp32");
  EXPECT_EQ(graph["layers"][2]["precision"], "int8");
  // Refusals of the job endpoints.
  EXPECT_EQ(alice
                .post("/api/jobs/quantize", {{"model", "models/tiny.mlirbc"},
                                             {"calib", "calib"},
                                             {"method", "guess"}})
                ->status,
            400);
  EXPECT_EQ(
      alice
          .post("/api/jobs/quantize", {{"model", "models/tiny.mlirbc"},
                                       {"calib", "calib"},
                                       {"mode", "mixed"},
                                       {"plan", {{"fp32", {"0 --evil"}}}}})
          ->status,
      400);
  EXPECT_EQ(alice
                .post("/api/jobs/inference", {{"model", "models/none.mlirbc"},
                                              {"image", "images/a.ppm"}})
                ->status,
            404);
}

TEST_F(StudioApiTest, StepSessionCrossEditRerunSave) {
  startServer(defaultConfig());
  Browser alice = userWithModel("alice");
  auto r = alice.post("/api/sessions", {{"model", "models/tiny.mlirbc"},
                                        {"image", "images/a.ppm"},
                                        {"mode", "int8"},
                                        {"calib", "calib"}});
  ASSERT_EQ(r->status, 201) << r->body;
  json started = json::parse(r->body);
  EXPECT_EQ(started["load"]["layers"], 22);
  EXPECT_TRUE(started["load"]["float_shadow"].get<bool>());
  std::string command = "/api/sessions/" +
                        std::to_string(started["session"].get<int64_t>()) +
                        "/command";
  auto ask = [&](const json &request) {
    auto res = alice.post(command, request);
    EXPECT_TRUE(res);
    return res ? json::parse(res->body) : json();
  };
  json reply = ask({{"cmd", "run-to"}, {"layer", 4}});
  EXPECT_EQ(reply["position"], 5);
  reply = ask({{"cmd", "cross"}, {"layer", 4}, {"precision", "fp32"}});
  ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  EXPECT_GT(reply["vs_current"]["sqnr_db"].get<double>(), 10);
  reply = ask({{"cmd", "dump"},
               {"layer", 4},
               {"what", "output"},
               {"file", "session/l4.png"}});
  ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  EXPECT_EQ(
      alice.get("/api/files/content?path=session/l4.png")->body.substr(1, 3),
      "PNG");
  reply =
      ask({{"cmd", "set-weights"}, {"layer", 4}, {"filter", 0}, {"scale", 0}});
  ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  reply = ask({{"cmd", "rerun"}, {"layer", 4}});
  ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  EXPECT_GT(reply["change"]["changed_values"].get<int>(), 0);
  reply = ask({{"cmd", "save"}, {"file", "models/edited.mlirbc"}});
  ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  EXPECT_EQ(reply["edits"], 1);
  // Files of a session request stay in the workspace.
  r = alice.post(command, {{"cmd", "save"}, {"file", "../../escape.mlirbc"}});
  EXPECT_EQ(r->status, 403);
  r = alice.post(command, {{"cmd", "load"}, {"model", "/etc/passwd"}});
  EXPECT_EQ(r->status, 403);
  // Control commands reach the child at once (docs/step-debugging.md).
  reply = ask({{"cmd", "status"}});
  ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  EXPECT_FALSE(reply["status"]["running"].get<bool>());
  EXPECT_EQ(reply["status"]["queued"], 0);
  json live = alice.getJson("/api/sessions")["sessions"];
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0]["session"], started["session"]);
  EXPECT_EQ(live[0]["args"]["mode"], "int8");
  reply = ask({{"cmd", "frobnicate"}});
  EXPECT_FALSE(reply["ok"].get<bool>());
  EXPECT_EQ(alice.del(command.substr(0, command.rfind('/')))->status, 200);
  r = alice.post(command, {{"cmd", "step"}});
  EXPECT_EQ(r->status, 404);
  json files = alice.getJson("/api/files")["files"];
  bool saved = false;
  for (const json &f : files)
    saved |= f["path"] == "models/edited.mlirbc";
  EXPECT_TRUE(saved);
}

TEST_F(StudioApiTest, ReportsChildrenThatCrashOrExceedLimits) {
  std::string scripts = makeTempDir();
  writeFile(scripts + "/crash.sh", "#!/bin/sh\nkill -SEGV $$\n", true);
  writeFile(scripts + "/spin.sh", "#!/bin/sh\nwhile :; do :; done\n", true);
  writeFile(scripts + "/hang.sh", "#!/bin/sh\nexec sleep 60\n", true);
  StudioConfig config = defaultConfig();
  auto inference = [&](Browser &b) {
    auto r = b.post("/api/jobs/inference", {{"model", "models/tiny.mlirbc"},
                                            {"image", "images/a.ppm"}});
    EXPECT_EQ(r->status, 202) << r->body;
    return b.waitJob(json::parse(r->body)["job"]);
  };

  config.qsimRun = scripts + "/crash.sh";
  startServer(config);
  Browser alice = userWithModel("alice");
  json job = inference(alice);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("crashed (signal 11"),
            std::string::npos)
      << job["error"];
  // The job's log is the child's output, without server paths.
  json log = alice.getJson("/api/jobs/" +
                           std::to_string(job["id"].get<int64_t>()) + "/log");
  EXPECT_TRUE(log.contains("log")) << log.dump();
  EXPECT_EQ(log["log"].get<std::string>().find(dataDir), std::string::npos);
  auto r = alice.post("/api/sessions", {{"model", "models/tiny.mlirbc"}});
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("crashed (signal 11"), std::string::npos) << r->body;
  stopServer();

  config.qsimRun = scripts + "/spin.sh";
  config.jobLimits.cpuSeconds = 1;
  startServer(config);
  alice = login("alice");
  job = inference(alice);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("CPU-time limit of 1 s"),
            std::string::npos)
      << job["error"];
  stopServer();

  config.qsimRun = scripts + "/hang.sh";
  config.jobLimits = {60, 4096, 1};
  startServer(config);
  alice = login("alice");
  job = inference(alice);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("wall-clock limit of 1 s"),
            std::string::npos)
      << job["error"];
  stopServer();

  // The real qsim-run in 100 MiB of address space cannot plan the model.
  config = defaultConfig();
  config.jobLimits.memoryMiB = 100;
  startServer(config);
  alice = login("alice");
  job = inference(alice);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("memory"), std::string::npos)
      << job["error"];
  std::system(("rm -rf " + scripts).c_str());
}

TEST_F(StudioApiTest, StopsJobsAndLimitsChildrenPerUser) {
  std::string scripts = makeTempDir();
  writeFile(scripts + "/hang.sh", "#!/bin/sh\nexec sleep 60\n", true);
  StudioConfig config = defaultConfig();
  config.qsimRun = scripts + "/hang.sh";
  config.maxChildrenPerUser = 1;
  startServer(config);
  Browser alice = userWithModel("alice");
  json body = {{"model", "models/tiny.mlirbc"}, {"image", "images/a.ppm"}};
  auto r = alice.post("/api/jobs/inference", body);
  ASSERT_EQ(r->status, 202);
  int64_t id = json::parse(r->body)["job"];
  r = alice.post("/api/jobs/inference", body);
  EXPECT_EQ(r->status, 429);
  EXPECT_NE(r->body.find("limit is 1"), std::string::npos);
  std::string base = "/api/jobs/" + std::to_string(id);
  EXPECT_EQ(alice.post(base + "/pause", json::object())->status, 200);
  EXPECT_EQ(alice.post(base + "/resume", json::object())->status, 200);
  EXPECT_EQ(alice.post(base + "/stop", json::object())->status, 200);
  json job = alice.waitJob(id);
  EXPECT_EQ(job["status"], "stopped");
  EXPECT_EQ(alice.post(base + "/stop", json::object())->status, 409);
  EXPECT_EQ(alice.post("/api/jobs/inference", body)->status, 202);
  std::system(("rm -rf " + scripts).c_str());
}

TEST_F(StudioApiTest, AugmentsAnImageIntoFive) {
  startServer(defaultConfig());
  Browser alice = registerUser("alice");
  ASSERT_EQ(alice.upload("images/p.ppm", ppm(64, 32, 5))->status, 201);
  auto r = alice.post("/api/files/augment", {{"path", "images/p.ppm"}});
  ASSERT_EQ(r->status, 201) << r->body;
  json files = json::parse(r->body)["files"];
  ASSERT_EQ(files.size(), 5u);
  for (const char *v :
       {"original", "rotated", "blurred", "flipped", "flopped"}) {
    std::string path = std::string("images/p-") + v + ".jpg";
    auto got = alice.get("/api/files/content?path=" + path);
    ASSERT_EQ(got->status, 200) << path;
    EXPECT_EQ(got->body.substr(0, 3), "\xFF\xD8\xFF") << path; // JPEG
  }
  ASSERT_EQ(alice.upload("notes.txt", "not an image")->status, 201);
  EXPECT_EQ(alice.post("/api/files/augment", {{"path", "notes.txt"}})->status,
            400);
  ASSERT_EQ(alice.upload("images/bad.jpg", "not really a jpeg")->status, 201);
  r = alice.post("/api/files/augment", {{"path", "images/bad.jpg"}});
  EXPECT_EQ(r->status, 422);
}

TEST_F(StudioApiTest, StreamsJobEvents) {
  startServer(defaultConfig());
  Browser alice = userWithModel("alice");
  // From the user's first event on, however late this connects.
  JobEventStream events(port, alice, {"\"status\":\"done\""}, 60);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = alice.post("/api/jobs/inference", {{"model", "models/tiny.mlirbc"},
                                              {"image", "images/a.ppm"}});
  ASSERT_EQ(r->status, 202);
  alice.waitJob(json::parse(r->body)["job"]);
  const std::string &received = events.finish();
  EXPECT_TRUE(events.sawEnd()) << received;
  EXPECT_NE(received.find("event: progress"), std::string::npos);
  EXPECT_NE(received.find("\"total\":22"), std::string::npos);
}

TEST_F(StudioApiTest, RestartKeepsDataAndMarksInterruptedJobs) {
  startServer(defaultConfig());
  Browser alice = userWithModel("alice");
  auto r = alice.post("/api/jobs/inference", {{"model", "models/tiny.mlirbc"},
                                              {"image", "images/a.ppm"}});
  ASSERT_EQ(r->status, 202);
  alice.waitJob(json::parse(r->body)["job"]);
  stopServer();
  startServer(defaultConfig());
  // The old login is still valid; files and jobs are there.
  alice.http = client.get();
  EXPECT_EQ(alice.getJson("/api/me")["name"], "alice");
  EXPECT_EQ(alice.getJson("/api/files")["files"].size(), 7u);
  json jobs = alice.getJson("/api/jobs")["jobs"];
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["status"], "done");
}

TEST_F(StudioApiTest, KilledServerLeavesNoOrphans) {
  // The real qsim-studio binary, killed with SIGKILL while a step session
  // and a job run.
  std::string portFile = dataDir + "/port";
  pid_t server = fork();
  if (server == 0) {
    std::string bin = std::string(QSIM_TOOLS_DIR) + "/qsim-studio";
    execl(bin.c_str(), bin.c_str(), "--data", dataDir.c_str(), "--web", "",
          "--listen", "127.0.0.1:0", "--port-file", portFile.c_str(),
          "--password-memory-kb", "8192", "-q", (char *)nullptr);
    _exit(127);
  }
  for (int i = 0; i < 200 && access(portFile.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  port = std::atoi(readFile(portFile).c_str());
  ASSERT_GT(port, 0);
  client = std::make_unique<httplib::Client>("127.0.0.1", port);
  client->set_read_timeout(120, 0);
  Browser alice = userWithModel("alice");
  auto r = alice.post("/api/sessions", {{"model", "models/tiny.mlirbc"},
                                        {"image", "images/a.ppm"}});
  ASSERT_EQ(r->status, 201) << r->body;
  std::vector<pid_t> children = childrenOf(server);
  ASSERT_EQ(children.size(), 1u);
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = kill(children[0], 0) != 0;
    if (!gone) {
      waitpid(children[0], nullptr, WNOHANG); // reparented to us if subreaper
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(gone) << "the session child " << children[0]
                    << " outlived the server";
  // A new server on the same data: the session is recorded as interrupted.
  startServer(defaultConfig());
  alice.http = client.get();
  json jobs = alice.getJson("/api/jobs")["jobs"];
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["kind"], "session");
  EXPECT_EQ(jobs[0]["status"], "interrupted");
}

} // namespace
