"""Experiments compose data, models, samplers, theory and probes into runs that write results."""
