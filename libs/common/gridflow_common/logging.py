"""structlog JSON logs, with phone and ID-card numbers, and Gridflow's own tokens, masked
wherever they appear."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# The rules live with the rest of the privacy rules; every log line applies them.
from gridflow_common.domain.privacy import mask_contact_fields_in_text, mask_field, mask_reporter
from gridflow_common.domain.privacy import mask_personal_numbers as _mask_numbers

# Gridflow's tokens (gfs_ session, gft_ bearer, gfl_ sign-in link, gfk_ channel key, gfd_ holder
# key, gfr_ a reporter's progress link): a request line carries some in its path or query (a
# progress link, a sign-in link), and every server's access log writes request lines. The prefix
# stays, so a line still says what kind of token was used; a cut-off token is masked too.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])(gf[a-z]_)[A-Za-z0-9_-]{16,}")


def mask_personal_numbers(text: str) -> str:
    """Any Gridflow token cut to its prefix, phone and ID-card numbers masked."""
    # Tokens first: a token's digits could read as a phone number, and masking those first
    # would cut the token in two and leave its second half in clear.
    # Contact fields written as a dict (a reporter in an error's SQL parameters): names and
    # e-mail addresses have no shape a number rule could find.
    return _mask_numbers(mask_contact_fields_in_text(_TOKEN.sub(r"\1***", text)))


# Keys whose value is a person's contact wherever a log call passes one (a reporter, or one of
# its fields); "name" alone is not among them: a logger, an adapter or a queue has a name too.
_CONTACT_KEYS = ("phone", "email", "wechat_openid", "openid")
_REPORTER_KEYS = ("reporter", "contact")


def _mask(value: Any, key: str | None = None) -> Any:
    if key in _REPORTER_KEYS and isinstance(value, dict):
        return mask_reporter(value)
    if key in ("reporters", "contacts") and isinstance(value, (list, tuple)):
        return type(value)(mask_reporter(v) if isinstance(v, dict) else _mask(v) for v in value)
    if key in _CONTACT_KEYS and isinstance(value, str):
        return mask_field(key, value)
    if isinstance(value, str):
        return mask_personal_numbers(value)
    if isinstance(value, dict):
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask(v) for v in value)
    return value


def mask_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict:
    return {key: _mask(value, key) for key, value in event_dict.items()}


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask a standard-library log record in place: its message with the arguments filled in,
    its traceback (SQLAlchemy puts a failed statement's parameters in the exception text) and
    its stack. The traceback is rendered here once and kept in ``exc_text``, which every
    ``logging.Formatter`` uses instead of rendering ``exc_info`` again."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it when it renders the record
        return record
    record.msg, record.args = mask_personal_numbers(message), None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_personal_numbers(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_personal_numbers(record.stack_info)
    return record


class JsonFormatter(logging.Formatter):
    """A standard-library record (nameko, werkzeug, kombu, SQLAlchemy) as one JSON line with the
    keys structlog's lines have (event, level, logger, timestamp, exception), masked like them:
    an operator's log pipeline parses every line of a service's log the same way."""

    def format(self, record: logging.LogRecord) -> str:
        mask_record(record)
        entry: dict[str, Any] = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "timestamp": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
            .isoformat()
            .replace("+00:00", "Z"),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


class MaskingFilter(logging.Filter):
    """The same masking as a filter, for a handler configured by ``logging.config``."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def install_record_masking() -> None:
    """Mask every standard-library record as it is made, whatever logger made it (nameko's
    worker tracebacks, SQLAlchemy, kombu) and whatever handlers a ``dictConfig`` (nameko's
    ``LOGGING``) installs later: the record factory is the one place every record passes,
    and ``dictConfig`` leaves it alone."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_personal_numbers", False):
        return

    def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return mask_record(factory(*args, **kwargs))

    masking_factory.masks_personal_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masking_factory)


_configured = False


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is when it is written, not to the stream
    that was there when logging was configured: a stream replaced and closed since (a test
    runner's capture, a daemon's redirection) must not make a log call raise inside a handler,
    where the exception would fail the unit of work it only meant to describe."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure(level: str = "INFO") -> None:
    install_record_masking()
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(handlers=[handler], level=level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
