"""The Python API in a few lines (docs/python.md): CPG on the embedded split_digits through its driver, with the
quickstart's settings (or the run folder given as the argument); its tasks; task 1's test accuracy recomputed
through the API beside the run's own record. The environment overrides settings as for the drivers."""

import os
import sys

import torch

from unforget import api

QUICKSTART = {"DEVICE": "cpu", "BATCH_SIZE": "16", "FINETUNE_EPOCHS": "15", "PRUNE_EPOCHS": "4",
              "RETRAIN_EPOCHS": "5", "PRUNING_INTERVAL": "2", "PRUNING_FREQUENCY": "3"}
if len(sys.argv) > 1:
    run = api.open_run(sys.argv[1])
else:  # data under DATA_ROOT, else the checkout's data/ (the embedded digits need no download)
    settings = {name: os.environ.get(name, value) for name, value in QUICKSTART.items()}
    done = api.run_driver("cpg.sh", "split_digits", "python_api", "1.5", env=settings)
    if done.code != 0:
        sys.exit(f"cpg.sh ended with {done.code} ({done.state})")
    run = api.open_run(done.runs[-1])

for task in run.tasks:
    print(f"{task.name}: classes {', '.join(task.classes or ())}, images {task.image_shape}, "
          f"train {task.train} (validation {task.validation}), test {task.test}")
images, labels = api.load_benchmark(run.benchmark, run.data_root).split(1, "test")  # raw uint8 images
model = run.network(1)  # task 1, its normalisation included
with torch.no_grad():
    accuracy = (model(images).argmax(1) == labels).float().mean().item()
print(f"task 1 test accuracy: recomputed {accuracy:.4f}, recorded {run.accuracy_final[0]:.4f}")
