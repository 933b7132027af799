"""Tools built on planning: reference data (reference), the benchmark (bench), MetaSchedule tuning
(tune), TensorRT engines (engine), parser and QNN probes (probe, probe_model, qnn_probe), the CPU
cross-check (cross_check, compare) and the whole-model check (verify_model)."""
