"""Expand-and-Cluster (`--method extract`): recover a teacher network's weights from its
input-output behaviour.

teachers (what to imitate), training (N students at once, the `students` layer mode), symmetry
and clustering (one hidden layer's neurons pooled over students), reconstruct (layer by layer,
then fine-tune), recovery (how close the result is to the teacher), report (JSON, table, plots)
and folders (result folders named by their settings); stages runs them as `main_normal.py` stages.
"""
