from dataclasses import dataclass


class PermanentFailure(Exception):
    """The message can never succeed (bad data, missing reference): dead-letter it now, do not retry."""


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy: exponential backoff, a bounded number of attempts."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay_s(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1`, after `attempt` failures (attempt >= 1)."""
        return min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        return not isinstance(error, PermanentFailure) and attempt < self.max_attempts
