"""The LightGBM baseline: sparse count / recency features from the token store (no torch here)."""
