"""SupSup (Supermasks in Superposition): one binary supermask per task over fixed random weights."""
