"""Log lines: one JSON object per line with the service, the request id, (in workers) the
job and (when traces are exported) the trace id, and personal data scrubbed before anything
is written.

Scrubbing is a filter on the handler, so it covers every logger (ours, uvicorn's, arq's,
SQLAlchemy's) and both formats. It redacts the values of known personal-data fields
wherever a message or traceback spells them as ``field=value`` or ``"field": value`` (a
recipient's name, phone and address of SPEC §3.6, e-mail, identity numbers), the input
values pydantic echoes in its errors, SQL parameters, and bearer tokens.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from service_kit import tracing
from service_kit.correlation import job_var, request_id_var, service_var

REDACTED = "[redacted]"

PII_FIELDS = (
    "recipient_name",
    "phone",
    "mobile",
    "email",
    "address",
    "address_line",
    "postal_code",
    "id_number",
    "id_card",
    "bank_account",
    "account_number",
    "password",
    "input_value",
)
_QUOTED_VALUE = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
_FIELD = re.compile(
    r"""(?P<key>["']?\b(?:""" + "|".join(PII_FIELDS) + r""")\b["']?\s*[:=]\s*)"""
    r"""(?P<value>""" + _QUOTED_VALUE + r"""|[^\s,;&}\])]+)""",
    re.IGNORECASE,
)
# SQLAlchemy appends a failed statement's parameters (engines hide them; this catches any
# engine or message that does not).
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*(?:\n|\(Background|$))", re.DOTALL)
_BEARER = re.compile(r"\b(Bearer\s+)[\w\-.~+/]+=*", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")


def scrub(text: str) -> str:
    """``text`` with the values of personal-data fields, SQL parameters and tokens
    replaced by ``[redacted]``."""
    if not text:
        return text
    text = _SQL_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    text = _FIELD.sub(lambda m: m.group("key") + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _JWT.sub(REDACTED, text)


class ContextFilter(logging.Filter):
    """Stamps every record with its service, request id and job, and scrubs its message and
    traceback. It runs where the record is created, so the context is the caller's."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_scrubbed", False):
            return True  # another handler of ours already did
        record.service = service_var.get() or getattr(record, "service", None) or self.service
        record.request_id = request_id_var.get()
        record.job = job_var.get()
        record.trace_id = tracing.trace_id() if tracing.active() else None
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: _scrub_value(v) for k, v in fields.items()}
        record._scrubbed = True
        return True


def _scrub_value(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, msg, request_id, job and
    trace_id when known, the structured ``fields`` a caller passed (``extra={"fields":
    {...}}``), exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        job = getattr(record, "job", None)
        if job:
            entry["job"] = job
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            entry["trace_id"] = trace_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The human format (``LOG_JSON=false``), with the same context."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(service)s %(name)s %(message)s%(context)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"{name}={value}"
            for name in ("request_id", "job")
            if (value := getattr(record, name, None))
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{k}={v}" for k, v in fields.items())
        record.context = (" " + " ".join(parts)) if parts else ""
        if not hasattr(record, "service"):
            record.service = "-"
        return super().format(record)


class ArqJobLines(logging.Filter):
    """Drops arq's line at the start and end of every job: they print the job's arguments
    (payloads naming users) and results; the worker's own line per job replaces them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO
            and isinstance(record.msg, str)
            and (" → " in record.msg or " ← " in record.msg)
        )


def log_handler(service: str | None, json_logs: bool = True, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter() if json_logs else PlainFormatter())
    return handler


def configure_logging(
    level: str = "INFO", json_logs: bool = True, *, service: str | None = None
) -> None:
    """Every log line of the process goes to stderr through one handler, named ``service``
    unless the context names another."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(service, json_logs)]
    root.setLevel(level)
    # uvicorn's own access log is off (``serve`` passes access_log=False): the request
    # middleware writes one with the request id, route and duration instead.
    for name in ("uvicorn", "uvicorn.error", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx writes a line per call with its full URL (query included); the called service's
    # access line, with the same request id, says the same.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    arq_worker = logging.getLogger("arq.worker")
    if not any(isinstance(f, ArqJobLines) for f in arq_worker.filters):
        arq_worker.addFilter(ArqJobLines())
