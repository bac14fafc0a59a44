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
