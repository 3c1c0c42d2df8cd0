//===- StudioTestSupport.h - a studio server and browsers for tests -*- C++
//-*-===//
//
// Each test starts a StudioServer on a free loopback port with a fresh data
// directory and talks to it with cpp-httplib's client (or raw sockets where
// the test is about HTTP itself). The jobs run the real qsim tools (built
// next to the test) on a synthetic model; crash and limit tests use small
// scripts in place of the tools.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_UNITTESTS_STUDIO_STUDIOTESTSUPPORT_H
#define QSIM_UNITTESTS_STUDIO_STUDIOTESTSUPPORT_H

#include "qsim/Studio/StudioServer.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace qsim::studio::test {

using json = nlohmann::json;

inline std::string makeTempDir() {
  char tmpl[] = "/tmp/qsim-studio-test-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  return tmpl;
}

inline void writeFile(const std::string &path, const std::string &text,
                      bool executable = false) {
  std::ofstream(path, std::ios::binary) << text;
  if (executable)
    chmod(path.c_str(), 0755);
}

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A synthetic Darknet model, imported once for all tests.
inline const std::string &syntheticModel() {
  static std::string path = [] {
    std::string dir = makeTempDir();
    std::string out = dir + "/tiny.mlirbc";
    std::string cmd = std::string(QSIM_TOOLS_DIR) +
                      "/qsim-translate --import-darknet " QSIM_SOURCE_DIR
                      "/examples/models/synthetic-yolov3-tiny.cfg "
                      "--random-weights=1 -o " +
                      out;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return out;
  }();
  return path;
}

/// A small binary PPM picture.
inline std::string ppm(int w, int h, int seed) {
  std::string s =
      "P6\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      s += static_cast<char>((x * 7 + seed) & 255);
      s += static_cast<char>((y * 5 + seed * 3) & 255);
      s += static_cast<char>(((x ^ y) + seed * 11) & 255);
    }
  return s;
}

/// A logged-in browser: the login cookie and the CSRF token.
/// qsim-train, built when qsim has libtorch (training tests skip without).
inline const std::string kTrainTool =
    std::string(QSIM_TOOLS_DIR) + "/qsim-train";

/// A small detector (test/Train/Inputs/<cfg>, 32x32) imported with the
/// given weights seed.
inline std::string tinyDetector(int seed, const char *cfg = "tiny.cfg") {
  static std::string dir = makeTempDir();
  std::string out = dir + "/" + cfg + "-" + std::to_string(seed) + ".mlirbc";
  std::string cmd = std::string(QSIM_TOOLS_DIR) +
                    "/qsim-translate --import-darknet " QSIM_SOURCE_DIR
                    "/test/Train/Inputs/" +
                    cfg + " --random-weights=" + std::to_string(seed) + " -o " +
                    out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return out;
}

/// A training request of models/student.mlirbc (userWithStudent).
inline json trainRequest(int steps) {
  return {{"student", "models/student.mlirbc"},
          {"teacher", "models/teacher.mlirbc"},
          {"images", "images"},
          {"steps", steps},
          {"batch", 2},
          {"lr", 0.001}};
}

/// What a command prints on stdout.
inline std::string commandOutput(const std::string &cmd) {
  std::string out;
  FILE *p = popen(cmd.c_str(), "r");
  char buffer[4096];
  while (p && fgets(buffer, sizeof buffer, p))
    out += buffer;
  if (p)
    pclose(p);
  return out;
}

/// Files whose name starts with ".partial-" under `dir` (outputs not yet
/// put in place).
inline int partialFiles(const std::string &dir) {
  return std::atoi(
      commandOutput("find " + dir + " -name '.partial-*' | wc -l").c_str());
}

/// A training result's loss curve: one point per step up to the studio's
/// 1000 points (a longer training is thinned), ending at the last step.
inline void expectLossCurve(const json &result) {
  int64_t done = result["steps_done"];
  const json &curve = result["curve"];
  if (done <= 1000) {
    EXPECT_EQ(curve.size(), static_cast<size_t>(done));
  } else {
    EXPECT_LE(curve.size(), 1000u);
    EXPECT_GE(curve.size(), 500u);
  }
  ASSERT_FALSE(curve.empty());
  EXPECT_EQ(curve.back()[0], done) << "the last step is always kept";
}

