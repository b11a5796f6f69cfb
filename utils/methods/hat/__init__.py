"""HAT, Hard Attention to the Task (Serra et al., ICML 2018): per-task unit attention over one shared network,
whose gradients are conditioned on what earlier tasks attend to. The layer mode is models/layers/hat.py;
here are its settings, the training hooks (annealing, gradient conditioning and compensation, the sparsity
regulariser, the paper's learning-rate schedule) and the one stage that learns a task."""
