"""kt/cli.py: every failure reaches the user as one line, never a traceback (unless asked for)."""

from __future__ import annotations

import pytest

from kt.cli import main


@pytest.mark.parametrize("var, value, words", [
    ("KT_SEED", "abc", "non-negative integer"),
    ("KT_SEED", "-1", "non-negative integer"),
    ("KT_DEVICE", "bogus", "cuda:N"),
    ("KT_API_KEYS", ",,", "no key"),
    ("KT_API_KEYS", "   ", "no key"),  # not the public dev key
])
def test_unusable_environment_settings_name_the_variable(monkeypatch, capsys, var, value, words):
    monkeypatch.setenv(var, value)
    assert main(["store", "counts"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kt store: error: {var}={value!r}") and words in err and "\n" not in err


def test_a_bad_database_url_is_a_usage_error(capsys):
    assert main(["store", "counts", "--db-url", "not-a-database-url"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'not-a-database-url'" in err and "KT_DB_URL or --db-url" in err and "\n" not in err


def test_unexpected_errors_are_one_line_unless_debugging(monkeypatch, capsys):
    unreachable = "postgresql://nobody@127.0.0.1:1/none"  # port 1: connection refused at once
    monkeypatch.delenv("KT_DEBUG", raising=False)
    assert main(["store", "counts", "--db-url", unreachable]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "OperationalError" in err and "KT_DEBUG=1" in err and "\n" not in err
    monkeypatch.setenv("KT_DEBUG", "1")
    with pytest.raises(Exception, match="127.0.0.1"):
        main(["store", "counts", "--db-url", unreachable])


@pytest.mark.parametrize("args, words", [
    (["--preset", "bogus"], "unknown simulator preset 'bogus'"),
    (["--models", "dkt,foo"], "unknown model(s) 'foo'"),
    (["--epochs", "0"], "max_epochs must be an int >= 1"),
])
def test_demo_checks_its_options_before_replacing_the_world(monkeypatch, tmp_path, capsys, args, words):
    monkeypatch.setenv("KT_HOME", str(tmp_path))
    from kt.config import Settings

    world = Settings.from_env().world_dir
    world.mkdir(parents=True)
    (world / "world.json").write_text("{}")
    assert main(["demo", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert (world / "world.json").exists()  # the demo used to delete it before finding the bad option


def test_the_outcome_rule_is_a_setting(tmp_path, monkeypatch, capsys):
    from kt.config import Settings, SettingsError

    rule = tmp_path / "rule.yaml"
    rule.write_text("outcome_rule:\n  read_understood: 0.6\n  ambiguous: zero\n")
    s = Settings.from_env({"KT_HOME": str(tmp_path), "KT_OUTCOME_RULE": str(rule)})
    assert s.outcome_rule().read_understood == 0.6 and s.outcome_rule().ambiguous == "zero"
    assert Settings.from_env({"KT_HOME": str(tmp_path)}).outcome_rule().read_understood == 0.8  # the default
    rule.write_text("read_understod: 0.6\n")  # misspelt: refused at start-up, naming the variable
    with pytest.raises(SettingsError, match="KT_OUTCOME_RULE=.*unknown OutcomeRule key"):
        Settings.from_env({"KT_HOME": str(tmp_path), "KT_OUTCOME_RULE": str(rule)})
    monkeypatch.setenv("KT_OUTCOME_RULE", str(tmp_path / "missing.yaml"))
    assert main(["store", "counts"]) == 2
    err = capsys.readouterr().err
    assert "KT_OUTCOME_RULE=" in err and "missing.yaml: no such file" in err and "Errno" not in err
    rule.write_text("read_understood: 0.6\nambiguous: [zero\n")  # broken YAML: where, not only what
    monkeypatch.setenv("KT_OUTCOME_RULE", str(rule))
    assert main(["store", "counts"]) == 2
    assert f"{rule}:3:1: not valid YAML" in capsys.readouterr().err