struct Browser {
  httplib::Client *http;
  std::string cookie, csrf;

  httplib::Headers headers(bool withCsrf = true) const {
    httplib::Headers h;
    if (!cookie.empty())
      h.emplace("Cookie", cookie);
    if (withCsrf && !csrf.empty())
      h.emplace("X-CSRF-Token", csrf);
    return h;
  }
  httplib::Result post(const std::string &path, const json &body) {
    return http->Post(path.c_str(), headers(), body.dump(), "application/json");
  }
  httplib::Result get(const std::string &path) {
    return http->Get(path.c_str(), headers(false));
  }
  httplib::Result del(const std::string &path) {
    return http->Delete(path.c_str(), headers());
  }
  httplib::Result upload(const std::string &path, const std::string &data) {
    return http->Post(("/api/files?path=" + path).c_str(), headers(), data,
                      "application/octet-stream");
  }
  json getJson(const std::string &path) {
    auto r = get(path);
    EXPECT_TRUE(r);
    return r ? json::parse(r->body) : json();
  }
  /// Whether the user's file listing (never hidden files) has `path`.
  bool listed(const std::string &path) {
    json listing = getJson("/api/files"); // outlives the loop
    for (const json &f : listing["files"])
      if (f["path"] == path)
        return true;
    return false;
  }
  /// Waits for a job to end and returns it.
  json waitJob(int64_t id) {
    for (int i = 0; i < 1200; ++i) {
      json job = getJson("/api/jobs/" + std::to_string(id));
      if (job["status"] != "running" && job["status"] != "queued")
        return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return json();
  }
};

/// The user's server-sent events from the first one on, read on a thread
/// until an event says a job ended (`endMarks`, e.g. "\"status\":\"done\"").
class JobEventStream {
public:
  JobEventStream(int port, const Browser &b, std::vector<std::string> endMarks,
                 int timeoutSeconds = 120)
      : events("127.0.0.1", port), marks(std::move(endMarks)) {
    events.set_read_timeout(timeoutSeconds, 0);
    httplib::Headers h = b.headers(false);
    h.emplace("Last-Event-ID", "0");
    reader = std::thread([this, h] {
      events.Get("/api/events", h, [this](const char *data, size_t n) {
        received.append(data, n);
        for (const std::string &m : marks)
          if (received.find(m) != std::string::npos)
            ended = true;
        return !ended;
      });
    });
  }
  ~JobEventStream() { finish(); }

  /// Waits up to 5 s for the end event, then closes the stream; the text
  /// read (complete once this returned).
  const std::string &finish() {
    if (reader.joinable()) {
      for (int i = 0; i < 100 && !ended; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (!ended)
        events.stop();
      reader.join();
    }
    return received;
  }
  bool sawEnd() const { return ended; }

private:
  httplib::Client events;
  std::vector<std::string> marks;
  std::string received;
  std::atomic<bool> ended{false};
  std::thread reader;
};

class StudioApiTest : public ::testing::Test {
protected:
  void SetUp() override { dataDir = makeTempDir(); }
  void TearDown() override {
    stopServer();
    std::system(("rm -rf " + dataDir).c_str());
  }

  StudioConfig defaultConfig() {
    StudioConfig c;
    c.dataDirectory = dataDir;
    c.qsimRun = std::string(QSIM_TOOLS_DIR) + "/qsim-run";
    c.qsimOpt = std::string(QSIM_TOOLS_DIR) + "/qsim-opt";
    c.qsimTranslate = std::string(QSIM_TOOLS_DIR) + "/qsim-translate";
    c.passwordMemoryKiB = 8192;
    c.quiet = true;
    c.jobLimits = {120, 4096, 120};
    c.sessionLimits = {300, 4096, 300};
    return c;
  }

