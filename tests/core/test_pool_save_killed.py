"""A process SIGKILLed while saving an anchor pool leaves the old file or the new one, never a mix.

A child process saves two different, large pools (A and B, a few MB each) alternately to the
same file as fast as it can; the test kills it with SIGKILL at random moments (no handler or
``finally`` runs) and then checks that the file loads (format, length and SHA-256 checks pass)
and holds exactly pool A or pool B. Temporary files of an interrupted save may remain beside it
(``.<name>.*.tmp``); they are never read.
"""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hpe_core.anchors.persistence import load

# The child: builds pools A and B deterministically, then saves A, B, A, ... to argv[1] forever,
# printing the number of completed saves.
CHILD = r"""
import sys
import numpy as np
from hpe_core.anchors.persistence import save
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool

def make(value, people, per_person):
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=per_person, anchors_per_estimate=1))
    for p in range(people):
        for i in range(per_person):
            pose = np.eye(4)
            pose[:3, 3] = (0.01 * i, 0.0, 1.0 + value)
            pool.add_calibrated(f"person_{p}", np.full((224, 224, 3), value, np.uint8), pose, created_at=float(i))
    return pool

pools = [make(1, 3, 10), make(2, 2, 12)]
n = 0
while True:
    save(pools[n % 2], sys.argv[1])
    n += 1
    print(n, flush=True)
"""
EXPECTED = {1: 30, 2: 24}  # crop value -> anchors in that pool


def _which_pool(path: Path) -> int:
    pool = load(path)  # raises on a truncated, mixed or corrupt file
    values = {int(v) for t in pool.tracks() for a in pool.anchors(t) for v in np.unique(a.crop)}
    assert len(values) == 1, f"crops of both pools in one file: {values}"
    value = values.pop()
    assert len(pool) == EXPECTED[value]
    for t in pool.tracks():
        for a in pool.anchors(t):
            assert a.pose_cam[2, 3] == 1.0 + value
    return value


def test_sigkill_during_saves_never_leaves_a_mixed_file(tmp_path: Path) -> None:
    target = tmp_path / "pool.hpepool"
    rng = random.Random(8)
    seen: list[int] = []
    kills = 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            first = child.stdout.readline()  # one save completed: there is an old file to keep
            assert first.strip() == "1" or first.strip().isdigit(), first
            time.sleep(rng.uniform(0.0, 0.4))  # lands anywhere in a later save
            child.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            child.wait(timeout=30)
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        seen.append(_which_pool(target))
    assert kills == 6
    assert set(seen) <= {1, 2}
