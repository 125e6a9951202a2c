// LoadStoredService / LoadStoredServices: how every reader of the store (the
// gateway and hms-api) turns stored text into services.
#include "hms/control/store.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hms::control {
namespace {

StoredService Stored(std::string name, std::string service, std::vector<std::string> eps = {}) {
  return StoredService{name,
                       "service: " + service + "\nendpoints: [127.0.0.1:7001]\nroutes:\n  - GET /x\n",
                       name + ".yaml", std::move(eps)};
}

TEST(LoadStoredService, ParsesAndKeepsTheFileEndpoints) {
  Result<config::ServiceConfig> c = LoadStoredService(Stored("echo", "echo", {"127.0.0.1:7002"}));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->service, "echo");
  EXPECT_EQ(c->endpoints, std::vector<std::string>{"127.0.0.1:7001"});
  EXPECT_EQ(WithStoredEndpoints(*c, Stored("echo", "echo", {"127.0.0.1:7002"})).endpoints,
            (std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002"}));
}

TEST(LoadStoredService, RefusesAServiceStoredUnderAnotherName) {
  Result<config::ServiceConfig> c = LoadStoredService(Stored("echo", "other"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "echo.yaml:1: service: 'other' is not the name it is stored under ('echo'): a store "
            "file's service name must match its file name");
}

TEST(LoadStoredService, NamesTheFileAndLineOfAParseError) {
  StoredService s{"echo", "service: echo\nroutes: 7\n", "", {}};
  Result<config::ServiceConfig> c = LoadStoredService(s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message.rfind("echo:", 0), 0u) << c.error().message;  // no source: the name
}

TEST(LoadStoredServices, SkipsWhatDoesNotLoadAndSaysWhy) {
  std::vector<std::string> problems;
  const std::vector<config::ServiceConfig> got = LoadStoredServices(
      {Stored("a", "a", {"127.0.0.1:7003"}), Stored("b", "c"), Stored("d", "d")}, &problems);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].service, "a");
  EXPECT_EQ(got[0].endpoints.back(), "127.0.0.1:7003");
  EXPECT_EQ(got[1].service, "d");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].rfind("b: b.yaml:1: service: 'c'", 0), 0u) << problems[0];
}

}  // namespace
}  // namespace hms::control
