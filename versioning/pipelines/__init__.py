"""The pipelines domain: Pachyderm-style pipelines over loxo repos.

So far only the pipeline spec (`spec.py`: parsing and validation of a
Pachyderm-compatible subset) and the DAG check among pipelines (`dag.py`)
exist; pure code, no database and no HTTP.
"""
