// Fuzz target: the TLS record path of a server session (src/tls/session.cc)
// with in-memory I/O, as the engine drives it: arbitrary bytes as the
// client's ClientHello and records, lent in pieces to Handshake and, once a
// handshake completes, to Read; what the session queues to send is dropped.
//
// The server holds a certificate of a mesh CA made at start-up in a scratch
// directory (the unit tests' set-up). The first input byte picks the context
// (with or without client certificates) and the piece size. Properties: no
// crash, leak or overread; a session that failed says why; a step never
// takes more bytes than were lent; Read returns a count within the buffer.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "fuzz_check.h"
#include "hms/core/block_pool.h"
#include "hms/tls/mesh_ca.h"
#include "hms/tls/session.h"

namespace {

struct State {
  std::string dir;
  std::shared_ptr<const hms::tls::ServerContext> plain, mutual;
  hms::core::BlockPool pool{4096};
};

State& Get() {
  static State* s = [] {
    auto* st = new State();
    const char* tmp = getenv("TMPDIR");
    std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/hms-fuzz-tls-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir.data()) != nullptr);
    st->dir = dir;
    FUZZ_CHECK(hms::tls::InitMeshCa(dir, "example.org").ok());
    FUZZ_CHECK(hms::tls::IssueIdentity(dir, "calc-svc", "example.org").ok());
    for (bool client_auth : {false, true}) {
      hms::tls::ServerOptions o;
      o.certs.push_back({dir + "/calc-svc.pem", dir + "/calc-svc.key"});
      o.ca = dir + "/ca.pem";
      o.client_auth = client_auth;
      auto ctx = hms::tls::ServerContext::Make(o);
      FUZZ_CHECK(ctx.ok());
      (client_auth ? st->mutual : st->plain) = ctx.value();
    }
    // The key files are read once, into the contexts: the directory can go.
    std::system(("rm -rf '" + dir + "'").c_str());
    return st;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  State& st = Get();
  if (size == 0) return 0;
  const bool mutual = (data[0] & 1) != 0;
  const size_t piece = (data[0] >> 1) == 0 ? size : static_cast<size_t>(data[0] >> 1) * 37;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;

  auto session = hms::tls::Session::NewServer(mutual ? st.mutual : st.plain);
  FUZZ_CHECK(session != nullptr);
  hms::core::ByteQueue out;
  bool failed = false;
  size_t lent_end = 0;  // bytes "received" so far
  size_t pos = 0;       // bytes the session took
  char plain[4096];
  for (int rounds = 0; rounds < 10000 && !failed; ++rounds) {
    if (pos == lent_end) {
      if (lent_end == n) break;
      lent_end = std::min(n, lent_end + piece);
    }
    hms::tls::Wire w{p + pos, lent_end - pos, &out, &st.pool};
    const size_t before = w.in_len;
    if (!session->handshake_done()) {
      const hms::tls::Step step = session->Handshake(w);
      if (step == hms::tls::Step::kFailed) {
        FUZZ_CHECK(!session->failure().empty());
        failed = true;
      }
    } else {
      const int r = session->Read(w, plain, sizeof plain);
      FUZZ_CHECK(r <= static_cast<int>(sizeof plain));
      if (r == hms::tls::Session::kError) {
        FUZZ_CHECK(!session->failure().empty());
        failed = true;
      } else if (r == hms::tls::Session::kEof) {
        break;
      } else if (r > 0) {
        FUZZ_CHECK(session->Write(w, plain, static_cast<size_t>(r)));
      }
    }
    FUZZ_CHECK(w.in_len <= before);
    const size_t took = before - w.in_len;
    pos += took;
    if (took == 0 && !failed) {
      if (lent_end == n) break;
      lent_end = std::min(n, lent_end + piece);
    }
    out.Clear(&st.pool);  // what the server sends goes nowhere
  }
  if (!failed) {
    hms::tls::Wire w{nullptr, 0, &out, &st.pool};
    session->Shutdown(w);
  }
  out.Clear(&st.pool);
  return 0;
}
