#include "hms/tls/mesh_ca.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <fstream>
#include <sstream>
#include <string>

namespace hms::tls {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class MeshCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hms-meshca-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    root_ = dir;
    dir_ = root_ + "/certs";
  }
  void TearDown() override { std::system(("rm -rf '" + root_ + "'").c_str()); }

  // wolfSSL's own chain check of `cert` against the CA in dir_.
  int Verify(const std::string& cert) {
    WOLFSSL_CERT_MANAGER* cm = wolfSSL_CertManagerNew();
    const std::string ca = Read(dir_ + "/ca.pem");
    int rc = wolfSSL_CertManagerLoadCABuffer(cm, reinterpret_cast<const unsigned char*>(ca.data()),
                                             static_cast<long>(ca.size()), WOLFSSL_FILETYPE_PEM);
    if (rc == WOLFSSL_SUCCESS) {
      rc = wolfSSL_CertManagerVerifyBuffer(cm, reinterpret_cast<const unsigned char*>(cert.data()),
                                           static_cast<long>(cert.size()), WOLFSSL_FILETYPE_PEM);
    }
    wolfSSL_CertManagerFree(cm);
    return rc;
  }

  std::string root_, dir_;
};

WOLFSSL_X509* LoadPem(const std::string& pem) {
  return wolfSSL_X509_load_certificate_buffer(reinterpret_cast<const unsigned char*>(pem.data()),
                                              static_cast<int>(pem.size()), WOLFSSL_FILETYPE_PEM);
}

TEST_F(MeshCaTest, IdentitiesChainToTheCaAndCarryTheirSpiffeId) {
  Result<IssuedFiles> ca = InitMeshCa(dir_, "example.org");
  ASSERT_TRUE(ca) << ca.error().message;
  struct stat st;
  ASSERT_EQ(stat(ca->key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  Result<IssuedFiles> id = IssueIdentity(dir_, "calc-svc", "example.org");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(id->identity, "spiffe://example.org/svc/calc-svc");
  EXPECT_EQ(id->cert, dir_ + "/calc-svc.pem");
  ASSERT_EQ(stat(id->key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string pem = Read(id->cert);
  EXPECT_EQ(Verify(pem), WOLFSSL_SUCCESS);
  // The only subjectAltName is the URI.
  WOLFSSL_X509* x = LoadPem(pem);
  ASSERT_NE(x, nullptr);
  int der_sz = 0;
  const unsigned char* der = wolfSSL_X509_get_der(x, &der_sz);
  const std::string uri = "spiffe://example.org/svc/calc-svc";
  const std::string want = std::string("\x30") + static_cast<char>(uri.size() + 2) + "\x86" +
                           static_cast<char>(uri.size()) + uri;
  EXPECT_NE(std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(der_sz)).find(want),
            std::string::npos);
  wolfSSL_X509_free(x);

  // Another CA does not vouch for it.
  const std::string other = root_ + "/other";
  ASSERT_TRUE(InitMeshCa(other, "example.org"));
  const std::string saved = dir_;
  dir_ = other;
  EXPECT_NE(Verify(pem), WOLFSSL_SUCCESS);
  dir_ = saved;
}

TEST_F(MeshCaTest, RefusalsSayWhy) {
  Result<IssuedFiles> none = IssueIdentity(dir_, "calc-svc", "hms.local");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("certs init"), std::string::npos) << none.error().message;
  ASSERT_TRUE(InitMeshCa(dir_, "hms.local"));
  Result<IssuedFiles> again = InitMeshCa(dir_, "hms.local");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("--force"), std::string::npos);
  const std::string old_ca = Read(dir_ + "/ca.pem");
  ASSERT_TRUE(InitMeshCa(dir_, "hms.local", /*force=*/true));
  EXPECT_NE(Read(dir_ + "/ca.pem"), old_ca);
  EXPECT_FALSE(IssueIdentity(dir_, "Calc_Svc", "hms.local"));
  EXPECT_FALSE(IssueIdentity(dir_, "../etc", "hms.local"));
  EXPECT_FALSE(InitMeshCa(root_ + "/x", "Bad Domain"));
}

// `hms-api certs issue --dns gateway.local`: a server certificate whose only
// subjectAltName is that dNSName, chaining to the mesh CA.
TEST_F(MeshCaTest, EdgeCertificatesCarryTheirDnsName) {
  ASSERT_TRUE(InitMeshCa(dir_, "hms.local"));
  Result<IssuedFiles> f = IssueServerCert(dir_, "gateway.local", "hms.local");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->cert, dir_ + "/gateway.local.pem");
  EXPECT_EQ(f->key, dir_ + "/gateway.local.key");
  EXPECT_EQ(f->identity, "DNS:gateway.local");
  struct stat st;
  ASSERT_EQ(stat(f->key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string pem = Read(f->cert);
  EXPECT_EQ(Verify(pem), WOLFSSL_SUCCESS);
  WOLFSSL_X509* x = LoadPem(pem);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(wolfSSL_X509_check_host(x, "gateway.local", 13, 0, nullptr), WOLFSSL_SUCCESS);
  EXPECT_NE(wolfSSL_X509_check_host(x, "other.local", 11, 0, nullptr), WOLFSSL_SUCCESS);
  wolfSSL_X509_free(x);

  Result<IssuedFiles> wild = IssueServerCert(dir_, "*.hms.local", "hms.local");
  ASSERT_TRUE(wild) << wild.error().message;
  EXPECT_EQ(wild->cert, dir_ + "/_wildcard.hms.local.pem");
}

TEST(MeshCa, DnsNames) {
  for (const char* good : {"gateway.local", "localhost", "a-b.example.org", "*.example.org",
                           "x1.y2.z3"}) {
    EXPECT_TRUE(IsDnsName(good)) << good;
  }
  for (const char* bad : {"", "Gateway.local", "-a.local", "a-.local", "a..local", ".local",
                          "local.", "*.", "a.*.local", "**.local", "a_b.local", "a b", "../x",
                          "gateway.local/"}) {
    EXPECT_FALSE(IsDnsName(bad)) << bad;
  }
  EXPECT_FALSE(IsDnsName(std::string(64, 'a') + ".local"));
  EXPECT_TRUE(IsDnsName(std::string(63, 'a') + ".local"));
}

}  // namespace
}  // namespace hms::tls
