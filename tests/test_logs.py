"""roost.logs: the JSON format, and what configure_logging sets up (in a fresh interpreter,
since it changes the process's logging)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

from roost.logs import JsonFormatter
from tests.timing import seconds


def test_json_formatter() -> None:
    logger = logging.getLogger("roost.test")
    record = logger.makeRecord(
        "roost.session",
        logging.INFO,
        __file__,
        1,
        "ended %s",
        ("x",),
        None,
        extra={"endpoint": "/chat", "close_code": 1000, "other": object},
    )
    data = json.loads(JsonFormatter().format(record))
    assert data.pop("time").endswith("+00:00")
    assert data == {
        "level": "INFO",
        "logger": "roost.session",
        "message": "ended x",
        "endpoint": "/chat",
        "close_code": 1000,
        "other": str(object),
    }
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logger.makeRecord("roost", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    data = json.loads(JsonFormatter().format(failed))
    assert data["message"] == "oops" and "ValueError: boom" in data["exception"]


def configured(code: str) -> list[str]:
    """stderr lines of a fresh interpreter that runs ``code`` after ``import logging``."""
    done = subprocess.run(
        [sys.executable, "-c", "import logging\n" + textwrap.dedent(code)],
        capture_output=True,
        timeout=seconds(30),
        check=True,
    )
    return done.stderr.decode().splitlines()


def test_text_with_the_access_log_on() -> None:
    lines = configured(
        """
        from roost.logs import configure_logging
        configure_logging("INFO", access_log=True)
        logging.getLogger("roost").info("hello")
        logging.getLogger("roost.access").info('1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1')
        logging.getLogger("roost.session").info("session ended")
        logging.getLogger("roost").debug("not at INFO")
        """
    )
    assert len(lines) == 3
    assert lines[0].endswith(" INFO roost: hello")
    assert lines[1] == '1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1'  # the common format alone
    assert lines[2].endswith(" INFO roost.session: session ended")


def test_json_with_both_structured_logs_off() -> None:
    lines = configured(
        """
        from roost.logs import configure_logging
        configure_logging("INFO", log_format="json", session_log=False)
        logging.getLogger("roost.access").info("request")
        logging.getLogger("roost.session").info("session ended")
        logging.getLogger("roost.hub").warning("redis down", extra={"url": "redis://x"})
        """
    )
    (line,) = lines
    record = json.loads(line)
    assert (record["logger"], record["message"], record["url"]) == (
        "roost.hub",
        "redis down",
        "redis://x",
    )


def test_a_program_s_own_logging_setup_is_kept() -> None:
    lines = configured(
        """
        logging.basicConfig(level="WARNING", format="mine: %(message)s")
        from roost.logs import configure_logging
        configure_logging("DEBUG", log_format="json", access_log=True)
        logging.getLogger("roost").info("not shown: the program said WARNING")
        logging.getLogger("roost").warning("shown")
        """
    )
    assert lines == ["mine: shown"]
