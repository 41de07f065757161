"""The Spark engine on a real standalone cluster (issue 31): one master and two workers, each its own JVM,
started as an operator would with the installed PySpark's `spark-class`, on free ports of 127.0.0.1. A
small generated brand, kept as a folder of Parquet files, is submitted with `spark-submit` and the
package's entry file; the lake it writes holds the embedded engine's tables and gives its reports byte for
byte. The JVMs are stopped however the test ends.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from convoscope import reports, service
from convoscope.config import Config, load_config
from convoscope.derive.standalone import Cluster, standalone
from convoscope.store import LAKE_TABLES, Store
from test_spark import AS_OF, CLI, CONFIG, _both_csv, _differences

pytestmark = pytest.mark.slow

WORKERS = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with standalone(tmp_path_factory.mktemp("cluster"), workers=WORKERS, memory="1g") as started:
        yield started


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("config") / "convoscope.toml"
    path.write_text(CONFIG)
    return load_config(path)


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated brand as a folder of two Parquet files (a lake of events)."""
    folder = tmp_path_factory.mktemp("brand") / "events"
    folder.mkdir()
    whole = folder.parent / "whole.parquet"
    subprocess.run([*CLI, "generate", "--customers", "400", "--days", "14", "--seed", "11", "--bad-rate", "0.002",
                    "--out", str(whole)], check=True, capture_output=True)
    events = pq.read_table(whole)
    half = events.num_rows // 2
    pq.write_table(events.slice(0, half), folder / "part-1.parquet")
    pq.write_table(events.slice(half), folder / "part-2.parquet")
    whole.unlink()
    return folder


def test_a_standalone_cluster_derives_the_embedded_engines_tables_and_reports(
    cluster: Cluster, brand: Path, config: Config, tmp_path: Path
) -> None:
    """The fixtures start the cluster first, so its JVMs come up while the brand is generated."""
    (tmp_path / "convoscope.toml").write_text(CONFIG)
    store_path = tmp_path / "store.duckdb"
    with Store(store_path) as store:
        service.ingest(store, config, [str(brand)])
    lake = tmp_path / "lake"
    try:
        cluster.wait()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    started = time.monotonic()
    submitted = cluster.submit(["--events", str(brand), "--out", str(lake), "--partitions", "2"],
                               executor_memory="512m", driver_memory="1g", cwd=tmp_path)
    stdout, stderr = submitted.communicate(timeout=300)
    took = time.monotonic() - started
    assert submitted.returncode in (0, 3), f"{stderr[-3000:]}\n{cluster.tails()}"  # 3: some were rejected
    # spark-submit hands the driver's standard error to its standard output: the run's own lines come first
    said = stdout.splitlines()
    assert said[0].startswith("convoscope: full derive: ") and said[1].startswith("accepted "), stdout
    # Both workers ran tasks of this application: it was the cluster's, not a local fallback.
    done = cluster.state()["completedapps"]
    assert [app["name"] for app in done] == ["convoscope"], done
    ran = [p for p in cluster.work_dirs() if any(p.glob("app-*/*/stderr"))]
    assert len(ran) == 2, f"executors ran on {len(ran)} workers"
    print(f"spark-submit on the cluster: {took:.1f} s")

    for table in LAKE_TABLES:
        count, only_store, only_lake = _differences(lake, store_path, table)
        assert (only_store, only_lake) == (0, 0), f"{table}: {only_store} only in the store, {only_lake} only in the lake"
    for name in (name for name, report in reports.REPORTS.items() if report.in_lakes):
        folder = tmp_path / name
        folder.mkdir()
        from_store, from_lake = _both_csv(lake, store_path, config, name, folder)
        assert from_store == from_lake, name
    on_the_command_line = subprocess.run([*CLI, "report", "sessions-detail", "--as-of", AS_OF, "--lake", str(lake)],
                                         cwd=tmp_path, capture_output=True)
    assert on_the_command_line.returncode == 0 and on_the_command_line.stdout.count(b"\n") > 100

