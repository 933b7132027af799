"""TPAT's Python side: the bridge the Swift tool runs (`python -m tpat_bridge`), the planner, TPAT's own
lowerings and the tools around them. Layers, one way: bridge -> tools -> planning -> lowerings ->
errors / dtypes / node (tests/python/test_package_layout.py)."""
