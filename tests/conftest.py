import os

from hypothesis import HealthCheck, settings

# "ci" is the fast default; HYPOTHESIS_PROFILE=slow searches far longer.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "slow", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
# Properties over large inputs (2^16 symbols and more: 32-lane chunks, several chunks a stream)
# take "<profile>-large": fewer examples, each far larger (tests/test_properties.py).
settings.register_profile(
    "ci-large", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "slow-large", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
