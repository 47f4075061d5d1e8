"""A real small filesystem that a test can fill up or make read-only under a running router.

Run as `unshare --user --map-root-user --mount --fork python fs_jail.py DIR LOG -- CMD...`
(FsJail does): it mounts a 256 KiB tmpfs on DIR in a mount namespace of its own (the
test's own view of DIR is untouched; the network is shared, so the test reaches the
router on 127.0.0.1), starts CMD there with its output in LOG, then obeys one command
a line on stdin, answering one JSON line on stdout:

  fill         write a filler file until the disk is full (ENOSPC)
  free         remove the filler
  ro / rw      remount DIR read-only / read-write
  read NAME    the text of DIR/NAME ("" when it is not there)
  stop         SIGTERM the router; answers its exit status (the disk stays, to be read)

and unmounts and ends when stdin closes.

Root in a user namespace ignores file modes, so a chmod never makes a disk unwritable
for it; a read-only mount does, for root too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

FILLER = ".filler"
SIZE = "256k"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _fill(directory: str) -> dict:
    chunk = b"\0" * 4096
    written = 0
    fd = os.open(os.path.join(directory, FILLER), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:  # unbuffered: a buffered file's close would raise ENOSPC again
        while True:
            written += os.write(fd, chunk)
    except OSError as exc:  # ENOSPC: the point
        return {"ok": True, "written": written, "error": exc.strerror}
    finally:
        os.close(fd)


def _free(directory: str) -> dict:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, FILLER))
    return {"ok": True}


def _read(directory: str, name: str) -> dict:
    try:
        return {"ok": True, "text": Path(directory, name).read_text()}
    except FileNotFoundError:
        return {"ok": True, "text": ""}


def main(argv: list) -> int:
    directory, log, cmd = argv[0], argv[1], argv[3:]
    _mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", directory)
    with open(log, "ab") as out:
        router = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    answer({"ok": True, "pid": router.pid})
    for line in sys.stdin:
        word, _, rest = line.strip().partition(" ")
        if word == "stop":
            router.terminate()
            answer({"ok": True, "returncode": router.wait(30)})
            continue
        actions = {"fill": lambda: _fill(directory), "free": lambda: _free(directory),
                   "ro": lambda: _mount("-o", "remount,ro", directory) or {"ok": True},
                   "rw": lambda: _mount("-o", "remount,rw", directory) or {"ok": True},
                   "read": lambda: _read(directory, rest)}
        try:
            answer(actions[word]())
        except Exception as exc:  # noqa: BLE001  told to the test, which fails on it
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    if router.poll() is None:  # the test's end of the pipe closed: take the router down with us
        router.kill()
        router.wait()
    subprocess.run(["umount", "-l", directory], capture_output=True)
    return 0


def answer(reply: dict) -> None:
    print(json.dumps(reply), flush=True)


# --- the test's side ------------------------------------------------------------------------

def unshare_works() -> Optional[str]:
    """None when a user + mount namespace can mount a tmpfs here; else why not."""
    if shutil.which("unshare") is None:
        return "unshare is not on PATH"
    with tempfile.TemporaryDirectory() as d:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--fork",
                               "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                              capture_output=True, text=True, timeout=20)
    return None if done.returncode == 0 else f"unshare cannot mount a tmpfs here: {done.stderr.strip()}"


class FsJail:
    """A router process on a small tmpfs of its own (this module's script), driven over a pipe."""

    def __init__(self, directory: Path, log: Path, cmd: list, cwd: Optional[str] = None):
        self.proc = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "--fork", sys.executable, __file__,
             str(directory), str(log), "--", *cmd],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=cwd)
        self.log = log
        self.started = self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fs_jail ended (exit {self.proc.wait(10)})")
        reply = json.loads(line)
        assert reply["ok"], reply
        return reply

    def do(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()  # the script kills the router, unmounts and ends
        if self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
