"""A shared server's settings (gtex_models.interfaces.deployment): cohort folders confined to one root (no way
out by `..` or symbolic links), or off; the studies folder's cap; concurrent builds; read-only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gtex_models.interfaces.deployment import Deployment, DeploymentError, folder_bytes


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A cohort root with a cohort folder in it, a folder outside it, and links from inside to both."""
    (tmp_path / "root" / "mine").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "root" / "to_secret").symlink_to(tmp_path / "secret")
    (tmp_path / "root" / "to_mine").symlink_to(tmp_path / "root" / "mine")
    return tmp_path / "root"


def test_a_local_run_is_unrestricted():
    settings = Deployment.from_environ({})
    assert settings == Deployment(read_only=False, cohort_folders=True, cohort_root=None, studies_max_bytes=None,
                                  max_builds=1)
    assert settings.cohort_folder("/anywhere/../at/all") == Path("/at/all")


def test_the_settings_of_a_shared_server(root):
    settings = Deployment.from_environ({"GTEX_READ_ONLY": "1", "GTEX_COHORT_ROOT": str(root),
                                        "GTEX_STUDIES_MAX_MB": "2.5", "GTEX_MAX_BUILDS": "3"})
    assert settings.read_only and settings.cohort_root == root.resolve()
    assert settings.studies_max_bytes == int(2.5 * 2**20) and settings.max_builds == 3
    assert not Deployment.from_environ({"GTEX_COHORT_ROOT": "off"}).cohort_folders


@pytest.mark.parametrize("environ, named", [
    ({"GTEX_MAX_BUILDS": "0"}, "GTEX_MAX_BUILDS"), ({"GTEX_MAX_BUILDS": "two"}, "GTEX_MAX_BUILDS"),
    ({"GTEX_STUDIES_MAX_MB": "-5"}, "GTEX_STUDIES_MAX_MB"), ({"GTEX_STUDIES_MAX_MB": "nan"}, "GTEX_STUDIES_MAX_MB"),
    ({"GTEX_READ_ONLY": "perhaps"}, "GTEX_READ_ONLY"), ({"GTEX_COHORT_ROOT": "/no/such/folder"}, "GTEX_COHORT_ROOT"),
])
def test_a_setting_that_cannot_be_used_is_named(environ, named):
    with pytest.raises(DeploymentError, match=rf"\${named} is"):
        Deployment.from_environ(environ)


def test_cohort_folders_inside_the_root_are_read(root):
    settings = Deployment.from_environ({"GTEX_COHORT_ROOT": str(root)})
    assert settings.cohort_folder("mine") == (root / "mine").resolve()  # relative: inside the root
    assert settings.cohort_folder(str(root / "mine")) == (root / "mine").resolve()
    assert settings.cohort_folder("to_mine") == (root / "mine").resolve()  # a link that stays inside
    assert settings.cohort_folder("mine/../mine") == (root / "mine").resolve()


@pytest.mark.parametrize("typed", ["..", "../secret", "mine/../../secret", "to_secret", "to_secret/x", "/etc",
                                   "~"])
def test_no_path_leads_out_of_the_root(root, typed):
    settings = Deployment.from_environ({"GTEX_COHORT_ROOT": str(root)})
    with pytest.raises(DeploymentError, match="outside the folder this server reads cohorts from"):
        settings.cohort_folder(typed)


def test_cohort_folders_can_be_turned_off(root):
    with pytest.raises(DeploymentError, match="reads no cohort folders"):
        Deployment.from_environ({"GTEX_COHORT_ROOT": "off"}).cohort_folder(str(root / "mine"))


def test_the_studies_folder_cap(tmp_path):
    studies = tmp_path / "studies"
    (studies / "a").mkdir(parents=True)
    (studies / "a" / "blob").write_bytes(b"x" * 600_000)
    (studies / "link").symlink_to("/usr")  # a link is not followed (nor counted beyond itself)
    assert 600_000 <= folder_bytes(studies) < 600_200
    settings = Deployment.from_environ({"GTEX_STUDIES_MAX_MB": "1"})
    settings.check_room(studies, adding=400_000)  # 1,000,000 bytes: below 1 MiB
    with pytest.raises(DeploymentError, match=r"holds 0\.6 MB and this study needs at least 0\.5 MB more"):
        settings.check_room(studies, adding=500_000)
    Deployment.from_environ({}).check_room(studies, adding=10**12)  # no cap: anything goes
    assert folder_bytes(tmp_path / "none") == 0
    assert os.path.islink(studies / "link")
