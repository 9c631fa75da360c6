"""One settings object: environment over streamrec.toml over defaults, validated once, each value's source known."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings, StreamRecSettings, env_name, resolve_settings


def test_environment_over_toml_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "conf.toml"
    toml.write_text('epsilon = 0.3\nretrieval_k = 40\nhome = "from-toml"\n')
    env = {"STREAMREC_CONFIG": str(toml), "STREAMREC_RETRIEVAL_K": "20"}
    settings, sources = resolve_settings(env)
    assert settings.retrieval_k == 20 and sources["retrieval_k"] == "env STREAMREC_RETRIEVAL_K"
    assert settings.epsilon == 0.3 and sources["epsilon"] == str(toml)
    assert settings.holdout_share == StreamRecSettings().holdout_share and sources["holdout_share"] == "default"
    assert settings.home == Settings(Path("from-toml").resolve())


def test_an_empty_home_means_the_default_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings, sources = resolve_settings({"STREAMREC_HOME": ""})
    assert settings.home.home == tmp_path / ".streamrec"
    assert sources["home"] == "default"
    profile = (Path(__file__).resolve().parents[2] / "profiles.yml").read_text()
    assert "(env_var('STREAMREC_HOME', '') or '.streamrec')" in profile  # dbt resolves an empty home the same way
    assert "env_var('STREAMREC_HOME', '.streamrec')" not in profile


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMREC_EPSILON": "2"}, "environment variable STREAMREC_EPSILON='2' is out of range"),
        ({"STREAMREC_RETRIEVAL_K": "many"}, "environment variable STREAMREC_RETRIEVAL_K='many' is not valid"),
        ({"STREAMREC_EXPLORATION": "greedy"}, "environment variable STREAMREC_EXPLORATION='greedy' is not valid"),
        ({"STREAMREC_PL_TEMPERATURE": "0"}, "environment variable STREAMREC_PL_TEMPERATURE='0' is out of range"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(StreamRecError, match=message) as caught:
        resolve_settings(env)
    assert "\n" not in str(caught.value)


def test_a_bad_toml_file_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "streamrec.toml"
    toml.write_text("epsilon = 0.3\nepsilom = 0.2\n")
    with pytest.raises(StreamRecError, match="unknown setting 'epsilom'"):
        resolve_settings({"STREAMREC_CONFIG": str(toml)})
    toml.write_text("epsilon = [\n")
    with pytest.raises(StreamRecError, match="not valid TOML"):
        resolve_settings({"STREAMREC_CONFIG": str(toml)})
    toml.write_text("holdout_share = 1.5\n")
    with pytest.raises(StreamRecError, match=re.escape(f"holdout_share in {toml}=1.5 is out of range")):
        resolve_settings({"STREAMREC_CONFIG": str(toml)})
    with pytest.raises(StreamRecError, match=r"STREAMREC_CONFIG=.*: no such file"):
        resolve_settings({"STREAMREC_CONFIG": str(tmp_path / "missing.toml")})


def test_every_field_has_one_variable() -> None:
    names = [env_name(field) for field in StreamRecSettings.__struct_fields__]
    assert len(names) == len(set(names))
    assert env_name("temperature") == "STREAMREC_PL_TEMPERATURE"


def test_streamrec_config_prints_values_and_sources_and_hides_the_token(tmp_path: Path) -> None:
    (tmp_path / "streamrec.toml").write_text("epsilon = 0.25\n")
    env = {"PATH": "/usr/bin:/bin", "STREAMREC_ADMIN_TOKEN": "s3cret-token", "STREAMREC_HOLDOUT_SHARE": "0.2"}
    result = subprocess.run(
        [sys.executable, "-m", "streamrec", "config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "0.25" in lines["epsilon"] and "streamrec.toml" in lines["epsilon"]
    assert "0.2" in lines["holdout_share"] and "env STREAMREC_HOLDOUT_SHARE" in lines["holdout_share"]
    assert "default" in lines["retrieval_k"]
    assert "s3cret-token" not in result.stdout and "***" in lines["admin_token"]
    bad = subprocess.run(
        [sys.executable, "-m", "streamrec", "config"],
        cwd=tmp_path,
        env={**env, "STREAMREC_EPSILON": "-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "STREAMREC_EPSILON='-1' is out of range" in bad.stderr
