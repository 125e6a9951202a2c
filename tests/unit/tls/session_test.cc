#include "hms/tls/session.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <string>

#include "hms/tls/mesh_ca.h"

namespace hms::tls {
namespace {

// Two sessions talking through in-memory queues, the way the engine drives
// them: whatever one appends to its out queue is lent to the other as input.
struct Pipe {
  core::BlockPool pool{4096};
  core::ByteQueue to_server, to_client;
  ~Pipe() {  // queues hand their blocks back; the pool frees them
    to_server.Clear(&pool);
    to_client.Clear(&pool);
  }

  // Lends everything queued in `q` to `step` until it stops taking bytes.
  template <typename F>
  static void Lend(core::BlockPool& pool, core::ByteQueue& q, core::ByteQueue& back, F&& step) {
    iovec iov[8];
    while (!q.empty()) {
      q.Gather(iov, 1);
      Wire w{static_cast<const char*>(iov[0].iov_base), iov[0].iov_len, &back, &pool};
      step(w);
      size_t took = iov[0].iov_len - w.in_len;
      q.Consume(&pool, took);
      if (took == 0) break;
    }
  }

  // Runs both handshakes to their end; false when either fails.
  bool Handshake(Session& client, Session& server) {
    for (int round = 0; round < 20; ++round) {
      Wire cw{nullptr, 0, &to_server, &pool};
      Step cs = client.Handshake(cw);
      Lend(pool, to_client, to_server, [&](Wire& w) { cs = client.Handshake(w); });
      Step ss = Step::kWant;
      Lend(pool, to_server, to_client, [&](Wire& w) { ss = server.Handshake(w); });
      if (cs == Step::kFailed || ss == Step::kFailed) return false;
      // What is left queued (a TLS 1.3 ticket) is read with the data.
      if (client.handshake_done() && server.handshake_done()) return true;
    }
    return false;
  }

