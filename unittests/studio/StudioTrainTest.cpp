//===- StudioTrainTest.cpp - qsim-studio's training jobs ------------------===//
//
// POST /api/jobs/train runs the real qsim-train on a small detector
// (test/Train/Inputs/tiny.cfg, 32x32): progress events and the loss curve,
// the trained model listed, a stop that keeps only a clean model, the
// per-user child limit, a failing child, and the refusals of bad requests.
// Skipped when qsim-train is not built (no libtorch).
//
//===----------------------------------------------------------------------===//

#include "StudioTestSupport.h"

using namespace qsim::studio;
using namespace qsim::studio::test;

namespace {

class StudioTrainTest : public StudioApiTest {
protected:
  void SetUp() override {
    // RefusedWithoutQsimTrain is for exactly the build without libtorch.
    std::string test =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (test != "RefusedWithoutQsimTrain" &&
        access(kTrainTool.c_str(), X_OK) != 0)
      GTEST_SKIP() << kTrainTool << " is not built (no libtorch)";
    StudioApiTest::SetUp();
  }
  StudioConfig trainConfig() {
    StudioConfig c = defaultConfig();
    c.qsimTrain = kTrainTool;
    return c;
  }
};

TEST_F(StudioTrainTest, TrainsWithProgressEventsAndKeepsTheCurve) {
  startServer(trainConfig());
  Browser alice = userWithStudent("alice");
  JobEventStream events(port, alice, {"\"status\":\"done\""});
  auto r = alice.post("/api/jobs/train", trainRequest(6));
  ASSERT_EQ(r->status, 202) << r->body;
  int64_t id = json::parse(r->body)["job"];
  json job = alice.waitJob(id);
  const std::string &received = events.finish();
  ASSERT_EQ(job["status"], "done") << job.dump();
  const json &result = job["result"];
  EXPECT_EQ(result["model"], "models/student-trained.mlirbc");
  EXPECT_EQ(result["steps_done"], 6);
  EXPECT_EQ(result["stopped"], false);
  ASSERT_EQ(result["curve"].size(), 6u);
  EXPECT_EQ(result["curve"][5][0], 6);
  EXPECT_GT(result["curve"][0][1].get<double>(), 0.0);
  EXPECT_EQ(result["loss_last"], result["curve"][5][1]);
  // Progress: the first and the last step at least, with loss and ETA.
  EXPECT_NE(received.find("\"what\":\"training\""), std::string::npos)
      << received;
  EXPECT_NE(received.find("\"done\":1,"), std::string::npos) << received;
  EXPECT_NE(received.find("\"done\":6,"), std::string::npos) << received;
  EXPECT_NE(received.find("\"eta_seconds\":"), std::string::npos);
  EXPECT_NE(received.find("\"loss\":"), std::string::npos);
  // The model is listed, readable, and nothing hidden is left behind.
  EXPECT_TRUE(alice.listed("models/student-trained.mlirbc"));
  auto graph =
      alice.get("/api/models/graph?path=models/student-trained.mlirbc");
  EXPECT_EQ(graph->status, 200) << graph->body;
  EXPECT_EQ(partialFiles(dataDir), 0);
  std::string log =
      alice.getJson("/api/jobs/" + std::to_string(id) + "/log")["log"];
  EXPECT_NE(log.find("step 6/6: loss "), std::string::npos) << log;
  EXPECT_NE(log.find("wrote "), std::string::npos) << log;
  // The result stays with the job across a restart of the server.
  stopServer();
  startServer(trainConfig());
  Browser again = login("alice");
  json kept = again.getJson("/api/jobs/" + std::to_string(id));
  EXPECT_EQ(kept["result"]["curve"].size(), 6u);
  EXPECT_EQ(kept["args"]["steps"], 6);
}

TEST_F(StudioTrainTest, StopKeepsACleanModelOfTheStepsTrained) {
  // As in qsim-studio, whose threads leave SIGINT/SIGTERM to one waiting
  // thread: the children must not inherit the blocked signals.
  sigset_t stopSignals, previous;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, &previous);
  startServer(trainConfig());
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  Browser alice = userWithStudent("alice");
  auto r = alice.post("/api/jobs/train", trainRequest(1000000));
  ASSERT_EQ(r->status, 202) << r->body;
  int64_t id = json::parse(r->body)["job"];
  std::string base = "/api/jobs/" + std::to_string(id);
  bool trained = false;
  for (int i = 0; i < 600 && !trained; ++i) {
    trained = alice.getJson(base + "/log")["log"].get<std::string>().find(
                  "step 3/") != std::string::npos;
    if (!trained)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(trained) << alice.getJson(base + "/log").dump();
  EXPECT_EQ(alice.post(base + "/stop", json::object())->status, 200);
  json job = alice.waitJob(id);
  EXPECT_EQ(job["status"], "stopped");
  EXPECT_EQ(job["error"], "stopped by the user");
  ASSERT_TRUE(job["result"].is_object()) << job.dump();
  EXPECT_EQ(job["result"]["stopped"], true);
  int64_t done = job["result"]["steps_done"];
  EXPECT_GE(done, 3);
  EXPECT_LT(done, 1000000);
  expectLossCurve(job["result"]);
  EXPECT_TRUE(alice.listed("models/student-trained.mlirbc"));
  EXPECT_EQ(partialFiles(dataDir), 0);
  // The model says at which step it was written.
  std::string ir =
      commandOutput(std::string(QSIM_TOOLS_DIR) + "/qsim-opt " + dataDir +
                    "/workspaces/*/models/student-trained.mlirbc");
  EXPECT_NE(ir.find("step = " + std::to_string(done) + " : i64"),
            std::string::npos)
      << ir.substr(0, 300);
}

TEST_F(StudioTrainTest, ChildLimitAndAFailingTraining) {
  StudioConfig config = trainConfig();
  config.maxChildrenPerUser = 1;
  startServer(config);
  Browser alice = userWithStudent("alice");
  auto r = alice.post("/api/jobs/train", trainRequest(1000000));
  ASSERT_EQ(r->status, 202) << r->body;
  int64_t id = json::parse(r->body)["job"];
  r = alice.post("/api/jobs/train", trainRequest(2));
  EXPECT_EQ(r->status, 429);
  EXPECT_NE(r->body.find("limit is 1"), std::string::npos) << r->body;
  alice.post("/api/jobs/" + std::to_string(id) + "/stop", json::object());
  alice.waitJob(id);
  // A teacher with other outputs (3 classes): qsim-train refuses, the job
  // fails with its message and leaves nothing.
  ASSERT_EQ(alice
                .upload("models/other.mlirbc",
                        readFile(tinyDetector(1, "tiny-3-classes.cfg")))
                ->status,
            201);
  json body = trainRequest(2);
  body["teacher"] = "models/other.mlirbc";
  body["output"] = "models/never.mlirbc";
  r = alice.post("/api/jobs/train", body);
  ASSERT_EQ(r->status, 202) << r->body;
  json job = alice.waitJob(json::parse(r->body)["job"]);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find(
                "error: qsim-train: output 0 of the teacher"),
            std::string::npos)
      << job.dump();
  EXPECT_EQ(job["error"].get<std::string>().find(dataDir), std::string::npos);
  EXPECT_FALSE(alice.listed("models/never.mlirbc"));
  EXPECT_EQ(partialFiles(dataDir), 0);
}

