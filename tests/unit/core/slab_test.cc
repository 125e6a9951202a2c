#include "hms/core/slab.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace hms::core {
namespace {

struct Obj {
  uint64_t value = 0;
  char pad[40] = {};
};

TEST(Slab, AddressesStayPutWhileTheSlabGrows) {
  Slab<Obj, 4> slab;
  EXPECT_EQ(slab.capacity(), 0u);
  std::vector<uint32_t> slots;
  std::vector<Obj*> addrs;
  for (uint32_t i = 0; i < 4; ++i) {
    const uint32_t s = slab.Alloc();
    slab[s].value = 100 + i;
    slots.push_back(s);
    addrs.push_back(&slab[s]);
  }
  EXPECT_EQ(slab.capacity(), 4u);
  for (uint32_t i = 0; i < 200; ++i) slab[slab.Alloc()].value = 7;  // many chunks later
  EXPECT_EQ(slab.capacity(), 204u);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(&slab[slots[i]], addrs[i]);
    EXPECT_EQ(slab[slots[i]].value, 100 + i);
  }
  const Slab<Obj, 4>& cslab = slab;
  EXPECT_EQ(&cslab[slots[2]], addrs[2]);
}

TEST(Slab, SlotsAreDistinctAndInRange) {
  Slab<Obj, 16> slab;
  std::set<uint32_t> seen;
  std::set<Obj*> objs;
  for (int i = 0; i < 1000; ++i) {
    const uint32_t s = slab.Alloc();
    EXPECT_LT(s, slab.capacity());
    EXPECT_TRUE(seen.insert(s).second) << "slot " << s << " handed out twice";
    EXPECT_TRUE(objs.insert(&slab[s]).second);
  }
  EXPECT_EQ(slab.live(), 1000u);
}

TEST(Slab, FreedSlotsAreReusedBeforeGrowing) {
  Slab<Obj, 8> slab;
  std::vector<uint32_t> slots;
  for (int i = 0; i < 8; ++i) slots.push_back(slab.Alloc());
  EXPECT_EQ(slab.live(), 8u);
  EXPECT_EQ(slab.capacity(), 8u);
  slab.Free(slots[3]);
  slab.Free(slots[5]);
  EXPECT_EQ(slab.live(), 6u);
  // Most recently freed first: its memory is still warm.
  EXPECT_EQ(slab.Alloc(), slots[5]);
  EXPECT_EQ(slab.Alloc(), slots[3]);
  EXPECT_EQ(slab.live(), 8u);
  EXPECT_EQ(slab.capacity(), 8u);  // no growth while free slots remain
  const uint32_t grown = slab.Alloc();
  EXPECT_EQ(slab.capacity(), 16u);
  EXPECT_GE(grown, 8u);
  EXPECT_EQ(slab.live(), 9u);

  // Steady churn never grows the slab.
  for (int round = 0; round < 1000; ++round) {
    const uint32_t a = slab.Alloc();
    const uint32_t b = slab.Alloc();
    slab.Free(a);
    slab.Free(b);
  }
  EXPECT_EQ(slab.capacity(), 16u);
  EXPECT_EQ(slab.live(), 9u);
  for (uint32_t s : slots) slab.Free(s);
  slab.Free(grown);
  EXPECT_EQ(slab.live(), 0u);
}

}  // namespace
}  // namespace hms::core
