"""`make bench`: side-by-side benchmarks of the gateway, model server, batching, footprint and registry.

wrk (Debian) generates the HTTP load; process CPU comes from /proc accounting; the in-process
SavedModel baseline runs in its own process (`python -m model.bench`), so nothing here imports
TensorFlow.
"""
