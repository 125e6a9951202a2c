// Fuzz target: whole connections through one core's worker without ports
// (the operations and the property are in engine_driver.h). Each connection
// is one end of a socketpair handed to the core as if accepted on its
// listener (Engine::Adopt); the worker's multishot receives read it as they
// read TCP. A piece is known taken when its bytes left the socket (SIOCOUTQ
// of a unix stream socket counts what the peer has not read), so no input
// waits a fixed time for it. A normal close raises POLLHUP on a unix socket
// (TCP's FIN raises nothing), so the worker's reset watch sees it at once:
// the FIN-only close stays engine's to cover.
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "engine_driver.h"

namespace {

int Open(hms::proxy::Engine& engine) {
  int sv[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  engine.Adopt(0, sv[1], 0);
  return sv[0];
}

// Until the worker has read the piece (bounded: a worker that stopped
// reading, its input held, keeps it), then what it answered so far.
void AfterSend(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
  int queued = 0;
  while (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  engine_fuzz::ReadSent(fd, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static hms::proxy::Engine* engine = engine_fuzz::StartEngine(/*bind=*/false).release();
  if (engine == nullptr || size > 8192) return 0;
  engine_fuzz::Run(*engine, {Open, AfterSend, 2}, data, size);
  return 0;
}
