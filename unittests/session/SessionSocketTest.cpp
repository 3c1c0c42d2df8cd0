//===- SessionSocketTest.cpp - two clients on one step session ------------===//
//
// The socket transport of `qsim-run --session --listen`: one client runs the
// model while a second one watches, pauses, resumes and stops it; a client
// that disconnects mid-run leaves a usable session.
//
//===----------------------------------------------------------------------===//

#include "qsim/Session/Server.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <chrono>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace qsim::session;
using json = nlohmann::json;

namespace {

// 16 convolutions of 32 channels at 64x64: long enough with the reference
// kernels (tens of ms per layer) to be paused mid-run.
std::string slowCfg() {
  std::string cfg = "[net]\nwidth=64\nheight=64\nchannels=3\n";
  for (int i = 0; i < 16; ++i)
    cfg += "[convolutional]\nfilters=32\nsize=3\npad=1\nactivation=leaky\n";
  cfg += "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"
         "[yolo]\nmask=0,1\nanchors=4,6, 12,10\nclasses=2\nnum=2\n";
  return cfg;
}

class Client {
public:
  explicit Client(const std::string &path) {
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    // The server may still be starting.
    for (int i = 0; i < 200; ++i) {
      if (connect(fd, (sockaddr *)&addr, sizeof addr) == 0) {
        connected = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~Client() { close(); }
  void close() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
  void send(const json &req) { sendRaw(req.dump() + "\n"); }
  void sendRaw(const std::string &line) {
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL),
              (ssize_t)line.size());
  }
  json receive() {
    for (;;) {
      size_t nl = buf.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return json::parse(line);
      }
      char tmp[4096];
      ssize_t n = recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0)
        return json{{"ok", false}, {"error", "connection closed"}};
      buf.append(tmp, n);
    }
  }
  json call(const json &req) {
    send(req);
    return receive();
  }
  bool connected = false;

private:
  int fd = -1;
  std::string buf;
};

class SessionSocket : public ::testing::Test {
protected:
  void SetUp() override {
    llvm::SmallString<128> d;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("qsim-session", d));
    dir = std::string(d.str());
    std::ofstream(dir + "/slow.cfg") << slowCfg();
    socketPath = dir + "/s.sock";
    Engine::Options o;
    o.referenceKernels = true;
    o.threads = 1;
    engine = std::make_unique<Engine>(o);
    server = std::make_unique<Server>(*engine);
    serverThread = std::thread([this] {
      std::string error;
      rc = server->serveSocket("unix:" + socketPath, error);
    });
  }
  void TearDown() override {
    server->requestShutdown();
    serverThread.join();
    EXPECT_EQ(rc, 0);
    // The socket file is removed on shutdown.
    EXPECT_FALSE(llvm::sys::fs::exists(socketPath));
    llvm::sys::fs::remove_directories(dir);
  }
  /// Polls status until a run is in progress past layer `atLeast`.
  json waitRunning(Client &c, int64_t atLeast) {
    for (int i = 0; i < 2000; ++i) {
      json s = c.call({{"cmd", "status"}});
      if (s["status"]["running"].get<bool>() &&
          s["status"].value("position", 0) >= atLeast)
        return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return json();
  }

  std::string dir, socketPath;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Server> server;
  std::thread serverThread;
  int rc = -1;
};

