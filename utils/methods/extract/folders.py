"""Result folders named by a hash of the settings that matter, so a rerun finds its own results.

Students live in `ec_<hash of teacher and student settings>`; each clustering of them lives in
`clustering_<hash of gamma, beta and fine-tuning settings>` inside it, so re-clustering with
other gamma and beta reuses the trained students.
"""

from __future__ import annotations

import hashlib
import json


def settings_hash(prefix: str, settings: dict) -> str:
    """`prefix_` plus 10 hex characters of BLAKE2b over the settings in sorted-key JSON form."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return f"{prefix}_{hashlib.blake2b(text.encode(), digest_size=5).hexdigest()}"
