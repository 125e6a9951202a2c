// ServiceCache: a reload parses only the stored services whose stamp moved,
// forgets the deregistered ones, and serves a service's last good version
// while its current text does not load.
#include "hms/control/service_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hms::control {
namespace {

StoredService Svc(const std::string& name, const std::string& route, const std::string& stamp) {
  return StoredService{name, "service: " + name + "\nroutes:\n  - GET " + route + "\n",
                       name + ".yaml", {}, stamp};
}

std::vector<std::string> Served(const ServiceCache::Loaded& l) {
  std::vector<std::string> out;
  for (const config::ServiceInput& in : l.services) {
    out.push_back(in.config->service + " " + in.config->routes.at(0).path);
  }
  return out;
}

TEST(ServiceCache, ParsesOnlyWhatChanged) {
  ServiceCache cache;
  std::vector<StoredService> store = {Svc("a", "/a", "1"), Svc("b", "/b", "1"), Svc("c", "/c", "1")};
  ServiceCache::Loaded l = cache.Load(store);
  EXPECT_EQ(cache.parsed_total(), 3u);
  EXPECT_EQ(Served(l), (std::vector<std::string>{"a /a", "b /b", "c /c"}));

  l = cache.Load(store);  // nothing moved: nothing parsed
  EXPECT_EQ(cache.parsed_total(), 3u);
  EXPECT_EQ(Served(l), (std::vector<std::string>{"a /a", "b /b", "c /c"}));

  store[1] = Svc("b", "/b2", "2");  // b changed: only b is parsed
  l = cache.Load(store);
  EXPECT_EQ(cache.parsed_total(), 4u);
  EXPECT_EQ(Served(l), (std::vector<std::string>{"a /a", "b /b2", "c /c"}));
}

TEST(ServiceCache, ForgetsWhatIsGoneAndParsesWhatIsNew) {
  ServiceCache cache;
  (void)cache.Load({Svc("a", "/a", "1"), Svc("b", "/b", "1")});
  ServiceCache::Loaded l = cache.Load({Svc("b", "/b", "1"), Svc("d", "/d", "1")});
  EXPECT_EQ(cache.parsed_total(), 3u);  // d only
  EXPECT_EQ(Served(l), (std::vector<std::string>{"b /b", "d /d"}));
  // a came back: it was forgotten, so it is parsed again.
  l = cache.Load({Svc("a", "/a", "1"), Svc("b", "/b", "1"), Svc("d", "/d", "1")});
  EXPECT_EQ(cache.parsed_total(), 4u);
  EXPECT_EQ(Served(l), (std::vector<std::string>{"a /a", "b /b", "d /d"}));
}

TEST(ServiceCache, ABadVersionServesTheLastGoodOneAndIsNotParsedAgain) {
  ServiceCache cache;
  (void)cache.Load({Svc("a", "/a", "1")});
  StoredService bad{"a", "service: a\nroutes: 7\n", "a.yaml", {"127.0.0.1:7001"}, "2"};
  // Kept: the result's endpoints point into the list it was given.
  const std::vector<StoredService> store = {bad};
  ServiceCache::Loaded l = cache.Load(store);
  EXPECT_EQ(cache.parsed_total(), 2u);
  EXPECT_EQ(Served(l), std::vector<std::string>{"a /a"});
  ASSERT_EQ(l.problems.size(), 1u);
  EXPECT_EQ(l.problems[0].rfind("service a: a.yaml:2: ", 0), 0u) << l.problems[0];
  EXPECT_NE(l.problems[0].find("; serving its last good version"), std::string::npos);
  // Today's store endpoints go with the last good file.
  ASSERT_NE(l.services[0].store_endpoints, nullptr);
  EXPECT_EQ(*l.services[0].store_endpoints, std::vector<std::string>{"127.0.0.1:7001"});

  std::vector<StoredService> again = {bad};
  l = cache.Load(again);  // the same bad text: said again, not parsed again
  EXPECT_EQ(cache.parsed_total(), 2u);
  EXPECT_EQ(l.problems.size(), 1u);

  StoredService never{"n", "service: other\nroutes: []\n", "n.yaml", {}, "1"};
  l = cache.Load({bad, never});
  ASSERT_EQ(l.problems.size(), 2u);
  EXPECT_NE(l.problems[1].find("is not the name it is stored under"), std::string::npos);
  EXPECT_NE(l.problems[1].find("; not served"), std::string::npos);
  EXPECT_EQ(Served(l), std::vector<std::string>{"a /a"});
}

TEST(ServiceCache, AStoreWithoutStampsIsParsedEveryTime) {
  ServiceCache cache;
  const std::vector<StoredService> store = {Svc("a", "/a", ""), Svc("b", "/b", "")};
  (void)cache.Load(store);
  (void)cache.Load(store);
  EXPECT_EQ(cache.parsed_total(), 4u);
}

TEST(ServiceCache, AMovedSourceIsParsedAgain) {
  // Errors and routes name the source: a new one makes them differ.
  ServiceCache cache;
  StoredService s = Svc("a", "/a", "1");
  (void)cache.Load({s});
  s.source = "elsewhere/a.yaml";
  ServiceCache::Loaded l = cache.Load({s});
  EXPECT_EQ(cache.parsed_total(), 2u);
  EXPECT_EQ(l.services.at(0).config->source, "elsewhere/a.yaml");
}

}  // namespace
}  // namespace hms::control
