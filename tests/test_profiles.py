import pytest

from perturbx.profiles import PROFILE_BUDGETS, PROFILES, Budget, check_profile


def test_every_profile_has_a_budget_that_grows_with_the_profile():
    assert list(PROFILE_BUDGETS) == list(PROFILES)
    minutes = [PROFILE_BUDGETS[p].cpu_minutes for p in PROFILES]
    assert minutes == sorted(minutes) and PROFILE_BUDGETS["quick"].cpu_minutes == 10
    assert PROFILE_BUDGETS["full"] == Budget(90, 10) and PROFILE_BUDGETS["smoke"].gpu_minutes is None
    assert Budget(90, 10).describe() == "at most 90 min on 2 CPU cores, 10 min on one GPU"
    assert Budget(2).describe() == "at most 2 min on 2 CPU cores"


def test_an_unknown_profile_names_the_known_ones():
    with pytest.raises(ValueError, match="use one of smoke, quick, full"):
        check_profile("paper")
