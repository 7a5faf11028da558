"""Task files: parse and validate the TOML format of design.md §3.5, and the prediction-time grid.

A task file has top-level `name`, `kind` (incidence | medication), `group`, `description`,
`target` (code prefixes, matched against a code or any of its parent codes), and tables
`[window]` (prediction_months, observation_months), `[cohort]` (washout = ever | new_user | none,
washout_months, min_age, min_history_months, active_months) and `[prediction_times]`
(every_months). Times are month ends; month indices are `year * 12 + (month - 1)`.
"""
from __future__ import annotations

import calendar
import datetime as dt
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from claimsfm.errors import ClaimsfmError

KINDS = ("incidence", "medication")
WASHOUTS = ("ever", "new_user", "none")
GROUPS = {"disease": "incidence", "medication": "medication"}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str
    group: str
    description: str
    target: tuple[str, ...]
    prediction_months: int
    observation_months: int
    washout: str
    washout_months: int
    min_age: int
    min_history_months: int
    active_months: int
    every_months: int
    path: str


def _get(table: dict, key: str, typ, path, default=None):
    if key not in table:
        if default is None:
            raise ClaimsfmError(f"{path}: missing key '{key}'")
        return default
    value = table[key]
    if not isinstance(value, typ) or isinstance(value, bool) and typ is int:
        raise ClaimsfmError(f"{path}: '{key}' must be {typ.__name__}, got {value!r}")
    return value


def parse_task(text: str, path: str) -> TaskSpec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimsfmError(f"{path}: invalid TOML: {exc}") from None
    window, cohort, times = raw.get("window", {}), raw.get("cohort", {}), raw.get("prediction_times", {})
    kind = _get(raw, "kind", str, path)
    if kind not in KINDS:
        raise ClaimsfmError(f"{path}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    target = _get(raw, "target", list, path)
    if not target or not all(isinstance(t, str) and t for t in target):
        raise ClaimsfmError(f"{path}: target must be a non-empty list of code prefixes")
    washout = _get(cohort, "washout", str, path, "ever" if kind == "incidence" else "none")
    if washout not in WASHOUTS:
        raise ClaimsfmError(f"{path}: washout must be one of {', '.join(WASHOUTS)}, got {washout!r}")
    spec = TaskSpec(
        name=_get(raw, "name", str, path),
        kind=kind,
        group=_get(raw, "group", str, path, "disease" if kind == "incidence" else "medication"),
        description=_get(raw, "description", str, path, ""),
        target=tuple(target),
        prediction_months=_get(window, "prediction_months", int, path),
        observation_months=_get(window, "observation_months", int, path, 0),
        washout=washout,
        washout_months=_get(cohort, "washout_months", int, path, 12),
        min_age=_get(cohort, "min_age", int, path, 0),
        min_history_months=_get(cohort, "min_history_months", int, path, 0),
        active_months=_get(cohort, "active_months", int, path, 0),
        every_months=_get(times, "every_months", int, path, 12),
        path=str(path),
    )
    for key in ("prediction_months", "every_months"):
        if getattr(spec, key) < 1:
            raise ClaimsfmError(f"{path}: {key} must be >= 1")
    return spec


def _builtin_dir():
    return resources.files("claimsfm.tasks") / "builtin"


def builtin_task_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_task(name_or_path: str) -> TaskSpec:
    """A built-in task by name, or a task file by path."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ClaimsfmError(f"{path}: task file not found")
        return parse_task(path.read_text(encoding="utf-8"), str(path))
    entry = _builtin_dir() / f"{name_or_path}.toml"
    if not entry.is_file():
        known = ", ".join(builtin_task_names())
        raise ClaimsfmError(f"unknown task '{name_or_path}'; known tasks: {known} (or groups: all, disease, medication)")
    return parse_task(entry.read_text(encoding="utf-8"), f"claimsfm/tasks/builtin/{name_or_path}.toml")


def select_tasks(selector: str, task_files: list[str] | None = None) -> list[TaskSpec]:
    """`all`, `disease`, `medication`, a comma list of names, plus any extra task files."""
    names = builtin_task_names()
    specs: list[TaskSpec] = []
    for part in [p.strip() for p in selector.split(",") if p.strip()]:
        if part == "all":
            specs += [load_task(n) for n in names]
        elif part in GROUPS:
            specs += [s for s in (load_task(n) for n in names) if s.kind == GROUPS[part]]
        else:
            specs.append(load_task(part))
    specs += [load_task(p) for p in task_files or []]
    seen, unique = set(), []
    for s in specs:
        if s.name not in seen:
            seen.add(s.name)
            unique.append(s)
    if not unique:
        raise ClaimsfmError(f"--task '{selector}' selects no task")
    return unique


def month_index(year: int, month: int) -> int:
    return year * 12 + (month - 1)


def month_end(index: int) -> dt.date:
    year, month0 = divmod(index, 12)
    return dt.date(year, month0 + 1, calendar.monthrange(year, month0 + 1)[1])


def prediction_time(index: int) -> dt.datetime:
    """The prediction time of month `index`: the last second of its last day.

    Inputs are events on or before that day; labels are events after it.
    """
    return dt.datetime.combine(month_end(index), dt.time(23, 59, 59))


def prediction_months(spec: TaskSpec, first_month: int, last_month: int) -> list[int]:
    """Month indices of the prediction times for data covering [first_month, last_month].

    The grid is counted back from the last month whose whole prediction window lies inside the
    data, every `every_months`, down to the first month that leaves `min_history_months` of
    history. Both the generator's ground truth and the task engine use this one grid.
    """
    latest = last_month - spec.prediction_months
    earliest = first_month + spec.min_history_months
    return sorted(range(latest, earliest - 1, -spec.every_months))
