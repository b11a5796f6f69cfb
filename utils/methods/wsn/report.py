"""WSN's report (`tools.report --checkpoints wsn`): R[i][j] from the checkpoint saved after task j, the metrics, and
the storage of the last checkpoint against one plain network per task. Storage counts what answering every task
needs: the weights, every task's packed mask bits, batch-norms and heads; the scores (one float per weight, the
training state the next task continues from) are left out, and the masks' compressed sizes are given beside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from unforget.utils.methods import matrices
from unforget.utils.methods.layout import ReportInputs
from unforget.utils.methods.sequences import sequence_summary, write_metrics
from unforget.utils.methods.wsn.costs import mask_cost

if TYPE_CHECKING:
    from unforget.models.network import TaskNetwork

TRAINING_STATE = ".weights.scores"


def answering_bytes(state: dict) -> int:
    """Bytes of a checkpoint's tensors that answering its tasks needs (all but the scores)."""
    return matrices.state_bytes({name: tensor for name, tensor in state.items() if not name.endswith(TRAINING_STATE)})


def summarise(inputs: ReportInputs) -> dict:
    data = matrices.task_data(inputs.names, inputs.benchmark, inputs.data_root, inputs.device)
    kept: list[tuple[dict, TaskNetwork]] = []
    matrix = matrices.accuracy_matrix(inputs.folders, inputs.names, data, inputs.device,
                                      lambda payload, network: kept.append((payload, network)))
    payload, network = kept[-1]
    cost = matrices.storage(answering_bytes(payload["model"]), payload["arch"], payload["tasks"],
                            **matrices.arch_options(payload, inputs.folders[-1]))
    return sequence_summary(inputs, matrix, {**cost, **mask_cost(network)})


def write(root: Path, summary: dict) -> None:
    """metrics.json, the heatmap and the metrics line, then the storage in words."""
    write_metrics(root, summary)
    cost = summary["capacity"]
    print(f"storage {cost['model_bytes']} bytes, {cost['model_vs_independent']} of one network per task; masks "
          f"{cost['mask_bytes']} bytes packed ({cost['mask_bits_per_weight_per_task']} bit per weight per task), "
          f"N-bit code {cost['mask_huffman_bytes']} bytes Huffman-coded (entropy bound "
          f"{cost['mask_entropy_bytes']}); {cost['used_fraction']:.2%} of the weights used")
