"""FrameOrderGate: frames must move forward in time; late and repeated frames are dropped."""
from __future__ import annotations

import pytest

from hpe_core.frame_order import FrameOrderGate


def test_forward_frames_are_admitted():
    gate = FrameOrderGate()
    for t in (1.0, 1.1, 1.2):
        assert gate.admit(t).admitted
        gate.processed(t)
    assert (gate.out_of_order, gate.too_old) == (0, 0)
    assert gate.last_processed_s == 1.2


def test_older_and_repeated_stamps_are_dropped_and_counted():
    gate = FrameOrderGate()
    assert gate.admit(2.0).admitted
    gate.processed(2.0)
    older, repeated = gate.admit(1.5), gate.admit(2.0)
    assert not older.admitted and older.kind == "out_of_order" and "out of order" in older.reason
    assert not repeated.admitted and repeated.kind == "out_of_order"
    assert gate.out_of_order == 2
    assert gate.admit(2.1).admitted


def test_a_frame_seen_but_not_processed_does_not_block_older_ones():
    # Only processed frames set the order: a frame that failed (e.g. bad image) is not output,
    # so an older frame after it does not make the output go backwards.
    gate = FrameOrderGate()
    assert gate.admit(3.0).admitted  # never marked processed
    assert gate.admit(2.9).admitted


def test_too_old_relative_to_the_newest_seen():
    gate = FrameOrderGate(max_age_s=0.5)
    assert gate.admit(10.0).admitted
    verdict = gate.admit(9.4)
    assert not verdict.admitted and verdict.kind == "too_old" and gate.too_old == 1
    assert gate.admit(9.6).admitted  # within 0.5 s of the newest
    assert FrameOrderGate(max_age_s=0.0).admit(1.0).admitted


def test_reset_forgets_stamps_but_keeps_counts():
    gate = FrameOrderGate()
    gate.admit(5.0)
    gate.processed(5.0)
    assert not gate.admit(1.0).admitted
    gate.reset()
    assert gate.admit(1.0).admitted and gate.out_of_order == 1
    with pytest.raises(ValueError):
        FrameOrderGate(max_age_s=-1.0)
