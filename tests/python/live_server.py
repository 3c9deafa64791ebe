"""A real attnd process on loopback for the Python tests, as tests/integration/server_process.h
does for the C++ ones: a config with ports 0 plus whole extra sections, started, its bound
addresses read from the "serving" log line; /metrics read over HTTP; stopped by signal."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

_BASE = {
    "logging": "logging:\n  level: info\n  format: json\n",
    "server": "server:\n  listen: 127.0.0.1:0\n  drain_timeout_seconds: 20\n",
    "metrics": "metrics:\n  listen: 127.0.0.1:0\n",
    "backend": "backend:\n  kind: cpu\n",
}


class AttndServer:
    def __init__(self, binary: str, extra_yaml: str = "", start_timeout: float = 30.0):
        # Sections named in extra_yaml replace the base's (YAML refuses duplicate keys).
        config = "".join(text for name, text in _BASE.items() if f"{name}:" not in extra_yaml)
        fd, self._config_path = tempfile.mkstemp(prefix="attnd-py-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(config + extra_yaml)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._serving = threading.Event()
        self.target = ""            # "127.0.0.1:PORT"
        self.metrics_address = ""   # "127.0.0.1:PORT"
        self.process = subprocess.Popen([binary, "--config", self._config_path],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._serving.wait(start_timeout):
            self.kill()
            raise RuntimeError(f"attnd did not report serving within {start_timeout}s:\n"
                               + self.log())

    @property
    def port(self) -> int:
        return int(self.target.rsplit(":", 1)[1])

    def _read_log(self) -> None:
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line)
            if '"serving"' in line and not self._serving.is_set():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.target = record.get("listen", "")
                self.metrics_address = record.get("metrics_listen", "")
                self._serving.set()

    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of `name{...}` over the children whose labels include all of `labels`."""
        total = 0.0
        pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$")
        for line in self.metrics().splitlines():
            m = pattern.match(line)
            if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def wait_for_metric(self, name: str, at_least: float, timeout: float = 30.0,
                        **labels: str) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.metric(name, **labels) >= at_least:
                return True
            time.sleep(0.01)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if os.path.exists(self._config_path):
            os.unlink(self._config_path)


# A config whose queue two requests fill: one computing, one waiting.
ONE_SLOT = "scheduler:\n  max_queue_requests: 1\n  workers: 1\n"


@contextlib.contextmanager
def full_queue(server: AttndServer):
    """On a server started with ONE_SLOT: yields once one slow request computes and a second
    waits in the queue, so any other request is refused RESOURCE_EXHAUSTED until the first
    finishes (the float64 reference over 1024² scores for 8 heads: ~2 s each on the 2-core
    machine). Joins both on exit; they must have succeeded."""
    import attnd  # the package under test; imported here so live_server stays usable alone
    import numpy as np

    q = np.random.default_rng(0).standard_normal((1, 1024, 8, 64), np.float32)
    errors = []

    def slow():
        try:
            with attnd.Client(server.target, retry=attnd.NO_RETRY) as c:
                c.attend(q, q, q, variant="reference", timeout=300)
        except attnd.AttendError as e:
            errors.append(e)

    threads = [threading.Thread(target=slow), threading.Thread(target=slow)]
    threads[0].start()
    assert server.wait_for_metric("attnd_inflight_requests", 1), "the slow request never ran"
    threads[1].start()
    assert server.wait_for_metric("attnd_queue_depth", 1), "the second never queued"
    try:
        yield
    finally:
        for t in threads:
            t.join()
    assert not errors, errors
