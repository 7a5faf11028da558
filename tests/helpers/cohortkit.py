"""Small task specs and the loop-per-row cohort reference, for the tasks tests and benchmarks/evaluate.py."""
import datetime as dt

from claimsfm.data.format import FLAG_SUSPECTED, month_end_day
from claimsfm.tasks.cohort import age_years
from claimsfm.tasks.spec import parse_task, prediction_months


def incidence(min_age=40, washout="ever", history=12, active=12):
    return parse_task(f"""name = "t2d_test"\nkind = "incidence"\ntarget = ["ICD10//E11"]
[window]\nprediction_months = 12\n[cohort]\nwashout = "{washout}"\nmin_age = {min_age}
min_history_months = {history}\nactive_months = {active}\n[prediction_times]\nevery_months = 12\n""", "t.toml")


def medication(washout="new_user"):
    return parse_task(f"""name = "statin_test"\nkind = "medication"\ntarget = ["YJ//2189"]
[window]\nprediction_months = 3\n[cohort]\nwashout = "{washout}"\nwashout_months = 12
min_history_months = 12\nactive_months = 12\n[prediction_times]\nevery_months = 6\n""", "m.toml")


def rows(cohort):
    return {(int(s), int(m)): bool(y) for s, m, y in zip(cohort.subject_id, cohort.t_month, cohort.label)}


def reference_cohort(store, spec) -> dict:
    """{(subject_id, t_month): label}, one row at a time, straight from the rules in docs/internals.md
    (the slow twin of claimsfm.tasks.cohort.build_cohort)."""
    out = {}
    for t in prediction_months(spec, store.first_month, store.last_month):
        t_day, end = int(month_end_day(t)), int(month_end_day(t + spec.prediction_months))
        match = store.match_codes(list(spec.target))
        for i in range(store.n_subjects):
            ev = range(store.offsets[i], store.offsets[i + 1])
            days = [int(store.day[k]) for k in ev]
            tgt = [int(store.day[k]) for k in ev if match[store.code[k]]
                   and (spec.kind == "medication" or not store.flags[k] & FLAG_SUSPECTED)]
            if not days or days[0] > t_day:
                continue
            first_m = dt.date(1970, 1, 1) + dt.timedelta(days=days[0])
            if first_m.year * 12 + first_m.month - 1 > t - spec.min_history_months:
                continue
            lo = int(month_end_day(t - spec.active_months))
            if spec.active_months and not any(lo < d <= t_day for d in days):
                continue
            if 0 <= store.death_day[i] <= t_day:
                continue
            if int(age_years(store.birth_day[i:i + 1], [t_day])[0]) < spec.min_age:
                continue
            if spec.washout == "ever" and any(d <= t_day for d in tgt):
                continue
            wlo = int(month_end_day(t - spec.washout_months))
            if spec.washout == "new_user" and any(wlo < d <= t_day for d in tgt):
                continue
            out[(int(store.subject_ids[i]), t)] = any(t_day < d <= end for d in tgt)
    return out
