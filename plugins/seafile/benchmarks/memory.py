"""Peak memory of one large upload to the fake Seafile server.

    .venv/bin/python plugins/seafile/benchmarks/memory.py [GiB]

The fake runs in a child process (its memory is not counted); this process
streams a generated file of GiB gibibytes (default 2) through SeafileStore.put
(resumable chunked upload, 32 MiB chunks, verification by file id) and prints
its peak RSS and the throughput. Results are recorded in RESULTS.md here.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fake_seafile import FakeSeafile
with tempfile.TemporaryDirectory(dir=sys.argv[2]) as tmp:
    fake = FakeSeafile(Path(tmp))
    token = fake.add_user("bench@example.edu", "pw")
    repo = fake.add_repo("bench")
    print(json.dumps({"url": fake.url, "token": token, "repo": repo.id}), flush=True)
    sys.stdin.read()
    fake.close()
"""


def main() -> None:
    from ocs_transfer_seafile.store import SeafileStore

    from ocs_transfer.testing import PatternReader

    size = int(float(sys.argv[1] if len(sys.argv) > 1 else 2) * (1 << 30))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(HERE.parent / "tests"), tempfile.gettempdir()],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    info = json.loads(child.stdout.readline())
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        config = SeafileStore.Config(server_url=info["url"], repo_id=info["repo"])
        with SeafileStore.from_config(config, {"token": info["token"]}) as store:
            started = time.monotonic()
            obj = store.put(PatternReader(size), "big/pattern.bin", size=size)
            elapsed = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert obj.size == size
        print(f"{size / (1 << 30):.2f} GiB in {elapsed:.1f} s = {size / elapsed / (1 << 20):.0f} MiB/s;"
              f" peak RSS {peak:.0f} MiB (before the upload {before:.0f} MiB)")  # fmt: skip
    finally:
        child.stdin.close()
        child.wait(timeout=60)


if __name__ == "__main__":
    main()
