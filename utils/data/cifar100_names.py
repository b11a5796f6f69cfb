"""CIFAR-100 names: the 20 superclasses (the tasks, in coarse-label order) and their fine classes.

One table, torch-free, so the registry can list tasks without importing torch and
both data layouts map labels the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

# Superclass -> its five fine classes, alphabetical; superclasses in official coarse-label order.
SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}

TASK_NAMES: tuple[str, ...] = tuple(SUPERCLASSES)

# Official fine-label ids are the alphabetical order of the 100 fine names (apple=0 ... worm=99).
FINE_NAMES: tuple[str, ...] = tuple(sorted(name for names in SUPERCLASSES.values() for name in names))

BASELINE_FILE = Path(__file__).resolve().parents[2] / "baseline_acc.json"


def baseline_goals(path: Path = BASELINE_FILE) -> dict[str, float]:
    """Per-task accuracy goals from the repository's baseline file; empty if it is absent, so the
    registry still imports and a run asks for --baseline_acc_file instead."""
    try:
        goals = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return {name: float(goals[name]) for name in TASK_NAMES if name in goals}
