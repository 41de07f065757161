"""The Spark engine on a real standalone cluster (issue 31): one master and two workers, each its own JVM,
started as an operator would with the installed PySpark's `spark-class`, on free ports of 127.0.0.1. A
small generated brand, kept as a folder of Parquet files, is submitted with `spark-submit` and the
package's entry file; the lake it writes holds the embedded engine's tables and gives its reports byte for
byte. The JVMs are stopped however the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import convoscope.spark_submit
from convoscope import reports, service
from convoscope.config import Config, load_config
from convoscope.store import LAKE_TABLES, Store
from test_spark import AS_OF, CLI, CONFIG, _both_csv, _differences

pytestmark = pytest.mark.slow

WORKERS = 2
STARTUP = 90  # seconds the cluster may take to list its workers as ALIVE


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now, distinct (held open together while they are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Cluster:
    url: str  # spark://127.0.0.1:PORT
    ui: str  # the master's web UI
    logs: list[Path]
    processes: list[subprocess.Popen[bytes]]

    def wait(self) -> None:
        """Return once the master's UI lists every worker ALIVE (the JVMs start while the brand is made)."""
        deadline = time.monotonic() + STARTUP
        while _alive_workers(self.ui) < WORKERS:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                pytest.fail(f"the cluster did not list {WORKERS} ALIVE workers within {STARTUP} s\n{self.tails()}")
            time.sleep(0.5)

    def tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}" for log in self.logs)


def _alive_workers(ui: str) -> int:
    try:
        with urllib.request.urlopen(f"{ui}/json/", timeout=2) as response:
            state = json.load(response)
    except OSError:
        return 0
    return sum(worker.get("state") == "ALIVE" for worker in state.get("workers", []))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import pyspark

    home = Path(pyspark.__file__).parent  # the PyPI package is SPARK_HOME; it ships no sbin/start-*.sh
    folder = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(folder),
           "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_LOCAL_DIRS": str(folder / "local"),
           "SPARK_DAEMON_MEMORY": "256m"}
    port, ui, *worker_ports = _free_ports(2 + 2 * WORKERS)
    commands = {"master": ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                           "--webui-port", str(ui)]}
    for i in range(WORKERS):
        commands[f"worker-{i}"] = [
            "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
            "--port", str(worker_ports[2 * i]), "--webui-port", str(worker_ports[2 * i + 1]),
            "--cores", "1", "--memory", "1g", "--work-dir", str(folder / f"work-{i}")]
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for name, args in commands.items():
            log = folder / f"{name}.log"
            logs.append(log)
            with log.open("wb") as out:  # the child keeps its own descriptor
                processes.append(subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=out,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
        yield Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", logs, processes)
    finally:
        for process in processes:  # each in its own session: the JVM and anything it started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


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
    source = str(Path(convoscope.__file__).parents[1])  # the executors import the code under test
    submit = Path(sys.executable).with_name("spark-submit")
    cluster.wait()
    started = time.monotonic()
    result = subprocess.run(
        [str(submit), "--master", cluster.url, "--conf", "spark.executor.memory=512m", "--conf", "spark.locality.wait=0s",
         "--conf", "spark.driver.host=127.0.0.1", "--conf", f"spark.executorEnv.PYTHONPATH={source}",
         "--conf", f"spark.executorEnv.PYSPARK_PYTHON={sys.executable}",
         convoscope.spark_submit.__file__, "--events", str(brand), "--out", str(lake), "--partitions", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
             "CONVOSCOPE_SPARK_MEMORY": "1g"})
    took = time.monotonic() - started
    assert result.returncode in (0, 3), f"{result.stderr[-3000:]}\n{cluster.tails()}"  # 3: some were rejected
    assert result.stdout.startswith("accepted "), result.stdout
    # Both workers ran tasks of this application: it was the cluster's, not a local fallback.
    with urllib.request.urlopen(f"{cluster.ui}/json/", timeout=5) as response:
        done = json.load(response)["completedapps"]
    assert [app["name"] for app in done] == ["convoscope"], done
    ran = [p for p in (Path(w) for w in cluster_work_dirs(cluster)) if any(p.glob("app-*/*/stderr"))]
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


def cluster_work_dirs(cluster: Cluster) -> list[Path]:
    return sorted(cluster.logs[0].parent.glob("work-*"))
