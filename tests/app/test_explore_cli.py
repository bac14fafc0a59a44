"""``kt explore``: the explorer path is resolved from the package; bad ports are clear errors."""

from __future__ import annotations

import socket

from kt.cli import main
from kt.commands.explore import explorer_path, streamlit_command


def test_explorer_is_found_from_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not relative to the working directory
    app = explorer_path()
    assert app.is_file() and app.name == "explorer.py" and app.parent.name == "app"
    cmd = streamlit_command(app, "127.0.0.1", 8765, headless=True)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(app)
    assert cmd[cmd.index("--server.port") + 1] == "8765" and cmd[cmd.index("--server.headless") + 1] == "true"


def test_port_in_use_is_a_one_line_error(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["explore", "--port", str(port), "--headless"]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and "Traceback" not in err


def test_bad_port(capsys):
    assert main(["explore", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
