// Shared plain-C++ helpers: calendar arithmetic on days since 1970-01-01 (proleptic Gregorian)
// and a 64-bit mixer. No Python, no allocation.
#pragma once
#include <cstdint>

namespace claimsfm {

// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm). m in 1..12, d in 1..31.
int32_t days_from_civil(int32_t y, int32_t m, int32_t d);
// Inverse of days_from_civil.
void civil_from_days(int32_t z, int32_t& y, int32_t& m, int32_t& d);
// Days in month m of year y.
int32_t days_in_month(int32_t y, int32_t m);
// Month index (year*12 + month-1) of a day number; used for visit months and ages in months.
int32_t month_index_of_day(int32_t z);
// splitmix64 finaliser: a cheap, well-mixed hash for deterministic assignment (splits, seeds).
uint64_t splitmix64(uint64_t x);

}  // namespace claimsfm