  // Sends `text` one way and returns what the other side reads.
  std::string Send(Session& from, core::ByteQueue& q, Session& to, core::ByteQueue& back,
                   const std::string& text) {
    Wire w{nullptr, 0, &q, &pool};
    EXPECT_TRUE(from.Write(w, text.data(), text.size()));
    std::string got;
    char buf[512];
    Lend(pool, q, back, [&](Wire& in) {
      for (;;) {
        int n = to.Read(in, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
    });
    return got;
  }
};

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hms-tls-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    ASSERT_TRUE(InitMeshCa(dir_, "example.org"));
    ASSERT_TRUE(IssueIdentity(dir_, "gateway", "example.org"));
    ASSERT_TRUE(IssueIdentity(dir_, "calc-svc", "example.org"));
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  std::shared_ptr<const ServerContext> Server(bool client_auth) {
    ServerOptions o;
    o.certs.push_back({dir_ + "/calc-svc.pem", dir_ + "/calc-svc.key"});
    o.ca = dir_ + "/ca.pem";
    o.client_auth = client_auth;
    auto r = ServerContext::Make(o);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }
  std::shared_ptr<const ClientContext> Client(const std::string& name) {
    ClientOptions o;
    if (!name.empty()) {
      o.cert = dir_ + "/" + name + ".pem";
      o.key = dir_ + "/" + name + ".key";
    }
    o.ca = dir_ + "/ca.pem";
    auto r = ClientContext::Make(o);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }
  // Makes a certificate for `names` (the first is its CN) with openssl, self-signed.
  std::string SelfSigned(const std::string& file, const std::string& names) {
    std::string san;
    std::string cn = names.substr(0, names.find(','));
    size_t start = 0;
    while (start < names.size()) {
      size_t end = names.find(',', start);
      if (end == std::string::npos) end = names.size();
      san += (san.empty() ? "DNS:" : ",DNS:") + names.substr(start, end - start);
      start = end + 1;
    }
    std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                      "-subj /CN=" + cn + " -addext subjectAltName=" + san + " -keyout " + dir_ +
                      "/" + file + ".key -out " + dir_ + "/" + file + ".pem 2>/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return dir_ + "/" + file;
  }

  std::string dir_;
};

TEST_F(SessionTest, MutualTlsCarriesDataAndThePeersIdentities) {
  auto server_ctx = Server(true);
  auto client_ctx = Client("gateway");
  auto server = Session::NewServer(server_ctx);
  auto client = Session::NewClient(*client_ctx, nullptr);
  Pipe p;
  ASSERT_TRUE(p.Handshake(*client, *server)) << client->failure() << " / " << server->failure();
  EXPECT_EQ(server->peer_identity(), "spiffe://example.org/svc/gateway");
  EXPECT_EQ(client->peer_identity(), "spiffe://example.org/svc/calc-svc");
  EXPECT_EQ(server->version(), "TLSv1.3");
  EXPECT_EQ(server->alpn(), "http/1.1");
  EXPECT_EQ(p.Send(*client, p.to_server, *server, p.to_client, "GET / HTTP/1.1\r\n\r\n"),
            "GET / HTTP/1.1\r\n\r\n");
  std::string big(100000, 'x');
  EXPECT_EQ(p.Send(*server, p.to_client, *client, p.to_server, big), big);
}

TEST_F(SessionTest, ClientAuthRefusesAClientWithoutACertificate) {
  auto server_ctx = Server(true);
  auto client_ctx = Client("");
  auto server = Session::NewServer(server_ctx);
  auto client = Session::NewClient(*client_ctx, nullptr);
  Pipe p;
  EXPECT_FALSE(p.Handshake(*client, *server));
  EXPECT_FALSE(server->failure().empty());
  EXPECT_TRUE(server->peer_identity().empty());
}

TEST_F(SessionTest, GarbageFailsTheHandshakeWithAReason) {
  auto server_ctx = Server(false);
  auto server = Session::NewServer(server_ctx);
  core::BlockPool pool(4096);
  core::ByteQueue out;
  const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  Wire w{junk, sizeof junk - 1, &out, &pool};
  EXPECT_EQ(server->Handshake(w), Step::kFailed);
  EXPECT_FALSE(server->failure().empty());
  out.Clear(&pool);
}

TEST_F(SessionTest, ATruncatedHandshakeWaitsForMore) {
  auto server_ctx = Server(false);
  auto client_ctx = Client("");
  auto server = Session::NewServer(server_ctx);
  auto client = Session::NewClient(*client_ctx, nullptr);
  core::BlockPool pool(4096);
  core::ByteQueue hello, back;
  Wire cw{nullptr, 0, &hello, &pool};
  ASSERT_EQ(client->Handshake(cw), Step::kWant);
  iovec iov[1];
  hello.Gather(iov, 1);
  Wire w{static_cast<const char*>(iov[0].iov_base), iov[0].iov_len / 2, &back, &pool};
  EXPECT_EQ(server->Handshake(w), Step::kWant);
  EXPECT_EQ(w.in_len, 0u);  // it took the half and waits for the rest
  hello.Clear(&pool);
  back.Clear(&pool);
}

// A ticket from one context resumes on another one made from the same
// files (another core, or after a certificate reload): the ticket keys are
// the process's, not the context's.
TEST_F(SessionTest, TicketsResumeAcrossContexts) {
  auto client_ctx = Client("gateway");
  SavedSession saved;
  {
    auto server_ctx = Server(true);
    auto server = Session::NewServer(server_ctx);
    auto client = Session::NewClient(*client_ctx, nullptr);
    Pipe p;
    ASSERT_TRUE(p.Handshake(*client, *server));
    EXPECT_FALSE(server->resumed());
    // TLS 1.3 tickets come after the handshake: a read takes them in.
    EXPECT_EQ(p.Send(*server, p.to_client, *client, p.to_server, "hi"), "hi");
    client->Save(&saved);
    ASSERT_FALSE(saved.empty());
  }
  auto other_ctx = Server(true);
  auto server = Session::NewServer(other_ctx);
  auto client = Session::NewClient(*client_ctx, &saved);
  Pipe p;
  ASSERT_TRUE(p.Handshake(*client, *server)) << server->failure();
  EXPECT_TRUE(server->resumed());
  EXPECT_TRUE(client->resumed());
  // A resumed session still knows who the peer is, on both sides.
  EXPECT_EQ(server->peer_identity(), "spiffe://example.org/svc/gateway");
  EXPECT_EQ(client->peer_identity(), "spiffe://example.org/svc/calc-svc");
}

// The identity a resumed session reports comes from the ticket itself, not
// from a server-side cache that a busy listener would already have evicted
// it from (wolfSSL's holds 33 sessions).
TEST_F(SessionTest, AResumedSessionKnowsItsCallerAfterManyOthers) {
  if (std::string_view("spiffe://example.org/svc/gateway").size() > MaxTicketIdentity()) {
    GTEST_SKIP() << "this wolfSSL build's tickets hold identities of up to "
                 << MaxTicketIdentity() << " bytes (Debian's packaged library)";
  }
  auto server_ctx = Server(true);
  auto gateway_ctx = Client("gateway");
  auto other_ctx = Client("calc-svc");
  SavedSession saved;
  {
    auto server = Session::NewServer(server_ctx);
    auto client = Session::NewClient(*gateway_ctx, nullptr);
    Pipe p;
    ASSERT_TRUE(p.Handshake(*client, *server));
    EXPECT_EQ(p.Send(*server, p.to_client, *client, p.to_server, "hi"), "hi");
    client->Save(&saved);
    ASSERT_FALSE(saved.empty());
  }
  for (int i = 0; i < 200; ++i) {
    auto server = Session::NewServer(server_ctx);
    auto client = Session::NewClient(*other_ctx, nullptr);
    Pipe p;
    ASSERT_TRUE(p.Handshake(*client, *server));
    ASSERT_EQ(p.Send(*server, p.to_client, *client, p.to_server, "hi"), "hi");
  }
  auto server = Session::NewServer(server_ctx);
  auto client = Session::NewClient(*gateway_ctx, &saved);
  Pipe p;
  ASSERT_TRUE(p.Handshake(*client, *server)) << server->failure();
  EXPECT_TRUE(server->resumed());
  EXPECT_EQ(server->peer_identity(), "spiffe://example.org/svc/gateway");
  EXPECT_EQ(client->peer_identity(), "spiffe://example.org/svc/calc-svc");
}

// Ticket keys are the process's, so a ticket issued where no client
// certificate was asked for also reaches a listener that requires one; that
// listener makes the client prove itself again rather than resume a caller
// without an identity.
TEST_F(SessionTest, AClientAuthListenerDoesNotResumeATicketWithoutIdentity) {
  auto client_ctx = Client("gateway");
  SavedSession saved;
  {
    auto open_ctx = Server(false);
    auto server = Session::NewServer(open_ctx);
    auto client = Session::NewClient(*client_ctx, nullptr);
    Pipe p;
    ASSERT_TRUE(p.Handshake(*client, *server));
    EXPECT_TRUE(server->peer_identity().empty());
    EXPECT_EQ(p.Send(*server, p.to_client, *client, p.to_server, "hi"), "hi");
    client->Save(&saved);
    ASSERT_FALSE(saved.empty());
  }
  auto strict_ctx = Server(true);
  auto server = Session::NewServer(strict_ctx);
  auto client = Session::NewClient(*client_ctx, &saved);
  Pipe p;
  ASSERT_TRUE(p.Handshake(*client, *server)) << server->failure();
  EXPECT_FALSE(server->resumed());
  EXPECT_EQ(server->peer_identity(), "spiffe://example.org/svc/gateway");
}

TEST_F(SessionTest, SniChoosesTheCertificate) {
  std::string a = SelfSigned("a", "a.example,alt.example");
  std::string b = SelfSigned("b", "b.example,*.wild.example");
  ServerOptions o;
  o.certs = {{a + ".pem", a + ".key"}, {b + ".pem", b + ".key"}};
  auto server_ctx = ServerContext::Make(o);
  ASSERT_TRUE(server_ctx) << server_ctx.error().message;
  ASSERT_EQ((*server_ctx)->names().size(), 2u);
  const auto& b_names = (*server_ctx)->names()[1];
  EXPECT_NE(std::find(b_names.begin(), b_names.end(), "*.wild.example"), b_names.end());
  auto trusting = [&](const std::string& cert) {
    ClientOptions c;
    c.ca = cert + ".pem";
    return *ClientContext::Make(c);
  };
  auto trusts_a = trusting(a);
  auto trusts_b = trusting(b);
  struct Case {
    const char* sni;
    bool b_served;
  } cases[] = {{"b.example", true}, {"x.wild.example", true}, {"B.Example", true},
               {"a.example", false}, {"alt.example", false}, {"other.example", false},
               {"wild.example", false}, {"", false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sni);
    auto expect = c.b_served ? trusts_b : trusts_a;
    auto refuse = c.b_served ? trusts_a : trusts_b;
    {
      auto server = Session::NewServer(*server_ctx);
      auto client = Session::NewClient(*expect, nullptr, c.sni);
      Pipe p;
      EXPECT_TRUE(p.Handshake(*client, *server)) << client->failure();
    }
    {
      auto server = Session::NewServer(*server_ctx);
      auto client = Session::NewClient(*refuse, nullptr, c.sni);
      Pipe p;
      EXPECT_FALSE(p.Handshake(*client, *server));
    }
  }
}

TEST_F(SessionTest, BadFilesSayWhichFileAndWhy) {
  ServerOptions o;
  o.certs.push_back({dir_ + "/missing.pem", dir_ + "/calc-svc.key"});
  auto r = ServerContext::Make(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("missing.pem"), std::string::npos) << r.error().message;
  o.certs[0] = {dir_ + "/calc-svc.pem", dir_ + "/gateway.key"};
  r = ServerContext::Make(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos) << r.error().message;
}

// tls.ticket_keys (docs/tls.md "Tickets shared by a fleet"): the file's
// rules, each refusal naming file:line; a refused file keeps the keys in use.
TEST(TicketKeys, FileRules) {
  const std::string k1 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";  // 32 bytes
  const std::string k2 = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
  struct Case {
    std::string text;
    std::string error;  // "" when accepted
  } cases[] = {
      {k1 + "\n", ""},
      {"# rotated hourly\n\n" + k2 + "\r\n" + k1 + "\n", ""},
      {"", "k.keys: no ticket key"},
      {"# only a comment\n", "k.keys: no ticket key"},
      {k1 + "\nnot base64\n", "k.keys:2: not a ticket key"},
      {"MDEyMzQ1Njc4OWFiY2RlZg==\n", "k.keys:1: not a ticket key"},  // 16 bytes
      {k1 + "\n" + k2 + "\n" + k1 + "\n" + k2 + "\n" + k1 + "\n", "k.keys: 5 ticket keys, at most 4"},
  };
  for (const Case& c : cases) {
    Result<bool> r = UseTicketKeys(c.text, "k.keys");
    if (c.error.empty()) {
      EXPECT_TRUE(r.ok()) << c.text << ": " << r.error().message;
    } else {
      ASSERT_FALSE(r.ok()) << c.text;
      EXPECT_EQ(r.error().message.rfind(c.error, 0), 0u) << r.error().message;
    }
  }
  UseProcessTicketKeys();
}

// Two contexts of separate "processes" resume each other's tickets only
// when they share the keys; the first key seals, every key opens.
TEST_F(SessionTest, SharedTicketKeysResumeAndRotate) {
  const std::string k1 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
  const std::string k2 = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
  auto client_ctx = Client("gateway");
  auto ticket_with = [&](const std::string& keys, SavedSession* saved) {
    ASSERT_TRUE(UseTicketKeys(keys, "k.keys").ok());
    auto server_ctx = Server(true);
    auto server = Session::NewServer(server_ctx);
    auto client = Session::NewClient(*client_ctx, nullptr);
    Pipe p;
    ASSERT_TRUE(p.Handshake(*client, *server));
    EXPECT_EQ(p.Send(*server, p.to_client, *client, p.to_server, "hi"), "hi");
    client->Save(saved);
  };
  auto resumes_with = [&](const std::string& keys, SavedSession* saved) {
    if (keys.empty()) {
      UseProcessTicketKeys();
    } else {
      EXPECT_TRUE(UseTicketKeys(keys, "k.keys").ok());
    }
    auto server_ctx = Server(true);
    auto server = Session::NewServer(server_ctx);
    auto client = Session::NewClient(*client_ctx, saved);
    Pipe p;
    EXPECT_TRUE(p.Handshake(*client, *server)) << server->failure();
    return server->resumed();
  };
  SavedSession s1;
  ticket_with(k1 + "\n", &s1);
  EXPECT_TRUE(resumes_with(k1 + "\n", &s1));
  EXPECT_TRUE(resumes_with(k2 + "\n" + k1 + "\n", &s1));  // the previous key still opens
  EXPECT_FALSE(resumes_with(k2 + "\n", &s1));             // rotated out
  EXPECT_FALSE(resumes_with("", &s1));                    // the process's own secret
  UseProcessTicketKeys();
}

}  // namespace
}  // namespace hms::tls
