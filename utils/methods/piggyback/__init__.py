"""Piggyback (Mallya et al. 2018), CPG's ancestor: a frozen backbone and one learned binary mask per
task over it; no weight training after the first task, no pruning, no growth."""
