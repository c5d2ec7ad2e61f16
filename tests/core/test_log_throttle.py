"""Per-cause log throttling: repeats are held back and counted, new causes pass at once."""
from hpe_core.log_throttle import CauseThrottle


def test_a_repeated_cause_is_logged_once_per_period_with_the_count_held_back():
    throttle = CauseThrottle(period_s=10.0)
    first = throttle.check("ValueError: x", now_s=0.0)
    assert first.log and first.first
    assert not any(throttle.check("ValueError: x", now_s=t).log for t in (1.0, 2.0, 9.9))
    again = throttle.check("ValueError: x", now_s=10.5)
    assert again.log and not again.first and again.suppressed == 3
    assert "3 more" in again.suffix()


def test_a_new_cause_is_logged_at_once_and_the_memory_is_bounded():
    throttle = CauseThrottle(period_s=10.0, max_causes=4)
    assert throttle.check("a", now_s=0.0).log
    assert throttle.check("b", now_s=0.1).log
    for i in range(100):
        throttle.check(f"random {i}", now_s=1.0)
    assert len(throttle._causes) == 4
    assert throttle.check("a", now_s=2.0).first  # forgotten: logged again as new
