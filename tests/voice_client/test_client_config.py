"""Settings: defaults, validation errors that name the variable, the env file syntax."""

from __future__ import annotations

from pathlib import Path

import pytest
from voice_client.cli import main
from voice_client.config import ConfigError, load_config
from voice_client.envfile import EnvFileError, parse_env_text, read_env_file

EXAMPLE = Path(__file__).resolve().parents[2] / "voice_client" / "voice-client.env.example"


def test_defaults_follow_the_hardware_and_the_design():
    config = load_config({"SERVER_URL": "https://voice.example.com/"})
    assert config.server_url == "https://voice.example.com"
    assert (config.button_pin, config.encoder_clk_pin, config.encoder_dt_pin, config.amp_shutdown_pin) == (
        17,
        22,
        23,
        27,
    )
    assert (config.sample_rate, config.channels, config.opus_bitrate, config.volume_step) == (
        48000,
        2,
        64000,
        5,
    )
    assert config.heartbeat_interval == 300
    assert config.device_timezone == "UTC"
    assert config.state_dir == Path("/var/lib/voice-client")
    assert config.runtime_dir == Path("/run/voice-client")
    assert config.identity_file == Path("/var/lib/voice-client/device_uuid")
    assert config.gpio_pin_factory is None


def test_the_example_env_file_is_valid():
    config = load_config(read_env_file(EXAMPLE))
    assert config.server_url == "https://voice.example.com"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SERVER_URL", "voice.example.com", "http:// or https://"),
        ("SERVER_URL", "ftp://voice.example.com", "http:// or https://"),
        ("SERVER_URL", "http://host:99999", "port"),
        ("DEVICE_TIMEZONE", "Mars/Olympus_Mons", "IANA"),
        ("BUTTON_PIN", "seventeen", "not an integer"),
        ("ENCODER_CLK_PIN", "40", "out of range"),
        ("SAMPLE_RATE", "100", "out of range"),
        ("CHANNELS", "0", "out of range"),
        ("OPUS_BITRATE", "64k", "not an integer"),
        ("VOLUME_STEP", "0", "out of range"),
        ("MICROPHONE_GAIN", "nan", "out of range"),
        ("HEARTBEAT_INTERVAL", "-5", "out of range"),
        ("LOG_LEVEL", "LOUD", "DEBUG, INFO"),
        ("GPIO_PIN_FACTORY", "wiringpi", "lgpio"),
        ("STATE_DIR", "var/lib/voice-client", "absolute"),
        ("RUNTIME_DIR", "run", "absolute"),
        ("LEGACY_UUID_FILE", "~/.javia_device_uuid", "absolute"),
    ],
)
def test_a_bad_value_is_reported_with_its_variable_and_value(name, value, expected):
    env = {"SERVER_URL": "http://127.0.0.1:8000", name: value}
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{name}={value!r}")
    assert expected in problem


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_config({"SAMPLE_RATE": "x", "BUTTON_PIN": "22", "DEVICE_TIMEZONE": "Nowhere"})
    text = str(caught.value)
    for fragment in (
        "SERVER_URL is not set",
        "SAMPLE_RATE='x'",
        "GPIO22 is already used",
        "DEVICE_TIMEZONE='Nowhere'",
    ):
        assert fragment in text


def test_state_and_runtime_dirs_must_differ():
    with pytest.raises(ConfigError, match="RUNTIME_DIR='/srv/vc': must differ from STATE_DIR"):
        load_config({"SERVER_URL": "http://h", "STATE_DIR": "/srv/vc", "RUNTIME_DIR": "/srv/vc"})


def test_the_api_key_never_shows():
    config = load_config({"SERVER_URL": "http://h", "SERVER_API_KEY": "s3cr3t-key"})
    assert config.server_api_key == "s3cr3t-key"
    assert "s3cr3t" not in repr(config)


def test_env_file_syntax_is_systemds():
    text = "\n".join(
        [
            "# comment",
            "; another comment",
            "",
            "SERVER_URL=http://10.0.0.1:8000",
            "  DEVICE_NAME = kitchen  ",
            'QUOTED="a \\"quoted\\" value"',
            "SINGLE='no \\n escapes'",
            "INLINE=value # not a comment",
            "LONG=one \\",
            "two",
        ]
    )
    values = parse_env_text(text)
    assert values == {
        "SERVER_URL": "http://10.0.0.1:8000",
        "DEVICE_NAME": "kitchen",
        "QUOTED": 'a "quoted" value',
        "SINGLE": "no \\n escapes",
        "INLINE": "value # not a comment",
        "LONG": "one two",
    }


def test_a_bad_env_file_line_is_named_by_number_and_never_echoes_a_value():
    with pytest.raises(EnvFileError) as caught:
        parse_env_text("SERVER_URL=http://h\nexport SERVER_API_KEY=topsecret\n", "voice-client.env")
    assert "voice-client.env:2" in str(caught.value)
    assert "topsecret" not in str(caught.value)


def test_a_missing_env_file_is_a_clear_error(tmp_path, capsys):
    assert main(["status", "--env-file", str(tmp_path / "absent.env")]) == 2
    assert f"environment file {tmp_path / 'absent.env'} does not exist" in capsys.readouterr().err


def test_the_env_file_overrides_the_environment(tmp_path, monkeypatch, capsys):
    env_file = tmp_path / "voice-client.env"
    env_file.write_text(
        f"SERVER_URL=http://127.0.0.1:8000\nSTATE_DIR={tmp_path}/state\nRUNTIME_DIR={tmp_path}/run\n"
    )
    monkeypatch.setenv("STATE_DIR", "/nonexistent/elsewhere")
    assert main(["identity", "--ensure", "--env-file", str(env_file)]) == 0
    assert (tmp_path / "state" / "device_uuid").exists()
    capsys.readouterr()


def test_the_cli_reports_config_errors_with_exit_2(tmp_path, capsys):
    env_file = tmp_path / "voice-client.env"
    env_file.write_text("SERVER_URL=http://127.0.0.1:8000\nSAMPLE_RATE=fast\nSERVER_API_KEY=hunter2\n")
    assert main(["status", "--json", "--env-file", str(env_file)]) == 2
    err = capsys.readouterr().err
    assert "SAMPLE_RATE='fast'" in err
    assert "hunter2" not in err
