//===- StudioSlurmTest.cpp - qsim-studio --executor slurm
//------------------===//
//
// Heavy jobs as Slurm batch jobs, against the stand-in sbatch/squeue/sacct/
// scancel of test/Sweep/Inputs/fake-slurm (they record their arguments and
// run the job on this machine, PENDING for $FAKE_SLURM_DIR/pending-seconds
// first): the job is queued while Slurm holds it, then running, then done
// with its model; its limits and the partition/account reach sbatch; a stop
// cancels it with scancel; pausing is refused. A training job (the real
// qsim-train on a small detector; skipped without libtorch) goes the same
// way, with its progress events, and a stop of the running job reaches
// qsim-train as SIGTERM (scancel --signal=TERM --full): it ends its step and
// the clean model is kept; a failing training is reported with its error.
//
//===----------------------------------------------------------------------===//

#include "StudioTestSupport.h"

namespace qsim::studio::test {
namespace {

class StudioSlurmTest : public StudioApiTest {
protected:
  void SetUp() override {
    StudioApiTest::SetUp();
    slurmDir = dataDir + "-slurm";
    mkdir(slurmDir.c_str(), 0755);
    oldPath = getenv("PATH");
    setenv("PATH",
           (std::string(QSIM_SOURCE_DIR "/test/Sweep/Inputs/fake-slurm:") +
            oldPath)
               .c_str(),
           1);
    setenv("FAKE_SLURM_DIR", slurmDir.c_str(), 1);
    StudioConfig c = defaultConfig();
    c.slurm.enabled = true;
    c.slurm.partition = "cpu";
    c.slurm.account = "lab";
    c.slurm.pollSeconds = 0.1;
    c.slurm.supervisor = std::string(QSIM_TOOLS_DIR) + "/qsim-studio";
    c.qsimTrain = kTrainTool;
    // As in qsim-studio, whose threads leave SIGINT/SIGTERM to one waiting
    // thread: a stop's SIGTERM must still reach the children.
    sigset_t stopSignals, previous;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGINT);
    sigaddset(&stopSignals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopSignals, &previous);
    startServer(c);
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  void TearDown() override {
    stopServer();
    setenv("PATH", oldPath.c_str(), 1);
    unsetenv("FAKE_SLURM_DIR");
    std::system(("rm -rf " + slurmDir).c_str());
    StudioApiTest::TearDown();
  }
  json quantize(Browser &b, const std::string &output) {
    auto r = b.post("/api/jobs/quantize", {{"model", "models/tiny.mlirbc"},
                                           {"calib", "calib"},
                                           {"output", output}});
    EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no response");
    return r ? b.getJson("/api/jobs/" +
                         std::to_string(json::parse(r->body)["job"].get<int>()))
             : json();
  }
  /// The job's log as the browser reads it.
  std::string jobLog(Browser &b, int64_t id) {
    return b.getJson("/api/jobs/" + std::to_string(id) + "/log")["log"];
  }
  std::string slurmDir, oldPath;
};

#define SKIP_WITHOUT_QSIM_TRAIN()                                              \
  if (access(kTrainTool.c_str(), X_OK) != 0)                                   \
  GTEST_SKIP() << kTrainTool << " is not built (no libtorch)"

TEST_F(StudioSlurmTest, QuantizationRunsAsABatchJob) {
  Browser alice = userWithModel("alice");
  // Long enough that the supervisor's squeue (each a Python process of the
  // stand-in) sees the job pending, then running, on a loaded machine (1 s
  // was missed under ctest -j2 beside two builds, for each state).
  writeFile(slurmDir + "/pending-seconds", "3");
  writeFile(slurmDir + "/running-seconds", "3");
  json job = quantize(alice, "models/q.mlirbc");
  EXPECT_EQ(job["status"], "queued") << job.dump();
  int64_t id = job["id"];
  job = alice.waitJob(id);
  ASSERT_EQ(job["status"], "done") << job.dump();
  EXPECT_EQ(job["result"]["model"], "models/q.mlirbc");
  json graph = alice.getJson("/api/models/graph?path=models/q.mlirbc");
  EXPECT_EQ(graph["layers"][0]["precision"], "int8") << graph.dump();

  std::string sbatch = readFile(slurmDir + "/sbatch.log");
  // The job limits (120 s, 4096 MiB, one thread) and the options.
  EXPECT_NE(sbatch.find("--partition=cpu --account=lab --time=2 "
                        "--mem=4096M --cpus-per-task=1 "),
            std::string::npos)
      << sbatch;
  std::string log =
      alice.getJson("/api/jobs/" + std::to_string(id) + "/log")["log"];
  EXPECT_NE(log.find("slurm: job 100 PENDING"), std::string::npos) << log;
  EXPECT_NE(log.find("slurm: job 100 RUNNING"), std::string::npos) << log;
  EXPECT_NE(log.find("calibrating: 2/2"), std::string::npos) << log;
}

TEST_F(StudioSlurmTest, StopCancelsTheSlurmJob) {
  Browser alice = userWithModel("alice");
  writeFile(slurmDir + "/pending-seconds", "60");
  json job = quantize(alice, "models/never.mlirbc");
  int64_t id = job["id"];
  std::string base = "/api/jobs/" + std::to_string(id);
  EXPECT_EQ(alice.post(base + "/pause", json::object())->status, 409);
  // Stopped while Slurm holds it (the supervisor has reported it pending).
  for (int i = 0;
       i < 100 && alice.getJson(base + "/log")["log"].get<std::string>().find(
                      "slurm: job 100 PENDING") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(alice.post(base + "/stop", json::object())->status, 200);
  job = alice.waitJob(id);
  EXPECT_EQ(job["status"], "stopped") << job.dump();
  EXPECT_EQ(readFile(slurmDir + "/scancel.log"), "100\n");
  EXPECT_EQ(alice.get("/api/files/content?path=models/never.mlirbc")->status,
            404);
}

TEST_F(StudioSlurmTest, TrainingRunsAsABatchJobWithProgress) {
  SKIP_WITHOUT_QSIM_TRAIN();
  Browser alice = userWithStudent("alice");
  writeFile(slurmDir + "/pending-seconds", "3");
  writeFile(slurmDir + "/running-seconds", "1");
  JobEventStream events(port, alice,
                        {"\"status\":\"done\"", "\"status\":\"failed\""});
  auto r = alice.post("/api/jobs/train", trainRequest(4));
  ASSERT_EQ(r->status, 202) << r->body;
  int64_t id = json::parse(r->body)["job"];
  EXPECT_EQ(alice.getJson("/api/jobs/" + std::to_string(id))["status"],
            "queued");
  json job = alice.waitJob(id);
  const std::string &received = events.finish();
  std::string log = jobLog(alice, id);
  ASSERT_EQ(job["status"], "done") << job.dump() << log;
  // Through sbatch, with the job's limits; the job script runs qsim-train.
  std::string sbatch = readFile(slurmDir + "/sbatch.log");
  EXPECT_NE(sbatch.find("--partition=cpu --account=lab --time=2 "
                        "--mem=4096M --cpus-per-task=1 "),
            std::string::npos)
      << sbatch;
  std::string script = readFile(dataDir + "/logs/job-" + std::to_string(id) +
                                ".log.slurm/job.sh");
  EXPECT_NE(script.find("qsim-train"), std::string::npos) << script;
  EXPECT_NE(script.find("'--progress-json'"), std::string::npos) << script;
  // Queued, then running; the steps in the log and as progress events.
  EXPECT_NE(log.find("slurm: job 100 PENDING"), std::string::npos) << log;
  EXPECT_NE(log.find("slurm: job 100 RUNNING"), std::string::npos) << log;
  EXPECT_NE(log.find("step 4/4: loss "), std::string::npos) << log;
  EXPECT_NE(log.find("wrote "), std::string::npos) << log;
  EXPECT_NE(received.find("\"what\":\"training\""), std::string::npos)
      << received;
  EXPECT_NE(received.find("\"done\":1,"), std::string::npos) << received;
  EXPECT_NE(received.find("\"done\":4,"), std::string::npos) << received;
  EXPECT_NE(received.find("\"eta_seconds\":"), std::string::npos);
  // The result with the job, the model listed and readable.
  const json &result = job["result"];
  EXPECT_EQ(result["model"], "models/student-trained.mlirbc");
  EXPECT_EQ(result["steps_done"], 4);
  EXPECT_EQ(result["stopped"], false);
  EXPECT_EQ(result["curve"].size(), 4u);
  EXPECT_TRUE(alice.listed("models/student-trained.mlirbc"));
  EXPECT_EQ(
      alice.get("/api/models/graph?path=models/student-trained.mlirbc")->status,
      200);
  EXPECT_EQ(partialFiles(dataDir), 0);
}

TEST_F(StudioSlurmTest, StopOfARunningTrainingKeepsACleanModel) {
  SKIP_WITHOUT_QSIM_TRAIN();
  Browser alice = userWithStudent("alice");
  auto r = alice.post("/api/jobs/train", trainRequest(1000000));
  ASSERT_EQ(r->status, 202) << r->body;
  int64_t id = json::parse(r->body)["job"];
  std::string base = "/api/jobs/" + std::to_string(id);
  EXPECT_EQ(alice.post(base + "/pause", json::object())->status, 409);
  // Until it has trained 3 steps (the log the browser reads is a tail, and
  // the supervisor forwards many steps at once: the last step line counts).
  bool trained = false;
  for (int i = 0; i < 1200 && !trained; ++i) {
    std::string log = jobLog(alice, id);
    size_t last = log.rfind("/1000000: loss");
    size_t step = log.rfind("step ", last);
    trained = last != std::string::npos && step != std::string::npos &&
              std::atol(log.c_str() + step + 5) >= 3;
    if (!trained)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(trained) << jobLog(alice, id);
  EXPECT_EQ(alice.getJson(base)["status"], "running");
  EXPECT_EQ(alice.post(base + "/stop", json::object())->status, 200);
  json job = alice.waitJob(id);
  // SIGTERM to the batch step (its shell and qsim-train), not a cancel.
  EXPECT_EQ(readFile(slurmDir + "/scancel.log"), "--signal=TERM --full 100\n");
  EXPECT_EQ(job["status"], "stopped") << job.dump();
  EXPECT_EQ(job["error"], "stopped by the user");
  ASSERT_TRUE(job["result"].is_object()) << job.dump() << jobLog(alice, id);
  EXPECT_EQ(job["result"]["stopped"], true);
  int64_t done = job["result"]["steps_done"];
  EXPECT_GE(done, 3);
  EXPECT_LT(done, 1000000);
  expectLossCurve(job["result"]);
  EXPECT_TRUE(alice.listed("models/student-trained.mlirbc"));
  EXPECT_EQ(partialFiles(dataDir), 0);
  // The job recorded its own status: qsim-train ended cleanly.
  EXPECT_EQ(readFile(dataDir + "/logs/job-" + std::to_string(id) +
                     ".log.slurm/exit-code"),
            "0\n");
  std::string ir =
      commandOutput(std::string(QSIM_TOOLS_DIR) + "/qsim-opt " + dataDir +
                    "/workspaces/*/models/student-trained.mlirbc");
  EXPECT_NE(ir.find("step = " + std::to_string(done) + " : i64"),
            std::string::npos)
      << ir.substr(0, 300);
}

TEST_F(StudioSlurmTest, AFailingTrainingIsReported) {
  SKIP_WITHOUT_QSIM_TRAIN();
  Browser alice = userWithStudent("alice");
  // A teacher with other outputs (3 classes): qsim-train refuses on the node.
  ASSERT_EQ(alice
                .upload("models/other.mlirbc",
                        readFile(tinyDetector(1, "tiny-3-classes.cfg")))
                ->status,
            201);
  json body = trainRequest(2);
  body["teacher"] = "models/other.mlirbc";
  body["output"] = "models/never.mlirbc";
  auto r = alice.post("/api/jobs/train", body);
  ASSERT_EQ(r->status, 202) << r->body;
  json job = alice.waitJob(json::parse(r->body)["job"]);
  EXPECT_EQ(job["status"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("exited with status 1"),
            std::string::npos)
      << job.dump();
  EXPECT_NE(job["error"].get<std::string>().find(
                "error: qsim-train: output 0 of the teacher"),
            std::string::npos)
      << job.dump();
  EXPECT_NE(readFile(slurmDir + "/sbatch.log"), "");
  EXPECT_FALSE(alice.listed("models/never.mlirbc"));
  EXPECT_EQ(partialFiles(dataDir), 0);
}

} // namespace
} // namespace qsim::studio::test