TEST_F(SessionSocket, SecondClientPausesResumesAndStopsARun) {
  Client a(socketPath), b(socketPath);
  ASSERT_TRUE(a.connected && b.connected);
  json load = a.call(
      {{"cmd", "load"}, {"model", dir + "/slow.cfg"}, {"random_weights", 3}});
  ASSERT_TRUE(load["ok"].get<bool>()) << load.dump();
  ASSERT_EQ(load["layers"].get<int>(), 18);

  // A runs everything; B pauses it mid-run.
  a.send({{"cmd", "continue"}, {"id", "run1"}});
  json running = waitRunning(b, 2);
  ASSERT_FALSE(running.is_null()) << "the run never showed progress";
  EXPECT_EQ(running["status"]["command"], "continue");
  json paused = b.call({{"cmd", "pause"}});
  ASSERT_TRUE(paused["ok"].get<bool>());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  json s1 = b.call({{"cmd", "status"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  json s2 = b.call({{"cmd", "status"}});
  EXPECT_TRUE(s2["status"]["paused"].get<bool>());
  EXPECT_TRUE(s2["status"]["running"].get<bool>());
  // Nothing advances while paused.
  EXPECT_EQ(s1["status"]["position"], s2["status"]["position"]);
  EXPECT_LT(s2["status"]["position"].get<int>(), 18);
  ASSERT_TRUE(b.call({{"cmd", "resume"}})["ok"].get<bool>());
  json done = a.receive();
  ASSERT_TRUE(done["ok"].get<bool>()) << done.dump();
  EXPECT_EQ(done["id"], "run1");
  EXPECT_EQ(done["reason"], "end");
  EXPECT_EQ(done["position"], 18);

  // Stop: the run ends early, at a layer boundary, and says so.
  ASSERT_TRUE(a.call({{"cmd", "restart"}})["ok"].get<bool>());
  a.send({{"cmd", "continue"}});
  ASSERT_FALSE(waitRunning(b, 2).is_null());
  ASSERT_TRUE(b.call({{"cmd", "stop"}})["ok"].get<bool>());
  json stopped = a.receive();
  ASSERT_TRUE(stopped["ok"].get<bool>()) << stopped.dump();
  EXPECT_EQ(stopped["reason"], "stopped");
  int64_t pos = stopped["position"].get<int64_t>();
  EXPECT_GE(pos, 2);
  EXPECT_LT(pos, 18);
  // The session goes on from there.
  json info = b.call({{"cmd", "info"}});
  ASSERT_TRUE(info["ok"].get<bool>());
  EXPECT_EQ(info["position"].get<int64_t>(), pos);
  json rest = b.call({{"cmd", "continue"}});
  EXPECT_EQ(rest["reason"], "end");
  EXPECT_EQ(rest["layers_run"].get<int64_t>(), 18 - pos);
}

TEST_F(SessionSocket, DisconnectingClientStopsItsRunAndLeavesTheSessionUsable) {
  Client b(socketPath);
  {
    Client a(socketPath);
    ASSERT_TRUE(a.connected);
    ASSERT_TRUE(a.call({{"cmd", "load"},
                        {"model", dir + "/slow.cfg"},
                        {"random_weights", 3}})["ok"]
                    .get<bool>());
    a.send({{"cmd", "continue"}});
    ASSERT_FALSE(waitRunning(b, 1).is_null());
    a.close(); // gone mid-run
  }
  // The run stops at a layer boundary; the session is intact.
  json s;
  for (int i = 0; i < 2000; ++i) {
    s = b.call({{"cmd", "status"}});
    if (!s["status"]["running"].get<bool>())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_FALSE(s["status"]["running"].get<bool>());
  json info = b.call({{"cmd", "info"}});
  ASSERT_TRUE(info["ok"].get<bool>());
  int64_t pos = info["position"].get<int64_t>();
  EXPECT_LT(pos, 18);
  json st = b.call({{"cmd", "stats"}, {"layer", pos - 1}, {"what", "output"}});
  EXPECT_TRUE(st["ok"].get<bool>()) << st.dump();
}

TEST_F(SessionSocket, BadRequestsGetErrorRepliesAndTheSessionLivesOn) {
  Client a(socketPath);
  ASSERT_TRUE(a.connected);
  a.send(json("just a string"));
  json r = a.receive();
  EXPECT_FALSE(r["ok"].get<bool>());
  a.sendRaw("{\"cmd\": \n");
  json bad = a.receive();
  EXPECT_FALSE(bad["ok"].get<bool>());
  EXPECT_NE(bad["error"].get<std::string>().find("malformed JSON"),
            std::string::npos);
  Client other(socketPath);
  json noModel = other.call({{"cmd", "info"}}); // no model: an error reply
  EXPECT_FALSE(noModel["ok"].get<bool>());
  EXPECT_NE(noModel["error"].get<std::string>().find("no model loaded"),
            std::string::npos);
  EXPECT_FALSE(a.call({{"cmd", "frobnicate"}})["ok"].get<bool>());
  EXPECT_FALSE(a.call({{"cmd", "load"}, {"model", dir + "/missing.cfg"}})["ok"]
                   .get<bool>());
  // Still serving.
  json s = a.call({{"cmd", "status"}});
  EXPECT_TRUE(s["ok"].get<bool>());
}

TEST(SessionEngine, CommandTimeLimitStopsARunAtALayerBoundary) {
  llvm::SmallString<128> d;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("qsim-session", d));
  std::string dir(d.str());
  std::ofstream(dir + "/slow.cfg") << slowCfg();
  Engine::Options o;
  o.referenceKernels = true;
  o.threads = 1;
  o.limits.commandSeconds = 0.02;
  Engine engine(o);
  SessionControl control;
  json load = engine.handle(
      {{"cmd", "load"}, {"model", dir + "/slow.cfg"}, {"random_weights", 1}},
      control);
  ASSERT_TRUE(load["ok"].get<bool>()) << load.dump();
  json r = engine.handle({{"cmd", "continue"}}, control);
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["reason"], "time limit");
  int64_t pos = r["position"].get<int64_t>();
  EXPECT_GE(pos, 1);
  EXPECT_LT(pos, 18);
  // Each command gets its own time: the run goes on.
  json r2 = engine.handle({{"cmd", "step"}}, control);
  EXPECT_TRUE(r2["ok"].get<bool>());
  EXPECT_EQ(r2["position"].get<int64_t>(), pos + 1);
  llvm::sys::fs::remove_directories(dir);
}

} // namespace
