// Binary upgrade without a dropped connection (docs/engine.md, "Upgrading
// the binary").
//
// A running gateway listens on an abstract unix socket named after its config
// file ("\0hms-gateway-upgrade:<hash of the config's absolute path>").
// `hms-gateway --config F --upgrade` loads F, connects there and receives
// every listening socket of the running gateway over SCM_RIGHTS: each member
// of each listener's SO_REUSEPORT group and the admin socket. Closing a group
// member would drop the connections queued on it, so the new process keeps
// every member whatever its own core count. Once it serves, it sends one
// byte; the old process then stops accepting (it closes its copies, never
// shuts the shared sockets down), drains and exits 0. A new process that
// fails before that byte leaves the old one serving, and the old one listens
// for the next upgrade again.
//
// Messages (SOCK_SEQPACKET, so each keeps its boundary), old to new: one per
// socket, "L <listener index>" or "A" (admin), carrying that socket; then
// "E". New to old: "R" once serving.
//
// HandoverServer runs its own thread (never a core's); ReceiveSockets and
// ConfirmServing are for the new process's control thread at start-up.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "hms/common/result.h"

namespace hms::control {

// The abstract socket name (without its leading NUL) of the gateway that runs
// `config_path` ("" for embedded defaults).
std::string HandoverName(const std::string& config_path);

// One listening socket handed over: a listener's group member, or the admin
// socket (listener == kAdmin).
struct HandedSocket {
  static constexpr int kAdmin = -1;
  int fd = -1;
  int listener = kAdmin;
};

// The old side: answers one upgrade at a time.
class HandoverServer {
 public:
  using SocketsFn = std::function<std::vector<HandedSocket>()>;
  using LogFn = std::function<void(const std::string&)>;

  // `sockets` lists what to hand over (called on the server's thread; the
  // descriptors must stay open while the server runs). `on_handed_over` runs
  // on that thread once the new process serves: the caller drains and exits.
  HandoverServer(std::string name, SocketsFn sockets, std::function<void()> on_handed_over,
                 LogFn log);
  ~HandoverServer();  // Stop()s

  // Binds the name and starts the thread. An error when another process
  // holds the name (a gateway of the same config runs already).
  Result<bool> Start();
  void Stop();
  // The new process confirmed: what this one listened on is its now. Also
  // true when Stop() came while a new process held the sockets (it may still
  // serve on them): the caller drains as after a handover either way.
  bool handed_over() const { return handed_over_.load(std::memory_order_acquire); }

 private:
  int Bind();
  void Run();
  // Sends every socket over `conn` and waits for "R"; true when it came.
  bool Serve(int conn);

  std::string name_;
  SocketsFn sockets_;
  std::function<void()> on_handed_over_;
  LogFn log_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> handed_over_{false};
  std::thread thread_;
};

// The new side: the sockets received, by listener index (each group's
// members), the admin socket (-1: none), and the connection to confirm on.
struct ReceivedSockets {
  std::vector<std::vector<int>> listeners;
  int admin = -1;
  int conn = -1;
  // Closes every descriptor still held here (a start-up that failed: the old
  // process keeps its own and goes on serving).
  void CloseAll();
};

// Connects to the running gateway named `name` and receives its sockets.
Result<ReceivedSockets> ReceiveSockets(const std::string& name);
// Tells the old process that this one serves; closes the connection.
Result<bool> ConfirmServing(ReceivedSockets* received);

}  // namespace hms::control
