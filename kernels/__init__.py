"""Triton kernels (installed as claimsfm.kernels). Imports nothing from claimsfm."""
