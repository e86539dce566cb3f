from publipost_bus import PermanentFailure, RetryPolicy


def test_delays_double_up_to_the_cap():
    policy = RetryPolicy(max_attempts=6, base_delay_s=0.5, max_delay_s=3)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_a_failure_is_retried_until_the_last_attempt_and_a_permanent_one_never():
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(1, RuntimeError()) and policy.should_retry(2, RuntimeError())
    assert not policy.should_retry(3, RuntimeError())
    assert not policy.should_retry(1, PermanentFailure("bad data"))
