"""Test helpers, the one place for them: hand-built MEDS datasets and stores, task specs, results.

Importable as `helpers.<module>` because pyproject.toml puts `tests/` on pytest's `pythonpath`;
test modules import from here, never from each other.
- `medskit`: MEDS datasets from subject dicts (`write_meds`, the one MEDS writer), `random_subjects`, `day`.
- `storekit`: `ListStore`, an in-memory token store from plain records, and `write_records` (the same
  records as MEDS, through `medskit.write_meds`); `planted_records`.
- `cohortkit`: small task specs and the loop-per-row cohort reference.
- `reportkit`: a hand-made sweep `results.json`.
- `ukecheck`: an independent reader of UKE files for the synth tests.
- `medstools`: the MEDS ecosystem tests' tools (MEDS CLIs, `write_meds_rows` for foreign MEDS, prediction checks).
"""
