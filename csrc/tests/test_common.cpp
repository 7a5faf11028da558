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
  // The table (1900..2099) against the calendar arithmetic, every day across both of its edges and beyond.
  for (int32_t z = days_from_civil(1890, 1, 1); z < days_from_civil(2110, 1, 1); ++z) {
    int32_t y, m, d;
    civil_from_days(z, y, m, d);
    if (month_index_of_day(z) != y * 12 + m - 1) {
      CHECK(month_index_of_day(z) == y * 12 + m - 1);
      break;
    }
  }
  CHECK(month_index_of_day(days_from_civil(1899, 12, 31)) == 1899 * 12 + 11);
  CHECK(month_index_of_day(days_from_civil(1900, 1, 1)) == 1900 * 12);
  CHECK(month_index_of_day(days_from_civil(2099, 12, 31)) == 2099 * 12 + 11);
  CHECK(month_index_of_day(days_from_civil(2100, 1, 1)) == 2100 * 12);
  CHECK(splitmix64(0) != splitmix64(1));
  if (failures) std::fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
