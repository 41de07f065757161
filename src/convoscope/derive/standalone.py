"""A Spark standalone cluster on this machine, started as an operator starts one: one master and `workers` workers,
each its own JVM, with the installed PySpark's `spark-class` (the PyPI package is SPARK_HOME and ships no
`sbin/start-*.sh`), on free ports of 127.0.0.1. The cluster test and `bench/spark.py --cluster` run `spark-derive`
on it (issue 31 point 1); nothing in convoscope itself needs it.
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
from typing import Any

STARTUP = 90  # seconds the cluster may take to list its workers as ALIVE


def free_ports(count: int) -> list[int]:
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
    workers: int
    folder: Path  # logs, and each worker's work folder `work-N`
    logs: list[Path]
    processes: list[subprocess.Popen[bytes]]

    def wait(self) -> None:
        """Return once the master's UI lists every worker ALIVE; RuntimeError with the logs' tails otherwise."""
        deadline = time.monotonic() + STARTUP
        while self.alive() < self.workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"the cluster did not list {self.workers} ALIVE workers within {STARTUP} s\n"
                                   f"{self.tails()}")
            time.sleep(0.5)

    def alive(self) -> int:
        return sum(worker.get("state") == "ALIVE" for worker in self.state().get("workers", []))

    def state(self) -> dict[str, Any]:
        """The master's JSON status (workers, applications), or {} while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as response:
                found = json.load(response)
        except OSError:
            return {}
        return found if isinstance(found, dict) else {}

    def work_dirs(self) -> list[Path]:
        return sorted(self.folder.glob("work-*"))

    def tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}" for log in self.logs)

    def submit(self, args: list[str], *, executor_memory: str, driver_memory: str, cwd: Path,
               stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        """`spark-submit` of the package's entry file (convoscope.spark_submit) with `args` (spark-derive's), the
        executors importing the code this interpreter runs; its output piped, Spark's log to `stderr`."""
        import convoscope
        import convoscope.spark_submit

        source = str(Path(convoscope.__file__).parents[1])
        submit = Path(sys.executable).with_name("spark-submit")
        command = [str(submit), "--master", self.url, "--conf", f"spark.executor.memory={executor_memory}",
                   "--conf", "spark.locality.wait=0s", "--conf", "spark.driver.host=127.0.0.1",
                   "--conf", f"spark.executorEnv.PYTHONPATH={source}",
                   "--conf", f"spark.executorEnv.PYSPARK_PYTHON={sys.executable}",
                   str(convoscope.spark_submit.__file__), *args]
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
               "CONVOSCOPE_SPARK_MEMORY": driver_memory}
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


@contextlib.contextmanager
def standalone(folder: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g") -> Iterator[Cluster]:
    """Start the master and the workers (each `cores` cores and `memory` for executors), logging into `folder`;
    stop every JVM, and anything it started, however the block ends. The JVMs start in the background: call
    `Cluster.wait` before submitting."""
    import pyspark

    home = Path(pyspark.__file__).parent
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(folder),
           "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_LOCAL_DIRS": str(folder / "local"),
           "SPARK_DAEMON_MEMORY": "256m"}
    port, ui, *worker_ports = free_ports(2 + 2 * workers)
    commands = {"master": ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                           "--webui-port", str(ui)]}
    for i in range(workers):
        commands[f"worker-{i}"] = [
            "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
            "--port", str(worker_ports[2 * i]), "--webui-port", str(worker_ports[2 * i + 1]),
            "--cores", str(cores), "--memory", memory, "--work-dir", str(folder / f"work-{i}")]
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for name, args in commands.items():
            log = folder / f"{name}.log"
            logs.append(log)
            with log.open("wb") as out:  # the child keeps its own descriptor
                processes.append(subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=out,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
        yield Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", workers, folder, logs, processes)
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
