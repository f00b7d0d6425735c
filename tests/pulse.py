"""A private PulseAudio server with a null sink, so tests capture real audio through a
real ``sounddevice.InputStream`` on a machine without a sound card (see
../shared/docs/ENVIRONMENT.md). Whatever ``paplay --device=SINK`` plays comes back,
bit-exact, from the sink's monitor source, which is the server's default source.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


class PulseServer:
    def __init__(self, runtime_dir: Path, sink: str = "virt", rate: int = 48000, channels: int = 2):
        self.dir = Path(runtime_dir)
        self.sink, self.rate, self.channels = sink, rate, channels
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.dir),
                    "PULSE_SERVER": f"unix:{self.dir}/pulse/native"}

    @staticmethod
    def available() -> bool:
        return all(shutil.which(x) for x in ("pulseaudio", "pactl", "paplay"))

    def pactl(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.dir / "pulse.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit",
             "--use-pid-file=no", "--load=module-native-protocol-unix"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode == 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(self.dir / 'pulse.log').read_text()[-2000:]}")
            time.sleep(0.1)
        else:
            raise RuntimeError("pulseaudio did not answer within 15 s")
        self.load_sink()

    def load_sink(self) -> None:
        self.pactl("load-module", "module-null-sink", f"sink_name={self.sink}",
                   f"rate={self.rate}", f"channels={self.channels}")
        self.pactl("set-default-source", f"{self.sink}.monitor")

    def unload_sink(self) -> None:
        for line in self.pactl("list", "short", "modules").splitlines():
            if "module-null-sink" in line and f"sink_name={self.sink}" in line:
                self.pactl("unload-module", line.split()[0])

    def play(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", f"--device={self.sink}", str(wav)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # only the PID we started
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        if hasattr(self, "log"):
            self.log.close()
