"""The bridge's entry: `python -m tpat_bridge` reads one JSON request, dispatches it by the command table
(dispatch.py) and answers; schema_check validates against schemas/, versions reports the engines."""
