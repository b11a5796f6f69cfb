"""Neural-network subspaces: a line, curve or simplex of networks learned in one training run."""
