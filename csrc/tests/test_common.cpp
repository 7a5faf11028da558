// Plain C++ checks of the calendar helpers (run by CTest, also under ASan/UBSan).
#include <cstdio>
#include <cstdlib>

#include "common.hpp"

#include "check.hpp"

using namespace claimsfm;

int main() {
  CHECK(days_from_civil(1970, 1, 1) == 0);
  CHECK(days_from_civil(2000, 3, 1) == 11017);
  CHECK(days_in_month(2024, 2) == 29 && days_in_month(1900, 2) == 28 && days_in_month(2000, 2) == 29);
  for (int32_t z = -800000; z < 800000; z += 37) {
    int32_t y, m, d;
    civil_from_days(z, y, m, d);
    CHECK(days_from_civil(y, m, d) == z);
  }
  CHECK(month_index_of_day(days_from_civil(2024, 5, 31)) == 2024 * 12 + 4);
  CHECK(splitmix64(0) != splitmix64(1));
  if (failures) std::fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
