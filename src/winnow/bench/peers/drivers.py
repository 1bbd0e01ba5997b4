"""The bench side of the driver protocol (see driverlib): start a driver process, send commands, read answers."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


class DriverError(RuntimeError):
    pass


@dataclass
class Driver:
    name: str
    cmd: list[str]
    log: Path
    ready: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, timeout_note: str = "") -> "Driver":
        logf = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf,
                                     text=True, bufsize=1)
        logf.close()
        self.ready = self._read()
        return self

    def _read(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise DriverError(f"{self.name} driver exited (rc={self.proc.poll()}); log tail:\n{tail}")
        return json.loads(line)

    def call(self, **msg) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise DriverError(f"{self.name}: {msg.get('cmd')}: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.call(cmd="quit")
        except (DriverError, BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def inprocess(workload: Path, log: Path) -> Driver:
    return Driver("in-process", [sys.executable, str(HERE / "inprocess_driver.py"), "--workload", str(workload)], log)


def winnow(workload: Path, target: str, log: Path, fusion: str = "") -> Driver:
    return Driver("winnow", [sys.executable, str(HERE / "winnow_driver.py"), "--workload", str(workload),
                             "--target", target, "--fusion", fusion], log)


def milvus(python: Path, workload: Path, db: Path, log: Path) -> Driver:
    """Milvus Lite in its own venv; Winnow's site-packages appended last, for the query encoder only."""
    import sentence_transformers

    site = Path(sentence_transformers.__file__).resolve().parents[1]
    return Driver("milvus-lite", [str(python), str(HERE / "milvus_driver.py"), "--workload", str(workload),
                                  "--db", str(db), "--extra-site", str(site)], log)
