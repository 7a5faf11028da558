"""The synthetic Japanese claims cohort behind `claimsfm synth` (design: docs synthetic-data.md §4).

Modules, in the order data flows: streams (per-patient random streams), population (T1),
hospitals (T2), diseases + links (T3/T4), prescribing (T5), simulate (the month loop),
observation (T6: what a receipt shows), uke (the writer), masters (code tables), truth + oracle
(labels, oracles, hazards), run (config, synth.json).
"""
