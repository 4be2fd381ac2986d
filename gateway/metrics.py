"""Metrics: one server's Prometheus registry, what feeds it, and its text.

Every metric lives in a registry of this server's own (not
prometheus_client's global one), so several servers in one process (tests)
never share or clash. Three kinds of source feed it:

- events counted as they happen: requests (gateway/access.py hands each
  access record here), chunk-store calls (gateway/metered_store.py), gc runs;
- counters the domain keeps and this reads when scraped: commits and commit
  conflicts (versioning.committer.Committer);
- database counts read when scraped (versioning.pipelines.stats): jobs and
  datums by state, workers at work, and the datums that ended since the last
  scrape (their durations go into a histogram). These are read at most once
  per REFRESH_SECONDS however often the endpoint is asked.

Labels are bounded sets (S3 actions, control-API operations, status codes,
states, pipeline names); bucket names, keys and access keys are never labels:
they belong to the access log. docs/operations.md lists every metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from gateway.access import AccessRecord
from versioning.clock import now_us
from versioning.committer import Committer
from versioning.pipelines.stats import PipelineCounts, PipelineStats

log = logging.getLogger("loxo.metrics")

# Database counts are read at most this often (a scrape storm reads them once).
REFRESH_SECONDS = 1.0
REQUEST_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
DATUM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
GC_BUCKETS = (0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
UNKNOWN = "unknown"


class Metrics:
    def __init__(self, version: str = "", local_workers: int = 0) -> None:
        # No `_created` series beside every counter and histogram: they double
        # the scrape's size and Prometheus ignores them in the text format.
        # (A process-wide switch: this process serves one loxo.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        info = Gauge(
            "loxo_build_info", "Always 1; the loxo version as a label", ["version"], registry=r
        )
        info.labels(version or UNKNOWN).set(1)
        Gauge(
            "loxo_local_workers",
            "Pipeline workers this server started itself (--workers)",
            registry=r,
        ).set(local_workers)
        # -- requests ----------------------------------------------------------------
        by_action = ["api", "action", "status"]
        self.requests = Counter(
            "loxo_requests",
            "HTTP requests answered, by API (s3, control, loxo), S3 action or control-API "
            "operation, and status code",
            by_action,
            registry=r,
        )
        self.request_seconds = Histogram(
            "loxo_request_duration_seconds",
            "Time from a request's arrival to the last byte of its answer",
            by_action,
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "loxo_request_received_bytes",
            "Request body bytes received (as on the wire: aws-chunked framing included)",
            ["api", "action"],
            registry=r,
        )
        self.sent = Counter(
            "loxo_request_sent_bytes",
            "Response body bytes sent",
            ["api", "action"],
            registry=r,
        )
        # -- the chunk store -----------------------------------------------------------
        self.store_ops = Counter(
            "loxo_chunk_store_operations",
            "Chunk-store calls, by operation (put, put_many, get, has, delete, iter_ids)",
            ["op"],
            registry=r,
        )
        self.store_errors = Counter(
            "loxo_chunk_store_errors",
            "Chunk-store calls that failed, by operation",
            ["op"],
            registry=r,
        )
        self.store_seconds = Histogram(
            "loxo_chunk_store_operation_duration_seconds",
            "Time a chunk-store call took, by operation",
            ["op"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.chunk_writes = Counter(
            "loxo_chunk_writes",
            "Chunks given to the store to write: new (stored now) or deduplicated (already stored)",
            ["result"],
            registry=r,
        )
        self.chunk_write_bytes = Counter(
            "loxo_chunk_write_bytes",
            "Plain bytes of the chunks given to the store to write: new or deduplicated",
            ["result"],
            registry=r,
        )
        self.chunk_read_bytes = Counter(
            "loxo_chunk_read_bytes", "Plain bytes of the chunks read from the store", registry=r
        )
        # -- garbage collection ------------------------------------------------------
        self.gc_runs = Counter(
            "loxo_gc_runs",
            "Background garbage collection passes, by result (success, failure)",
            ["result"],
            registry=r,
        )
        self.gc_freed = Counter(
            "loxo_gc_freed",
            "What garbage collection deleted, by kind (commits, nodes, contents, chunks)",
            ["kind"],
            registry=r,
        )
        self.gc_freed_bytes = Counter(
            "loxo_gc_freed_bytes",
            "Plain bytes of the chunks garbage collection deleted",
            registry=r,
        )
        self.gc_seconds = Histogram(
            "loxo_gc_duration_seconds",
            "Time a garbage collection pass took",
            buckets=GC_BUCKETS,
            registry=r,
        )
        self.gc_last_success = Gauge(
            "loxo_gc_last_success_timestamp_seconds",
            "When the last successful garbage collection pass ended (Unix time)",
            registry=r,
        )
        # -- pipelines -----------------------------------------------------------------
        self.datum_seconds = Histogram(
            "loxo_datum_duration_seconds",
            "Wall time of a datum's last attempt (lease to outcome), for datums that ended "
            "(success, failed, recovered) since this server started",
            ["state"],
            buckets=DATUM_BUCKETS,
            registry=r,
        )
        self.datum_phase_seconds = Counter(
            "loxo_datum_phase_seconds",
            "Seconds ended datums spent, by phase: wait (queued until first leased), and "
            "download, process, upload as their workers report",
            ["phase"],
            registry=r,
        )
        for op in ("put", "put_many", "get", "has", "delete", "iter_ids"):
            self.store_ops.labels(op)
            self.store_errors.labels(op)
        for result in ("new", "deduplicated"):
            self.chunk_writes.labels(result)
            self.chunk_write_bytes.labels(result)
        for result in ("success", "failure"):
            self.gc_runs.labels(result)
        # Plain sums for the dedup ratio (reading a Counter back is not its API).
        self._offered_bytes = 0
        self._new_bytes = 0
        self.committer: Committer | None = None
        self.pipeline_stats: PipelineStats | None = None
        self.counts: PipelineCounts | None = None
        self.database_up = 1.0
        self._refreshed = 0.0
        self._refreshing = asyncio.Lock()
        self._datums_after = now_us()  # durations of datums ending after this
        r.register(_DomainCollector(self))

    # -- feeds --------------------------------------------------------------------------

    def request(self, record: AccessRecord) -> None:
        """An access record (gateway/access.py calls this for every request)."""
        action = record.action or UNKNOWN
        status = str(record.status)
        self.requests.labels(record.api, action, status).inc()
        self.request_seconds.labels(record.api, action, status).observe(record.seconds)
        if record.bytes_in:
            self.received.labels(record.api, action).inc(record.bytes_in)
        if record.bytes_out:
            self.sent.labels(record.api, action).inc(record.bytes_out)

    def store_call(self, op: str, seconds: float) -> None:
        self.store_ops.labels(op).inc()
        self.store_seconds.labels(op).observe(seconds)

    def store_error(self, op: str) -> None:
        self.store_errors.labels(op).inc()

    def chunks_written(self, chunks: int, chunk_bytes: int, new: int, new_bytes: int) -> None:
        self.chunk_writes.labels("new").inc(new)
        self.chunk_writes.labels("deduplicated").inc(chunks - new)
        self.chunk_write_bytes.labels("new").inc(new_bytes)
        self.chunk_write_bytes.labels("deduplicated").inc(chunk_bytes - new_bytes)
        self._offered_bytes += chunk_bytes
        self._new_bytes += new_bytes

    def chunk_read(self, size: int) -> None:
        self.chunk_read_bytes.inc(size)

    def gc_run(self, seconds: float, freed: dict[str, int] | None, freed_bytes: int = 0) -> None:
        """A background gc pass: what it freed, or None when it failed."""
        self.gc_seconds.observe(seconds)
        if freed is None:
            self.gc_runs.labels("failure").inc()
            return
        self.gc_runs.labels("success").inc()
        for kind, count in freed.items():
            self.gc_freed.labels(kind).inc(count)
        self.gc_freed_bytes.inc(freed_bytes)
        self.gc_last_success.set(time.time())

    def dedup_ratio(self) -> float:
        """Chunk bytes written per byte newly stored, since start: 1.0 before
        anything was written, +Inf while everything written was already stored."""
        if self._new_bytes == 0:
            return 1.0 if self._offered_bytes == 0 else float("inf")
        return self._offered_bytes / self._new_bytes

    # -- scrapes ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the database counts, unless read within REFRESH_SECONDS. A
        database that does not answer leaves the last counts in place and
        sets loxo_database_up to 0."""
        if self.pipeline_stats is None:
            return
        async with self._refreshing:
            if time.monotonic() - self._refreshed < REFRESH_SECONDS:
                return
            try:
                self.counts = await self.pipeline_stats.counts()
                ended, self._datums_after = await self.pipeline_stats.ended_datums(
                    self._datums_after
                )
                for d in ended:
                    if d.started is not None:
                        self.datum_seconds.labels(d.state).observe(
                            max(d.finished - d.started, 0) / 1e6
                        )
                    for phase, us in (
                        ("wait", d.wait_us),
                        ("download", d.download_us),
                        ("process", d.process_us),
                        ("upload", d.upload_us),
                    ):
                        if us > 0:
                            self.datum_phase_seconds.labels(phase).inc(us / 1e6)
                self.database_up = 1.0
            except Exception as exc:  # the scrape still answers what the process knows
                self.database_up = 0.0
                log.warning("metrics: reading pipeline counts failed: %s", exc)
            self._refreshed = time.monotonic()

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (body, content type) for a scraper's Accept header:
        OpenMetrics when it asks for it (Prometheus does), else the text format."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _DomainCollector(Collector):
    """What is read from the domain when scraped: counters kept by the
    committer, the dedup ratio, and the database counts of the last refresh."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # names are only known once collected (pipelines come and go)

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        committer = m.committer
        yield CounterMetricFamily(
            "loxo_commits", "Commits this server made", value=committer.commits if committer else 0
        )
        yield CounterMetricFamily(
            "loxo_commit_conflicts",
            "Branch-head moves lost to another server, each retried on the new head",
            value=committer.conflicts if committer else 0,
        )
        yield GaugeMetricFamily(
            "loxo_dedup_ratio",
            "Chunk bytes written per byte newly stored, since this server started "
            '(loxo_chunk_write_bytes_total summed / its result="new")',
            value=m.dedup_ratio(),
        )
        yield GaugeMetricFamily(
            "loxo_database_up",
            "1 when the last read of the database counts succeeded, else 0",
            value=m.database_up,
        )
        counts = m.counts
        jobs = GaugeMetricFamily(
            "loxo_jobs", "Jobs by pipeline and state", labels=["pipeline", "state"]
        )
        datums = GaugeMetricFamily(
            "loxo_datums",
            "Datums of all jobs by pipeline and state (pending, running, success, failed, "
            "skipped, recovered, killed)",
            labels=["pipeline", "state"],
        )
        workers = GaugeMetricFamily(
            "loxo_workers",
            "Pipeline workers by activity: leasing (holding a datum lease now) or seen "
            "(leasing, or ended an attempt in the last 5 minutes)",
            labels=["activity"],
        )
        if counts is not None:
            for c in counts.jobs:
                jobs.add_metric([c.pipeline, c.state], c.count)
            for c in counts.datums:
                datums.add_metric([c.pipeline, c.state], c.count)
            workers.add_metric(["leasing"], counts.workers_leasing)
            workers.add_metric(["seen"], counts.workers_seen)
        yield jobs
        yield datums
        yield workers
