// A test fixture with a file store in a fresh temporary directory, on a fake
// clock (fake_store_clock.h): `store_` is the holder under test's, `reader_`
// another process's view of the same directory. Removed after each test.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "fake_store_clock.h"
#include "hms/control/store.h"

namespace hms::control {

class TempFileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hms-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    root_ = dir;
    Result<std::unique_ptr<Store>> s = OpenFileStore(root_ + "/store", store_clock_);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(s.value());
    Result<std::unique_ptr<Store>> r = OpenFileStore(root_ + "/store", store_clock_);
    ASSERT_TRUE(r);
    reader_ = std::move(r.value());
  }
  void TearDown() override {
    store_.reset();
    reader_.reset();
    std::system(("rm -rf '" + root_ + "'").c_str());
  }

  FakeStoreClock store_clock_;  // the store's leases expire when a test advances it
  std::string root_;
  std::unique_ptr<Store> store_, reader_;
};

}  // namespace hms::control
