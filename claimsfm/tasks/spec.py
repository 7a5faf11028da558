"""Task files: parse and validate the TOML format of design.md §3.5, and the prediction-time grid.

A task file has top-level `name`, `kind` (incidence | medication), `group`, `description`,
`target` (code prefixes, matched against a code or any of its parent codes), and tables
`[window]` (prediction_months, observation_months), `[cohort]` (washout = ever | new_user | none,
washout_months, min_age, min_history_months, active_months) and `[prediction_times]`
(every_months). Times are month ends; month indices are `year * 12 + (month - 1)`.
Unknown keys, values out of range (`RANGES`) and a `name` that is not a safe file name
(`claimsfm.outdir.check_name`: it becomes predictions/<name>/) are one-line errors naming the file and key.
"""
from __future__ import annotations

import calendar
import datetime as dt
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from claimsfm.errors import ClaimsfmError, os_error
from claimsfm.outdir import check_name

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


# Every key a task file may hold, per table ("" = top level); anything else is a typo the file must not hide.
KEYS = {
    "": ("name", "kind", "group", "description", "target", "window", "cohort", "prediction_times"),
    "window": ("prediction_months", "observation_months"),
    "cohort": ("washout", "washout_months", "min_age", "min_history_months", "active_months"),
    "prediction_times": ("every_months",),
}
MAX_MONTHS = 1200  # a century: longer windows or histories are a typo, not a study design
# integer key -> (its table, smallest, largest allowed value)
RANGES = {
    "prediction_months": ("window", 1, MAX_MONTHS), "observation_months": ("window", 0, MAX_MONTHS),
    "washout_months": ("cohort", 0, MAX_MONTHS), "min_age": ("cohort", 0, 150),
    "min_history_months": ("cohort", 0, MAX_MONTHS), "active_months": ("cohort", 0, MAX_MONTHS),
    "every_months": ("prediction_times", 1, MAX_MONTHS),
}


def _where(table: str, key: str) -> str:
    return f"[{table}] {key}" if table else key


def _get(raw: dict, table: str, key: str, typ, path, default=None):
    section = raw.get(table, {}) if table else raw
    if key not in section:
        if default is None:
            raise ClaimsfmError(f"{path}: missing key '{_where(table, key)}'")
        return default
    value = section[key]
    if not isinstance(value, typ) or isinstance(value, bool) and typ is int:
        raise ClaimsfmError(f"{path}: '{_where(table, key)}' must be {typ.__name__}, got {value!r}")
    if typ is int:
        low, high = RANGES[key][1:]
        if not low <= value <= high:
            raise ClaimsfmError(f"{path}: '{_where(table, key)}' must be between {low} and {high}, got {value}")
    return value


def _check_keys(raw: dict, path) -> None:
    for table, keys in KEYS.items():
        section = raw.get(table, {}) if table else raw
        if not isinstance(section, dict):
            raise ClaimsfmError(f"{path}: '{table}' must be a table ([{table}]), got {section!r}")
        unknown = [k for k in section if k not in keys]
        if unknown:
            raise ClaimsfmError(f"{path}: unknown key '{_where(table, unknown[0])}' "
                                f"(known{' in [' + table + ']' if table else ''}: {', '.join(keys)})")


def _int(raw: dict, key: str, path, default=None) -> int:
    return _get(raw, RANGES[key][0], key, int, path, default)


def parse_task(text: str, path: str) -> TaskSpec:
    """A TaskSpec from the TOML text of a task file; a one-line error naming `path` and the key otherwise."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimsfmError(f"{path}: invalid TOML: {' '.join(str(exc).split())}") from None
    _check_keys(raw, path)
    kind = _get(raw, "", "kind", str, path)
    if kind not in KINDS:
        raise ClaimsfmError(f"{path}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    target = _get(raw, "", "target", list, path)
    if not target or not all(isinstance(t, str) and t for t in target):
        raise ClaimsfmError(f"{path}: target must be a non-empty list of code prefixes")
    washout = _get(raw, "cohort", "washout", str, path, "ever" if kind == "incidence" else "none")
    if washout not in WASHOUTS:
        raise ClaimsfmError(f"{path}: washout must be one of {', '.join(WASHOUTS)}, got {washout!r}")
    # The name becomes a folder (predictions/<name>/): never a path of its own.
    name = check_name(_get(raw, "", "name", str, path), f"{path}: name")
    return TaskSpec(
        name=name,
        kind=kind,
        group=_get(raw, "", "group", str, path, "disease" if kind == "incidence" else "medication"),
        description=_get(raw, "", "description", str, path, ""),
        target=tuple(target),
        prediction_months=_int(raw, "prediction_months", path),
        observation_months=_int(raw, "observation_months", path, 0),
        washout=washout,
        washout_months=_int(raw, "washout_months", path, 12),
        min_age=_int(raw, "min_age", path, 0),
        min_history_months=_int(raw, "min_history_months", path, 0),
        active_months=_int(raw, "active_months", path, 0),
        every_months=_int(raw, "every_months", path, 12),
        path=str(path),
    )


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
        return parse_task(_read_text(path), str(path))
    entry = _builtin_dir() / f"{name_or_path}.toml"
    if not entry.is_file():
        known = ", ".join(builtin_task_names())
        raise ClaimsfmError(f"unknown task '{name_or_path}'; known tasks: {known} "
                            "(or groups: all, disease, medication)")
    return parse_task(entry.read_text(encoding="utf-8"), f"claimsfm/tasks/builtin/{name_or_path}.toml")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise os_error(exc, "cannot read the task file") from None
    except UnicodeDecodeError as exc:
        raise ClaimsfmError(f"{path}: not UTF-8 text (byte {exc.start}); save the task file as UTF-8") from None


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
