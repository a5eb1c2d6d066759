"""A runtime (`bootstrap`, `python -m awslambdaric ...`) as a child process: one execution environment.

Example (not run: starts a runtime process):
    >>> with RuntimeApi(load_stack().function("analysis"), daemon.address) as runtime:   # doctest: +SKIP
    ...     RuntimeProcess(runtime, runtime_command(spec), env).start()
"""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from devstack.lambda_.runtime_api import RuntimeApi
from devstack.stack import SRC_ROOT


class RuntimeProcess:
    """A runtime (`bootstrap`, `python -m awslambdaric ...`) as a child process of this one.

    Its output is kept (the last lines) for diagnostics; `stop()` ends exactly this process.
    """

    def __init__(self, runtime: RuntimeApi, command: Sequence[str], environment: Mapping[str, str],
                 cwd: Path = SRC_ROOT, keep_lines: int = 500):
        self.runtime = runtime
        self.command = list(command)
        self.environment = {**environment, "AWS_LAMBDA_RUNTIME_API": runtime.address}
        self.cwd = cwd
        self.output: deque[str] = deque(maxlen=keep_lines)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> RuntimeProcess:
        self._process = subprocess.Popen(
            self.command, env=dict(self.environment), cwd=str(self.cwd), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, name="runtime-process-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line.decode("utf-8", errors="replace").rstrip())

    def exit_code(self, timeout_s: float = 0.0) -> int | None:
        """The exit code once the process ended (waiting up to `timeout_s`), else None."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 5.0) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout_s)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> RuntimeProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
