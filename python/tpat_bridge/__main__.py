"""`python -m tpat_bridge`: the bridge's entry (bridge/dispatch.py). The Swift tool checks that this
file exists (Sources/TPATCore/Bridge/PythonBridge.swift)."""

import sys

from tpat_bridge.bridge.dispatch import main

if __name__ == "__main__":
    sys.exit(main())
