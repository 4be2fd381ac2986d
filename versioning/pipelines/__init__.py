"""Pipelines: specs, datums, jobs and provenance (the domain side)."""
