"""The use cases the command line and the server share; the only place that strings stages together:
read (files, a helpdesk's API or webhooks) → store (one transaction per chunk) → derive what changed →
report, for whoever asks. One module per family: `events` (events in, derived), `sources` (a helpdesk's
records in), `reports` (reports out, audited).
"""

from convoscope.service.compare import Comparison, compare
from convoscope.service.events import (
    Batch,
    BatchOutcome,
    IngestResult,
    Progress,
    SourceHistory,
    check_paths,
    derive,
    ensure_derived,
    ingest,
    ingest_history,
    ingest_lines,
    store_batches,
)
from convoscope.service.reports import (
    Asker,
    ReportRun,
    audited_brands,
    describe_report,
    prepare_report,
    run_report,
    stream_report,
    write_report,
    write_whole,
)
from convoscope.service.sources import (
    PullResult,
    SourceResult,
    ingest_source,
    merge_spool,
    pull_chatwoot,
    source_brand,
    store_records,
    store_round,
)

__all__ = [
    "Comparison", "compare",
    "Asker", "ReportRun", "audited_brands", "describe_report", "prepare_report", "run_report", "stream_report",
    "Batch", "BatchOutcome", "IngestResult", "Progress", "PullResult", "SourceResult", "check_paths", "derive",
    "ensure_derived", "ingest", "ingest_history", "ingest_lines", "SourceHistory", "store_batches",
    "ingest_source", "merge_spool", "store_round", "pull_chatwoot", "source_brand", "store_records", "write_report",
    "write_whole",
]
