"""Every setting is documented in the README's configuration table, and parses as it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmaflow.config import Settings

README = Path(__file__).parents[2] / "README.md"


def _env_name(name: str) -> str:
    field = Settings.model_fields[name]
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"PHARMAFLOW_{name.upper()}"


def _documented(env: str, table: list[str]) -> bool:
    """Listed in full, or as a suffix on a row naming its prefix (`PHARMAFLOW_X_A` / `_B`)."""
    parts = env.split("_")
    for line in table:
        if f"`{env}`" in line:
            return True
        for cut in range(2, len(parts)):
            prefix, suffix = "_".join(parts[:cut]) + "_", "_" + "_".join(parts[cut:])
            if prefix in line and f"`{suffix}`" in line:
                return True
    return False


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_in_the_readme_table(name):
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    assert _documented(_env_name(name), table), f"{_env_name(name)} missing from README"


def test_a_dotenv_in_the_working_directory_is_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PHARMAFLOW_DATA_DIR", raising=False)
    (tmp_path / ".env").write_text("PHARMAFLOW_DATA_DIR=/elsewhere\nPHARMAFLOW_BATCH_SIZE=7\n")
    assert Settings().batch_size == 100_000 and Settings().data_dir == Path("data")
    asked = Settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    assert asked.batch_size == 7 and asked.data_dir == Path("/elsewhere")


def test_secrets_dir_moves_the_key_files_out_of_the_data_dir(tmp_path):
    inside = Settings(data_dir=tmp_path / "d")
    assert inside.key_dir == (tmp_path / "d" / "secrets").resolve()
    outside = Settings(data_dir=tmp_path / "d", secrets_dir=tmp_path / "keys")
    assert outside.key_dir == (tmp_path / "keys").resolve()