  void startServer(const StudioConfig &config) {
    std::string error;
    server = StudioServer::create(config, error);
    ASSERT_TRUE(server) << error;
    port = server->bind("127.0.0.1", 0);
    ASSERT_GT(port, 0);
    serving = std::thread([this] { server->serve(); });
    client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_read_timeout(300, 0);
    for (int i = 0; i < 100 && !client->Get("/api/me"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  void stopServer() {
    if (!server)
      return;
    server->stop();
    serving.join();
    server.reset();
  }

  Browser anonymous() { return Browser{client.get(), "", ""}; }
  Browser registerUser(const std::string &name) {
    Browser b = anonymous();
    auto r = b.post("/api/register",
                    {{"name", name}, {"password", "secret-" + name}});
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 201) << r->body;
    std::string setCookie = r->get_header_value("Set-Cookie");
    b.cookie = setCookie.substr(0, setCookie.find(';'));
    b.csrf = json::parse(r->body)["csrf"];
    return b;
  }
  Browser login(const std::string &name) {
    Browser b = anonymous();
    auto r =
        b.post("/api/login", {{"name", name}, {"password", "secret-" + name}});
    EXPECT_TRUE(r && r->status == 200);
    std::string setCookie = r->get_header_value("Set-Cookie");
    b.cookie = setCookie.substr(0, setCookie.find(';'));
    b.csrf = json::parse(r->body)["csrf"];
    return b;
  }
  /// A user with the synthetic model, two images and a calibration folder.
  Browser userWithModel(const std::string &name) {
    Browser b = registerUser(name);
    EXPECT_EQ(
        b.upload("models/tiny.mlirbc", readFile(syntheticModel()))->status,
        201);
    EXPECT_EQ(b.upload("images/a.ppm", ppm(200, 150, 1))->status, 201);
    EXPECT_EQ(b.upload("calib/c1.ppm", ppm(180, 160, 2))->status, 201);
    EXPECT_EQ(b.upload("calib/c2.ppm", ppm(220, 140, 3))->status, 201);
    return b;
  }
  /// A user with a small detector to train (models/student.mlirbc), its
  /// teacher (models/teacher.mlirbc) and two pictures in images/.
  Browser userWithStudent(const std::string &name) {
    Browser b = registerUser(name);
    EXPECT_EQ(
        b.upload("models/student.mlirbc", readFile(tinyDetector(2)))->status,
        201);
    EXPECT_EQ(
        b.upload("models/teacher.mlirbc", readFile(tinyDetector(1)))->status,
        201);
    EXPECT_EQ(b.upload("images/a.ppm", ppm(40, 30, 1))->status, 201);
    EXPECT_EQ(b.upload("images/b.ppm", ppm(25, 50, 2))->status, 201);
    return b;
  }

  std::string dataDir;
  std::unique_ptr<StudioServer> server;
  std::thread serving;
  int port = 0;
  std::unique_ptr<httplib::Client> client;
};

/// A raw TCP connection to the server, for what a client library would not
/// send: partial headers, smuggled bodies, floods.
class RawSocket {
public:
  explicit RawSocket(int port, int timeoutSeconds = 10) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected =
        connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
    timeval timeout{timeoutSeconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  }
  ~RawSocket() {
    if (fd >= 0)
      close(fd);
  }
  RawSocket(const RawSocket &) = delete;
  /// Sends what the server takes; false once it stopped taking.
  bool send(const std::string &data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  /// Everything until the server closes (or the timeout).
  std::string readAll() {
    std::string out;
    char buffer[65536];
    for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;)
      out.append(buffer, static_cast<size_t>(n));
    return out;
  }
  /// What arrives within `ms` (at most one read).
  std::string readSome(int ms) {
    timeval timeout{ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buffer[65536];
    ssize_t n = read(fd, buffer, sizeof buffer);
    lastReadClosed = n == 0;
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }
  int fd = -1;
  bool connected = false;
  bool lastReadClosed = false;
};

/// How many times `needle` occurs in `text`.
inline size_t countOf(const std::string &text, const std::string &needle) {
  size_t n = 0;
  for (size_t p = 0; (p = text.find(needle, p)) != std::string::npos;
       p += needle.size())
    ++n;
  return n;
}

/// The children of a process (from /proc).
inline std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> pids;
  DIR *d = opendir("/proc");
  while (struct dirent *e = readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0)
      continue;
    std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos)
      continue;
    int ppid = 0;
    char state;
    if (sscanf(stat.c_str() + close + 2, "%c %d", &state, &ppid) == 2 &&
        ppid == parent)
      pids.push_back(pid);
  }
  closedir(d);
  return pids;
}

} // namespace qsim::studio::test

#endif
