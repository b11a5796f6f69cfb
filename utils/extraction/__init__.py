"""Expand-and-Cluster: recover a teacher network's weights from its input-output behaviour.

teachers (what to imitate), training (N students at once), symmetry and clustering (one
hidden layer's neurons pooled over students), reconstruct (layer by layer, then fine-tune),
recovery (how close the result is to the teacher) and report (JSON, table, plots). Each is
plain functions on arrays or small modules, so they test without training.
"""
