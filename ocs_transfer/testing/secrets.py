"""Looking for leaked credentials in everything a run showed or kept.

A test registers the secret values it handed to ocs_transfer (tokens, keys,
passwords, a session token) with :meth:`SecretScan.add`, runs the commands
or library calls under test with every logger at DEBUG
(:meth:`SecretScan.debug_logging`: ours and the HTTP and cloud libraries'),
and passes what users would see to :meth:`SecretScan.check`: command output,
reprs, exception texts. :meth:`SecretScan.check_ledger` reads every table of
a ledger; :meth:`SecretScan.hook_payloads` records what the
``ocs_transfer_transfer_finished`` hook was given. The captured log records
are checked when the scan ends.

A value counts as leaked in any of the forms it travels in: as it is,
percent-encoded, and inside base64 (standard or URL-safe) at any alignment,
so a token buried in a ``Basic`` header or a JSON web token is found too.
What is captured is what a handler with ocs_transfer's
:class:`~ocs_transfer.redact.RedactingFilter` receives: the CLI installs that
filter, and :func:`~ocs_transfer.redact.install_log_redaction` is how a
service does.

Findings name the secret (``"session token"``) and where it was seen, never
the value.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

from ..redact import RedactingFilter, Secret

__all__ = ["DEBUG_LOGGERS", "SecretScan", "cli_round_trip", "leaked_forms"]

#: Loggers raised to DEBUG during a scan, besides every logger that exists by then.
DEBUG_LOGGERS = (
    "",
    "ocs_transfer",
    "botocore",
    "boto3",
    "s3transfer",
    "s3fs",
    "gcsfs",
    "fsspec",
    "urllib3",
    "requests",
    "httpx",
    "httpcore",
    "aiohttp",
    "google",
    "google.auth",
    "google.auth.transport",
    "dropbox",
    "webdav4",
    "wsgidav",
    "cheroot",
    "sqlalchemy.engine",
    "alembic",
)
#: Forms shorter than this are not looked for (they would match by chance).
MIN_FORM = 8


def leaked_forms(value: str) -> set[str]:
    """The strings whose presence in a text shows ``value``: itself, its
    percent-encodings, and the base64 characters determined by its bytes
    alone at each of the three byte alignments (standard and URL-safe)."""
    forms = {value, quote(value, safe=""), quote_plus(value)}
    raw = value.encode("utf-8")
    for shift in range(3):
        bit_start, bit_end = shift * 8, (shift + len(raw)) * 8
        first = -(-bit_start // 6)  # the first character made only of the value's bits
        last = bit_end // 6  # one past the last such character
        padded = b"\0" * shift + raw + b"\0\0"
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(padded).decode()[first:last])
    return {f for f in forms if len(f) >= MIN_FORM}


class _Capture(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.addFilter(RedactingFilter())
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


class SecretScan:
    """The secrets of one test and the places they must not appear."""

    def __init__(self) -> None:
        self._forms: dict[str, str] = {}
        self.log_lines: list[str] = []
        self.payloads: list[str] = []
        self.checked: list[str] = []  #: where :meth:`check` looked, in order
        self._kept: list[tuple[str, str]] = []

    def add(self, name: str, value: str | Secret) -> None:
        """Register a secret by a name for findings (never the value)."""
        text = value.reveal() if isinstance(value, Secret) else value
        if len(text) < MIN_FORM:
            raise ValueError(f"the secret {name!r} is too short to scan for; use at least {MIN_FORM} characters")
        for form in leaked_forms(text):
            self._forms[form] = name

    def findings(self, text: str) -> list[str]:
        """The names of the secrets that ``text`` shows, in some form."""
        return sorted({name for form, name in self._forms.items() if form in text})

    def check(self, where: str, *texts: Any) -> None:
        """Fail if any of ``texts`` (strings, or objects whose ``repr`` and
        ``str`` are checked) shows a registered secret."""
        if not self._forms:
            raise AssertionError("no secret was registered: the scan would check nothing")
        for item in texts:
            text = item if isinstance(item, str) else f"{item!r}\n{item!s}"
            found = self.findings(text)
            assert not found, f"{where} shows {', '.join(found)}"
        self.checked.append(where)

    def keep(self, where: str, text: str) -> None:
        """Check ``text`` when :meth:`debug_logging` ends, so that secrets
        learnt during the run (access tokens a fake issued) count too."""
        self._kept.append((where, text))

    def run_cli(self, env: dict[str, str], *args: str, input: str | None = None, ok: bool = True) -> str:
        """Run ``ocs-transfer -vv ARGS`` in this process (click's runner) and
        keep its output and any traceback for the scan; fail if its success
        is not ``ok``."""
        import traceback

        from click.testing import CliRunner

        from ..cli import main

        result = CliRunner().invoke(main, ["-vv", *args], env=env, input=input, catch_exceptions=True)
        text = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            text += "".join(traceback.format_exception(result.exception))
        self.keep(f"the output of {' '.join(args[:2])}", text)
        assert (result.exit_code == 0) is ok, text
        return text

    def check_ledger(self, url: str) -> int:
        """Fail if any row of any table of the ledger at ``url`` shows a
        secret; returns the number of rows read."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        rows = 0
        try:
            with engine.connect() as conn:
                for table in sqlalchemy.inspect(conn).get_table_names():
                    for row in conn.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')):
                        rows += 1
                        self.check(f"the ledger's {table} table", " ".join(_column_text(v) for v in row))
        finally:
            engine.dispose()
        return rows

    @contextlib.contextmanager
    def debug_logging(self) -> Iterator[None]:
        """Every logger at DEBUG, records captured as a redacting handler
        gets them; checked on exit."""
        handler = _Capture(self.log_lines)
        names = set(DEBUG_LOGGERS) | set(logging.root.manager.loggerDict)
        loggers = [logging.getLogger(n) for n in names]
        saved = [(lg, lg.level, lg.disabled) for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
            lg.disabled = False
        logging.getLogger().addHandler(handler)
        try:
            yield
        finally:
            logging.getLogger().removeHandler(handler)
            for lg, level, disabled in saved:
                lg.setLevel(level)
                lg.disabled = disabled
        self.check("the DEBUG log", "\n".join(self.log_lines))
        for where, text in self._kept:
            self.check(where, text)

    @contextlib.contextmanager
    def hook_payloads(self) -> Iterator[list[str]]:
        """Record what ``ocs_transfer_transfer_finished`` is given (in this
        process) and check it on exit."""
        from .. import plugins
        from ..hookspecs import hookimpl

        seen = self.payloads

        class Recorder:
            @hookimpl
            def ocs_transfer_transfer_finished(self, transfer: Any) -> None:
                seen.append(f"{transfer!r}\n{_attributes(transfer)}")

        with plugins.temporary_plugin(Recorder(), "secret-scan-recorder"):
            yield seen
        self.check("the transfer_finished hook's payloads", "\n".join(seen))


def cli_round_trip(scan: SecretScan, env: dict[str, str], name: str, add: list[str], files: list[str],
                   *, input: str | None = None) -> dict[str, Any]:
    """The commands a user runs for a new destination, each kept for
    ``scan``: ``dest add NAME ADD...`` (or ``dest import`` when ``add`` starts
    with it), ``dest show`` (plain and ``--json``), ``dest list``, ``dest
    test``, ``schedule FILES --to NAME``, ``worker --until-idle``, ``status``.
    Returns ``status --json``. Call it inside :meth:`SecretScan.debug_logging`."""
    import json

    if add and add[0] == "import":
        scan.run_cli(env, "dest", *add, "--name", name, input=input)
    else:
        scan.run_cli(env, "dest", "add", name, *add, input=input)
    scan.run_cli(env, "dest", "show", name)
    scan.run_cli(env, "dest", "show", name, "--json")
    scan.run_cli(env, "dest", "list")
    scan.run_cli(env, "dest", "test", name)
    scan.run_cli(env, "schedule", *files, "--to", name)
    scan.run_cli(env, "worker", "--until-idle", "--poll", "0.05")
    scan.run_cli(env, "status")
    status: dict[str, Any] = json.loads(scan.run_cli(env, "status", "--json"))
    return status


def _column_text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _attributes(obj: Any) -> str:
    import attrs

    fields = attrs.asdict(obj, recurse=False) if attrs.has(type(obj)) else dict(getattr(obj, "__dict__", {}))
    return "\n".join(f"{k}={v!r}" for k, v in fields.items())
