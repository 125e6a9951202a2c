// Start-up's claim on a listener address (docs/engine.md, "One gateway per
// address"): a listener belongs to one gateway.
//
// The cores' listening sockets are SO_REUSEPORT, one per core, and Linux lets
// any socket of the same user that also sets SO_REUSEPORT join such a group:
// a second gateway on the address would start, say "ready" and take a share
// of the connections. So before the per-core sockets exist, Engine::Bind
// claims each address:
//
//   1. The claim lock: the abstract unix socket "\0hms-gateway-claim:PORT",
//      bound while the claim lives. Two gateways claiming one port at the
//      same moment take turns (the second waits, at most kLockWaitMs); the
//      kernel frees the name when its process dies, however it dies.
//   2. The probe: a TCP socket bound to the address with SO_REUSEADDR and
//      without SO_REUSEPORT. Linux refuses that bind with EADDRINUSE while
//      any socket listens on an overlapping address (the same one, the
//      wildcard, a specific one under our wildcard), SO_REUSEPORT or not, and
//      allows it over an earlier run's TIME_WAIT connections. A probe that is
//      bound but not listening does not keep our own SO_REUSEPORT sockets
//      from binding and listening beside it.
//   3. Decide(): listen anew, adopt, or refuse.
//
// A deliberate handover (`hms-gateway --upgrade`, control/handover.h) is the
// one exception: the new process received the address's listening sockets
// from the gateway that listens there, so the probe's EADDRINUSE is that
// gateway, and the address is adopted (extra cores join the same group).
// Without sockets received, the same probe still refuses.
//
// The caller binds and listens on the per-core sockets before it lets the
// claim go, so the next claimant's probe sees them listening.
//
// Control thread only, before the cores start.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "hms/common/result.h"

namespace hms::proxy {

// What start-up does with one listener address.
enum class ClaimDecision : uint8_t {
  kListen,  // nothing listens there: make the per-core sockets
  kRefuse,  // another process listens there: start-up fails, naming the address
  kAdopt,   // the sockets listening there were handed over to this process
};

// The one place that decides, from the probe's bind result (0 or -errno) and
// whether this process received the address's sockets from the gateway it
// replaces, whether start-up may listen on an address.
ClaimDecision Decide(int probe_result, bool handed_over = false);

class ListenClaim {
 public:
  // How long a claimant waits for another start-up's claim of the same port.
  // A claim lasts a few syscalls per core; a lock held longer belongs to a
  // process stopped mid start-up.
  static constexpr int kLockWaitMs = 2000;

  // Claims `*ss` ("address" names it in errors). For port 0 the kernel picks
  // a free port here and `*ss` is given it: every core's socket then binds
  // that port. Errors name the address: another process listens there,
  // another start-up holds the claim, or the bind's own errno.
  // `handed_over`: the caller holds the sockets listening there, received
  // over the upgrade socket (Decide's kAdopt).
  static Result<ListenClaim> Take(sockaddr_storage* ss, socklen_t len, const std::string& address,
                                  bool handed_over = false);

  ListenClaim(ListenClaim&& other) noexcept;
  ListenClaim& operator=(ListenClaim&&) = delete;
  ListenClaim(const ListenClaim&) = delete;
  ~ListenClaim();  // lets the lock and the probe go

 private:
  ListenClaim() = default;
  int lock_fd_ = -1;
  int pick_fd_ = -1;  // port 0: the socket the kernel picked the port with
  int probe_fd_ = -1;
};

}  // namespace hms::proxy
