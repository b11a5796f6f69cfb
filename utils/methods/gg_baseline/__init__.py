"""The GG baselines of SupSup's Figure 3: upper bound, separate heads (trained or random body) and BatchE."""
