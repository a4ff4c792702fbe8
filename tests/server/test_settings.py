"""Server settings: flag > env > config file > default, explicit tracking, model config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kronk.errors import ConfigError
from kronk.settings import DEFAULT_MODEL, OPTIONS, load_settings, parse_duration, parse_size


def test_defaults_without_any_source() -> None:
    settings = load_settings({}, {})
    assert settings.host == "127.0.0.1"
    assert settings.port == 11435
    assert settings.default_model == DEFAULT_MODEL
    assert settings.security == "off"
    assert settings.explicit == frozenset()
    assert settings.model_overrides() == {}


def test_every_option_has_matching_flag_and_env_names() -> None:
    for option in OPTIONS:
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.env == "KRONK_" + option.name.upper()


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "kronk.yaml"
    config.write_text("port: 9000\nhost: 0.0.0.0\nslots: 3\nctx-size: 1024\nmodel_ttl: 2m\n")
    env = {"KRONK_CONFIG": str(config), "KRONK_PORT": "9100", "KRONK_SLOTS": "5"}
    settings = load_settings({"port": 9200}, env)
    assert settings.port == 9200  # flag
    assert settings.slots == 5  # env beats the file
    assert settings.host == "0.0.0.0"  # file beats the default
    assert settings.ctx_size == 1024
    assert settings.model_ttl == 120.0
    assert settings.max_models == 3  # default
    assert settings.explicit == {"port", "slots", "host", "ctx_size", "model_ttl"}


def test_flag_config_path_beats_env_config_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("port: 1111\n")
    b.write_text("port: 2222\n")
    assert load_settings({"config": str(b)}, {"KRONK_CONFIG": str(a)}).port == 2222


def test_only_explicit_model_options_become_overrides() -> None:
    settings = load_settings({"slots": 2, "threads": 1}, {"KRONK_FLASH_ATTN": "off"})
    assert settings.model_overrides() == {"slots": 2, "threads": 1, "flash_attn": "off"}
    pool = settings.pool_settings()
    assert pool.overrides == {"slots": 2, "threads": 1, "flash_attn": "off"}
    # the catalog's value survives where the operator set nothing, and loses where they did
    model = pool.settings_for("m", {"ctx_size": 8192, "slots": 8})
    assert model.ctx_size == 8192
    assert model.slots == 2


def test_model_config_file_wins_for_its_model(tmp_path: Path) -> None:
    per_model = tmp_path / "models.yaml"
    per_model.write_text("models:\n  org/big:\n    ctx-size: 16384\n    slots: 1\n    sampling: {temperature: 0.2}\n")
    settings = load_settings({"model_config": str(per_model), "slots": 4}, {})
    pool = settings.pool_settings()
    big = pool.settings_for("org/big", {"slots": 8})
    assert (big.ctx_size, big.slots, big.sampling) == (16384, 1, {"temperature": 0.2})
    assert pool.settings_for("other").slots == 4


def test_env_booleans_sizes_and_durations() -> None:
    settings = load_settings({}, {"KRONK_PRELOAD": "no", "KRONK_MAX_BODY_SIZE": "2MiB", "KRONK_MODEL_TTL": "1.5h"})
    assert settings.preload is False
    assert settings.max_body_size == 2 * 1024 * 1024
    assert settings.model_ttl == 5400.0
    assert parse_size("10mb") == 10_000_000
    assert parse_duration(90) == 90.0


@pytest.mark.parametrize(
    ("flags", "env", "needle"),
    [
        ({}, {"KRONK_PORT": "eighty"}, "KRONK_PORT"),
        ({"security": "maybe"}, {}, "--security"),
        ({}, {"KRONK_FLASH_ATTN": "sometimes"}, "KRONK_FLASH_ATTN"),
        ({"port": 70000}, {}, "port"),
        ({"slots": 0}, {}, "slots"),
        ({}, {"KRONK_MAX_BODY_SIZE": "lots"}, "KRONK_MAX_BODY_SIZE"),
    ],
)
def test_bad_values_are_config_errors_naming_the_source(flags: dict, env: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(flags, env)
    assert needle in str(info.value)


def test_config_file_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"config": str(tmp_path / "missing.yaml")}, {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings({"config": str(bad)}, {})
    typo = tmp_path / "typo.yaml"
    typo.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings({"config": str(typo)}, {})
    models = tmp_path / "models.yaml"
    models.write_text("m:\n  colour: red\n")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings({"model_config": str(models)}, {})


def test_base_url_for_wildcard_hosts() -> None:
    assert load_settings({"host": "0.0.0.0", "port": 1}, {}).base_url == "http://127.0.0.1:1"
    assert load_settings({"host": "::1", "port": 2}, {}).base_url == "http://[::1]:2"


def test_deterministic_from_each_source_and_per_model(tmp_path: Path) -> None:
    assert load_settings({"deterministic": True}, {}).model_overrides() == {"deterministic": True}
    assert load_settings({}, {"KRONK_DETERMINISTIC": "yes"}).deterministic is True
    config = tmp_path / "kronk.yaml"
    config.write_text("deterministic: true\n")
    assert load_settings({"config": str(config)}, {}).pool_settings().settings_for("m").deterministic is True
    per_model = tmp_path / "models.yaml"
    per_model.write_text("models:\n  org/exact:\n    deterministic: true\n")
    pool = load_settings({"model_config": str(per_model)}, {}).pool_settings()
    assert pool.settings_for("org/exact").deterministic is True
    assert pool.settings_for("other").deterministic is False  # off unless asked: it costs speed


def test_deterministic_needs_flash_attention() -> None:
    with pytest.raises(ConfigError, match="deterministic needs flash attention"):
        load_settings({"deterministic": True, "flash_attn": "off"}, {})
    assert load_settings({"deterministic": True, "flash_attn": "auto"}, {}).deterministic is True


def test_each_setting_has_one_name_and_old_spellings_still_read(tmp_path: Path) -> None:
    per_model = tmp_path / "models.yaml"
    per_model.write_text("models:\n  a:\n    ctx-size: 1024\n    flash_attn: 'off'\n"
                         "  b:\n    context_size: 2048\n    flash-attention: 'on'\n")
    pool = load_settings({"model_config": str(per_model)}, {}).pool_settings()
    assert (pool.settings_for("a").ctx_size, pool.settings_for("a").flash_attn) == (1024, "off")
    assert (pool.settings_for("b").ctx_size, pool.settings_for("b").flash_attn) == (2048, "on")
    # a catalog entry's or a pushed model's config in the old spelling too
    assert pool.settings_for("c", {"context_size": 512}).ctx_size == 512
    # every per-model flag is the ModelSettings field of the same name
    assert load_settings({"ctx_size": 4096, "flash_attn": "on"}, {}).model_overrides() == {
        "ctx_size": 4096, "flash_attn": "on"}


def test_each_option_is_declared_once_as_a_server_settings_field() -> None:
    """OPTIONS is read from ServerSettings' fields: same names, defaults and order, and every
    per-model option defaults to unset and names a ModelSettings field."""
    import dataclasses

    from kronk.sdk.settings import ModelSettings
    from kronk.settings import ServerSettings, setting

    fields = [f for f in dataclasses.fields(ServerSettings) if f.name in {o.name for o in OPTIONS}]
    assert [f.name for f in fields] == [o.name for o in OPTIONS]
    assert [f.default for f in fields] == [o.default for o in OPTIONS]
    model_fields = {f.name for f in dataclasses.fields(ModelSettings)}
    for option in OPTIONS:
        if option.per_model:
            assert option.default is None and option.name in model_fields, option.name
    with pytest.raises(TypeError, match="per-model"):
        setting(str, 3, "a per-model option with a default", per_model=True)


@pytest.mark.parametrize(("flags", "environ", "message"), [
    ({"slots": 0}, {}, "--slots: must be at least 1, got 0"),
    ({}, {"KRONK_MAX_BODY_SIZE": "10"}, "KRONK_MAX_BODY_SIZE: must be at least 1KiB, got 10"),
    ({"port": 70000}, {}, "--port: must be between 0 and 65535, got 70000"),
    ({"keepalive": "0"}, {}, "--keepalive: must be more than 0, got 0.0"),
])
def test_an_option_out_of_range_names_its_source(flags: dict, environ: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, environ)
    assert str(caught.value) == message


def test_settings_built_in_code_are_range_checked_too() -> None:
    from kronk.settings import ServerSettings

    with pytest.raises(ConfigError, match="spec_draft_max must be between 0 and 64, got 65"):
        ServerSettings(spec_draft_max=65).validate()
    with pytest.raises(ConfigError, match="deterministic needs flash attention"):
        ServerSettings(deterministic=True, flash_attn="off").validate()
    ServerSettings().validate()
