"""The `claimsfm` command line (installed as claimsfm.cli). Nothing imports this package."""
