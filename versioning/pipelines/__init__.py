"""The pipelines domain: Pachyderm-style pipelines over loxo repos.

So far, pure code (no database, no HTTP):
- spec.py: parsing and validation of a Pachyderm-compatible spec subset;
- dag.py: the DAG check among pipelines (missing repos, collisions, cycles);
- globs.py: Pachyderm glob semantics over object keys;
- datums.py: datum sets (pfs, cross, union, join, group), datum ids and job plans.
Jobs, workers and provenance come next (issue 12).
"""