TEST_F(StudioTrainTest, RefusesBadRequests) {
  startServer(trainConfig());
  Browser alice = userWithStudent("alice");
  ASSERT_EQ(alice.upload("empty/notes.txt", "no picture here")->status, 201);
  auto status = [&](json changes) {
    json body = trainRequest(2);
    for (auto &[k, v] : changes.items())
      body[k] = v;
    auto r = alice.post("/api/jobs/train", body);
    return std::make_pair(r->status, r->body);
  };
  EXPECT_EQ(status({{"student", nullptr}}).first, 400);
  EXPECT_EQ(status({{"student", "images/a.ppm"}}).first, 400);
  EXPECT_EQ(status({{"teacher", "models/none.mlirbc"}}).first, 404);
  EXPECT_EQ(status({{"student", "../../etc/passwd.mlirbc"}}).first, 403);
  auto empty = status({{"images", "empty"}});
  EXPECT_EQ(empty.first, 400);
  EXPECT_NE(empty.second.find("holds no image"), std::string::npos);
  auto file = status({{"images", "images/a.ppm"}});
  EXPECT_EQ(file.first, 400);
  EXPECT_NE(file.second.find("not a folder"), std::string::npos);
  EXPECT_EQ(status({{"images", "nowhere"}}).first, 404);
  EXPECT_EQ(status({{"steps", 0}}).first, 400);
  EXPECT_EQ(status({{"steps", "10; rm -rf /"}}).first, 400);
  EXPECT_EQ(status({{"batch", 1000}}).first, 400);
  EXPECT_EQ(status({{"lr", -1}}).first, 400);
  EXPECT_EQ(status({{"lr", "0.1 --evil"}}).first, 400);
  EXPECT_EQ(status({{"output", "models/student.mlirbc"}}).first, 400);
  EXPECT_EQ(status({{"output", "models/out.txt"}}).first, 400);
  // Nothing was started by a refused request.
  EXPECT_EQ(alice.getJson("/api/jobs")["jobs"].size(), 0u);
  // Another user cannot train on alice's files.
  Browser bob = registerUser("bob");
  EXPECT_EQ(bob.post("/api/jobs/train", trainRequest(2))->status, 404);
}

TEST_F(StudioTrainTest, RefusedWithoutQsimTrain) {
  startServer(defaultConfig()); // qsimTrain empty: a build without libtorch
  Browser alice = userWithStudent("alice");
  auto r = alice.post("/api/jobs/train", trainRequest(2));
  EXPECT_EQ(r->status, 501);
  EXPECT_NE(r->body.find("without libtorch"), std::string::npos) << r->body;
}

} // namespace
