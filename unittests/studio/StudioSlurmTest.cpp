//===- StudioSlurmTest.cpp - qsim-studio --executor slurm
//------------------===//
//
// Heavy jobs as Slurm batch jobs, against the stand-in sbatch/squeue/sacct/
// scancel of test/Sweep/Inputs/fake-slurm (they record their arguments and
// run the job on this machine, PENDING for $FAKE_SLURM_DIR/pending-seconds
// first): the job is queued while Slurm holds it, then running, then done
// with its model; its limits and the partition/account reach sbatch; a stop
// cancels it with scancel; pausing is refused.
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
    startServer(c);
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
  std::string slurmDir, oldPath;
};

TEST_F(StudioSlurmTest, QuantizationRunsAsABatchJob) {
  Browser alice = userWithModel("alice");
  // Long enough that the supervisor's first squeue (right after sbatch) sees
  // the job pending on a loaded machine (1 s was missed under ctest -j2).
  writeFile(slurmDir + "/pending-seconds", "3");
  writeFile(slurmDir + "/running-seconds", "1");
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

} // namespace
} // namespace qsim::studio::test
