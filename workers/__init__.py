"""Workers: the programs that run pipeline datums, on any machine.

A worker reaches loxo only over HTTP: it leases datums and reports outcomes
through the control API (`gateway.client`), and moves inputs and outputs
through the S3 API (boto3). It imports nothing of the server, so it runs next
to it (`loxo serve` starts some, see `workers.local`) or anywhere else
(`python -m workers --endpoint URL`, `loxo worker`). The contract is
docs/design/jobs.md.

- `workers.lease`: the lease document, parsed.
- `workers.runner`: one attempt of one datum, in a scratch folder.
- `workers.worker`: the loop that leases, runs, heartbeats and reports.
- `workers.local`: worker processes supervised by the server's host.
"""
