"""Claims ingestion: UKE receipts (C++ parser, Python reference twin), long CSV or MEDS -> MEDS 0.4.

    from claimsfm.ingest import IngestConfig, run
    summary = run(IngestConfig(inputs=[Path("synth_out")], out=Path("data")))
"""
from claimsfm.ingest.pipeline import IngestConfig, run, write_dataset

__all__ = ["IngestConfig", "run", "write_dataset"]
