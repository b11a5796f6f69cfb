"""The continual-learning metrics, for the tools: they live in utils/metrics.py, below the methods' reports."""

from __future__ import annotations

from utils.metrics import Matrix as Matrix
from utils.metrics import average_accuracy as average_accuracy
from utils.metrics import backward_transfer as backward_transfer
from utils.metrics import forgetting as forgetting
from utils.metrics import forward_transfer as forward_transfer
from utils.metrics import metrics as metrics
from utils.metrics import write_matrix_csv as write_matrix_csv
