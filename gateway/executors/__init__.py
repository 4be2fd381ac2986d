"""Executors: what runs pipeline workers for a gateway (docs/design/executors.md).

`local` (the default) is `workers.local.LocalWorkers`: `loxo worker`
processes on the gateway's machine. `kubernetes` (`kubernetes.py`) is a
reconcile loop that keeps one Kubernetes `batch/v1` Job per active loxo job;
`manifests.py` builds that Job from the pipeline spec. Both reach loxo only
through its control API over HTTP, as workers on other machines do.
"""
