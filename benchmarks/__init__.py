"""Scale benchmarks (run as modules: `python -m benchmarks.profile_scale`)."""
