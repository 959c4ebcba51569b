"""The chapter profiles: one name per size of run, from a laptop check to the published book.

``smoke`` runs every chapter in minutes on a CPU (the test suite), ``quick`` is what the published chapters use on
a laptop, ``full`` the paper-scale run meant for a GPU. Every layer that sizes work by profile uses these names.
"""

PROFILES = ("smoke", "quick", "full")
# Overrides every chapter's ``profile`` parameter when set (``perturbx book run`` validates it before it runs).
PROFILE_ENV = "PERTURBX_PROFILE"


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else a ``ValueError`` naming them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    return profile
