"""Tools around the generated plugins: reference data, benchmark (and, after the split, tune, engine, probe)."""
