"""Plain ML logic, no Dagster, no I/O: datasets, metrics, the gate, drift statistics,
replay, live metrics."""
