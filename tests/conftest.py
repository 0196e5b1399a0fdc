import os

import hypothesis
import pytest

hypothesis.settings.register_profile(
    "automix", max_examples=25, deadline=None, derandomize=True
)
hypothesis.settings.load_profile("automix")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")


@pytest.fixture(scope="session")
def shared_dir():
    """The shared data folder beside the repository (skips when absent)."""
    if not os.path.isdir(SHARED):
        pytest.skip("the shared data folder is not beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def cases_dir(shared_dir):
    return os.path.join(shared_dir, "cases")
