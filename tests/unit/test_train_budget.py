"""`--time-budget`: the schedule is planned from the measured step time, the slow first steps discounted."""

from winnow.train.trainer import steps_in_budget


def test_the_first_plan_extrapolates_the_rate_so_far_and_never_exceeds_what_was_asked():
    assert steps_in_budget(10, 20.0, 0.0, 100.0, 1000) == 10 + 40  # 2 s a step, 80 s left
    assert steps_in_budget(10, 20.0, 0.0, 10_000.0, 1000) == 1000  # the epochs asked fit: keep them


def test_the_second_plan_uses_the_rate_since_the_first_and_always_allows_one_more_step():
    # 10 steps took 40 s (warm-up), the next 40 took 40 s: 1 s a step now, 920 s left.
    assert steps_in_budget(50, 80.0, 40.0, 1000.0, 5000) == 50 + 920
    assert steps_in_budget(50, 2000.0, 40.0, 1000.0, 5000) == 51  # over budget already
