"""Latency, throughput, cold start and scaling: `docqa bench` writes bench.md and bench.json.

The machine is small and shared, so absolute milliseconds drift from run to run. Every
latency is therefore also given as a ratio to the floor: the bare cost of encoding one
query with the engine's own ONNX encoder, measured in the same run, interleaved with the
measurement it is compared to.

Heavy work that would leave memory or threads behind (the torch reference, the synthetic
index builds, the million-vector search) runs in child processes, and so do the `docqa`
commands whose start-up and peak memory are measured.
"""
