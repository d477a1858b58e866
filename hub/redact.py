"""Masking of secrets and personal data wherever the hub writes text (logs, audit rows).

Secrets by key name: any `key` + `=`/`:`/`=>` + value whose key name *contains* one of the
sensitive stems (secret, password, passwd, passphrase, token, api key, access key, private key,
credential, auth, cookie, session id, and the personal ids cpf / ssn / national id) — so
`AWS_SECRET_ACCESS_KEY=…`, `DB_PASSWORD=…`, `client_secret=…` all match. The value is masked in
each form it is written in: env / logfmt / query string (unquoted, up to whitespace), JSON and
Python repr (quoted, escapes honoured), JSON escaped once or more (`\\"password\\": \\"…\\"`),
and headers (`Authorization:` and `Cookie:` to the end of the line; `<scheme> <token>` as a pair).
A name that is only a lower-case word like `authentication` / `authenticated` (a setting or prose:
"serving without authentication: anyone who…") keeps a value that is one plain lower-case word; any other value of it
(quoted, with a digit, a symbol or capitals inside, or `<scheme> <token>`) is masked.

Secrets by shape: bearer tokens, JWTs, our API keys and common vendor tokens, credentials inside
URLs (`scheme://user:pass@`), PEM private-key blocks (multi-line; an unterminated block is masked
to the end). Personal data: email addresses, phone numbers, US SSNs, UK national insurance
numbers, IBANs, card numbers (Luhn-checked), Brazilian CPF numbers (formatted `123.456.789-09`
always; 11 bare digits only when their check digits are valid, so most other numbers survive).

Every pattern runs in linear time (names are bounded, quantifiers possessive), so a caller cannot
slow the hub down with a crafted megabyte of text.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import urllib.parse
from collections.abc import Iterable

MASK = "[masked]"

_NAME_CHARS = "A-Za-z0-9_.-"
_SENSITIVE_NAME = re.compile(
    r"(?i)secret|passw(?:or)?d|passphrase|(?<![a-z0-9])pass(?![a-z0-9])|(?:db|pg|sql|_)pass(?![a-z])"
    r"|[a-z0-9]_?pwd(?![a-z])|token|api[_.-]?key|access[_.-]?key"
    r"|(?:private|signing|encryption|client|master|license|stripe|app)[_.-]?keys?(?![a-z])"
    r"|credential|authori[sz]|auth(?!or)|cookie|session[_.-]?id|cpf|ssn|national[_.-]?id"
)
_PAIR = re.compile(
    rf"(?<![{_NAME_CHARS}])(?P<name>[{_NAME_CHARS}]{{1,256}}+)"  # possessive: a word is scanned once
    r"(?P<close>\\*[\"'])?"  # the key's closing quote, at any escaping level
    r"(?P<sep>[ \t]*+(?:=>|:=|%3[dD]|[:=])[ \t]*+)"
)
_QUOTE_OPEN = re.compile(r"\\*[\"']")
_UNQUOTED_VALUE = re.compile(r"[^\s\"'\\]++")
_SCHEME_TOKEN = re.compile(r"[ \t]++[^\s\"'\\]++")
_AUTH_SCHEMES = frozenset({"basic", "bearer", "digest", "token", "negotiate", "ntlm", "dpop", "mac", "hawk", "aws4-hmac-sha256"})
_PLACEHOLDERS = frozenset({MASK, "[redacted]"})
_WHOLE_LINE_HEADERS = re.compile(r"(?i)(?:proxy-)?authorization|(?:set-)?cookie")
_AUTHENTICATION_WORD = re.compile(r"authenticat(?:e[ds]?|ing|ions?)")
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]{0,19}")
"""A word as prose or a setting writes it (`anyone`, `required`, `None`); not an all-capitals or mixed-case code."""

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM = re.compile(
    r"(-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----).*?(?:(-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)|\Z)",
    re.DOTALL,
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)(?<![A-Za-z0-9])bearer\s++[A-Za-z0-9._~+/=-]{8,}+"), "Bearer " + MASK),
    (re.compile(r"(?<![A-Za-z0-9])mcphub_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}+"), MASK),
    (re.compile(r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+"), MASK),
    (re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}+|xox[abprs]-[A-Za-z0-9-]{10,}+|(?:AKIA|ASIA)[0-9A-Z]{16}"
                r"|sk-[A-Za-z0-9_-]{20,}+|github_pat_[A-Za-z0-9_]{22,}+|glpat-[A-Za-z0-9_-]{20,}+"
                r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}+|AIza[0-9A-Za-z_-]{30,}+|npm_[A-Za-z0-9]{30,}+|hf_[A-Za-z0-9]{30,}+)"), MASK),
    # command-line flags and XML elements named like a secret: `--password x`, `<token>x</token>`
    (re.compile(r"(?i)(--?[a-z0-9_-]{0,40}(?:password|passwd|secret|token|api-?key)[a-z0-9_-]{0,40})(=|[ \t]++)[^\s\"']++"),
     r"\1\2" + MASK),
    (re.compile(r"(?i)(<([a-z0-9_:-]{0,40}(?:password|passwd|secret|token|api_?key)[a-z0-9_:-]{0,40})>)[^<]{0,4096}+(</\2>)"),
     r"\1" + MASK + r"\3"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,20}://)[^\s/@:\"']{0,200}+:[^\s/@\"']{1,500}+@"), r"\1" + MASK + "@"),
    (re.compile(r"\b[A-Za-z0-9._%+-]{1,64}+@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,}\b"), MASK),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), MASK),
    (re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?!\d)"), MASK),  # CPF, formatted
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), MASK),
    (re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"), MASK),
    (re.compile(r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b"), MASK),
    (re.compile(r"(?<!\w)\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"), MASK),
]
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_BARE_CPF = re.compile(r"(?<![\d.-])\d{11}(?![\d])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return MASK if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def cpf_valid(digits: str) -> bool:
    """Whether 11 digits carry valid CPF check digits (and are not one digit repeated)."""
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit() or len(set(digits)) == 1:
        return False
    numbers = [int(d) for d in digits]
    for position in (9, 10):
        total = sum(n * w for n, w in zip(numbers[:position], range(position + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != numbers[position]:
            return False
    return True


def _mask_bare_cpf(match: re.Match[str]) -> str:
    return MASK if cpf_valid(match.group(0)) else match.group(0)


def _closing_quote(text: str, start: int, quote: str, level: int, stop: int) -> int:
    """Index just past the quote that closes a string opened by `level` backslashes + `quote`
    (at that escaping level an inner quote carries 2·level+1 backslashes, a closing one `level`
    modulo 2·level+2); `stop` if none closes it before."""
    index = start
    while True:
        index = text.find(quote, index, stop)
        if index < 0:
            return stop
        run = 0
        while index - run - 1 >= start and text[index - run - 1] == "\\":
            run += 1
        if run % (2 * level + 2) == level:
            return index + 1
        index += 1


def _value_end(text: str, start: int, name: str, separator: str) -> int:
    """Where the value that starts at `start` ends (`start` when there is no value)."""
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    opened = _QUOTE_OPEN.match(text, start)
    if opened is not None:
        level = len(opened.group(0)) - 1
        return _closing_quote(text, opened.end(), opened.group(0)[-1], level, line_end)
    if ":" in separator and _WHOLE_LINE_HEADERS.fullmatch(name):
        return line_end  # a header's value runs to the end of its line
    value = _UNQUOTED_VALUE.match(text, start)
    if value is None:
        return start
    end = value.end()
    if value.group(0).lower() in _AUTH_SCHEMES:
        token = _SCHEME_TOKEN.match(text, end)
        end = token.end() if token is not None else end
    return end


def _mask_pairs(text: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _PAIR.finditer(text):
        # Only the name and separator are consumed, so a value is scanned for pairs of its own.
        if match.start() < position or not _SENSITIVE_NAME.search(match.group("name")):
            continue  # inside a value already masked, or not a secret's name
        value_start = match.end()
        value_end = _value_end(text, value_start, match.group("name"), match.group("sep"))
        value = text[value_start:value_end]
        if value_end == value_start or value.strip("\\\"'") in _PLACEHOLDERS:
            continue  # no value, or one already hidden
        if _PLAIN_WORD.fullmatch(value) and value.lower() not in _AUTH_SCHEMES and _only_authentication(match.group("name")):
            continue  # "without authentication: anyone …", "authenticated=true": a setting or prose, no secret
        opened = _QUOTE_OPEN.match(text, value_start)
        parts.append(text[position:value_start])
        if opened is not None and value_end - value_start > len(opened.group(0)):
            parts.append(f"{opened.group(0)}{MASK}{opened.group(0)}")  # keep JSON well-formed
        else:
            parts.append(MASK)
        position = value_end
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


def _only_authentication(name: str) -> bool:
    """Whether `name` is just a word like `authentication`, written in lower case as prose and settings
    write it: an identifier holding it (`SMTP_AUTHENTICATION=letmein`, `AUTHENTICATION=…`) is a
    variable that may hold a password (re-check), and its value is masked."""
    return name.islower() and _AUTHENTICATION_WORD.fullmatch(name) is not None


def _mask_pem(match: re.Match[str]) -> str:
    return f"{match.group(1)}{MASK}{match.group(2) or ''}"


_known: tuple[str, ...] = ()
"""Secret values the hub was given (`remember_secrets`), longest first: masked wherever they appear."""
KNOWN_LIMIT = 4096
"""At most this many remembered spellings (a config holds far fewer; a bound all the same)."""
_KNOWN_NAME = re.compile(r"(?i)key|secret|token|pass|pwd|auth|cred|cookie|session|signature|private")
"""Names whose values are remembered even when short or plain (`_secret_like`)."""
_SETTING = re.compile(r"(?i)true|false|none|null|yes|no|on|off")
_ORDINARY = re.compile(r"(?i)[/~.].*|[a-z][a-z0-9+.-]*://[^@\s]*|[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?|[a-z]+/[a-z0-9.+-]+")
"""Values of no secret-sounding name that read as settings: paths, URLs without user info, host names,
IP addresses and versions (`127.0.0.1`, `db.internal:5432`, `1.2.3`), media types (`application/json`)."""
_WORD = re.compile(r"[A-Za-z_.-]+")
UNNAMED_MIN = 16
"""A value of no secret-sounding name is remembered only from this length on (vendors' keys are longer)."""


def _secret_like(name: str, value: str) -> bool:
    """Whether a configured value is remembered as a secret (`remember_secrets`)."""
    if value != value.strip() or value in _PLACEHOLDERS or _SETTING.fullmatch(value):
        return False
    if _KNOWN_NAME.search(name):  # a secret's name: any value but a short word or number (a path too:
        # an AWS secret access key may start with `/`)
        return len(value) >= 6 and not (_WORD.fullmatch(value) and len(value) < 12) \
            and not (value.isdigit() and len(value) < 6)
    # any name: a token-like value (16+ characters — a region, a model or locale name, a script's file
    # name are shorter: re-check 16 — no spaces, letters and digits both), not a setting
    return (len(value) >= UNNAMED_MIN and not any(ch.isspace() for ch in value) and any(ch.isalpha() for ch in value)
            and any(ch.isdigit() for ch in value) and not _ORDINARY.fullmatch(value))


def remember_secrets(named_values: Iterable[tuple[str, str]]) -> None:
    """Mask these values from now on wherever the hub writes text, in whatever sentence a downstream
    server or library repeats them (`invalid key 'Zq8…'`, a query string, stderr): the credentials
    the operator configured for servers (`env`, `headers`, URL query and user info, `caller_secret`),
    which no pattern can recognise by shape. Kept: under a secret-sounding name (key, token, pass,
    auth, …) any value of 6+ characters but a short word or number; under any name a token-like value
    (16+ characters, no spaces, letters and digits both) that does not read as a setting (a path, a URL
    without user info, a host name or address, a version, a media type). Never booleans. Also masked:
    a kept value's JSON- and URL-escaped spellings (`+` kept or escaped). Values only ever join (a
    reloaded config adds its own)."""
    global _known
    found = set(_known)
    for name, value in named_values:
        if isinstance(value, str) and len(found) < KNOWN_LIMIT and _secret_like(name, value):
            found.update({value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
                          urllib.parse.quote_plus(value), urllib.parse.quote(value, safe="+/=")})
    if len(found) != len(_known):
        _known = tuple(sorted(found, key=len, reverse=True))
        _mask_remembered.cache_clear()


def known_secrets() -> bool:
    """Whether any configured secret is remembered (`remember_secrets`)."""
    return bool(_known)


def mask_known(text: str) -> str:
    """`text` with each remembered secret value masked (and nothing else: for a server's own words in
    a tool's error, which must keep its meaning)."""
    for value in _known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask(text: str) -> str:
    """Replace every secret or PII pattern in `text` with `[masked]`, and every remembered secret value."""
    if _known:
        text = mask_known(text)
    if "PRIVATE KEY" in text:
        text = _PEM.sub(_mask_pem, text)
    text = _mask_pairs(text)
    text = _CARD.sub(_mask_card, text)
    text = _BARE_CPF.sub(_mask_bare_cpf, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class LineMasker:
    """Masks a stream of lines (a child's stderr), where a PEM private key spans many lines:
    from a BEGIN line to its END line (at most `max_block` lines) nothing is passed on but the
    masked BEGIN line. Lines are cut to `max_chars` (masking a megabyte would stall the loop)."""

    def __init__(self, max_block: int = 400, max_chars: int = 4096) -> None:
        self._max_block = max_block
        self._max_chars = max_chars
        self._inside = 0
        """Lines into an open private-key block (0: not in one)."""

    def line(self, text: str) -> str | None:
        """The line as it may be logged, or None to drop it."""
        if self._inside:
            self._inside += 1
            if _PEM_END.search(text) or self._inside > self._max_block:
                self._inside = 0
            return None
        begin = _PEM_BEGIN.search(text)
        if begin is not None and not _PEM_END.search(text, begin.end()):
            self._inside = 1
        if len(text) <= self._max_chars:
            return mask(text)
        # Masked with some text past the cut, so a secret straddling it is still recognised.
        return f"{mask(text[: self._max_chars + 512])[: self._max_chars]}… ({len(text) - self._max_chars} more characters)"


NAME_LIMIT = 128
_NAME_KEY = secrets.token_bytes(16)


def bounded_name(name: str, limit: int = NAME_LIMIT) -> str:
    """A caller-supplied name (an unknown tool's, say) as the hub may store or log it: masked,
    and cut to `limit` characters plus `…#<digest>` when longer. The digest is keyed per process,
    so the same long name reads the same within one run but cannot be reversed by guessing."""
    if len(name) <= limit:
        return mask(name)
    digest = hmac.new(_NAME_KEY, name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
    # Masked with some text after the cut, so a secret that straddles it is still recognised.
    return f"{mask(name[:limit + 512])[:limit]}…#{digest}"


class Premasked(str):
    """A log format string whose arguments the caller masked itself (`mask_short`): `mask_record`
    leaves such a record as it is. For lines logged on every call, where masking the whole message
    would cost more than the rest of the call's work in the hub."""


def mask_short(value: object) -> str:
    """`mask(str(value))`, remembered for short values: the names a per-call line repeats (tool,
    server, principal) are masked once, not on every call."""
    text = str(value)
    return _mask_remembered(text) if len(text) <= 256 else mask(text)


@functools.lru_cache(maxsize=4096)
def _mask_remembered(text: str) -> str:
    return mask(text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks the fully formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


LOG_MESSAGE_LIMIT = 16_384
"""Longer log messages are cut (a log line is for people; payloads belong elsewhere)."""


def mask_record(record: logging.LogRecord) -> None:
    """Mask a record's message in place, cut to `LOG_MESSAGE_LIMIT` characters (once: a record
    already masked is left alone)."""
    if getattr(record, "_mcp_hub_masked", False):
        return
    if isinstance(record.msg, Premasked):
        record._mcp_hub_masked = True  # type: ignore[attr-defined]
        return
    if record.name == "uvicorn.access" and isinstance(record.args, tuple):
        # uvicorn's AccessFormatter unpacks args (client, method, path, version, status): mask each
        # one in place (a query string may carry a token) and keep the shape it needs.
        record.args = tuple(mask(arg) if isinstance(arg, str) else arg for arg in record.args)
        record._mcp_hub_masked = True  # type: ignore[attr-defined]
        return
    try:
        message = record.getMessage()
    except Exception:  # boundary: a malformed format string must not lose the record
        message = f"{record.msg!r} {record.args!r}"
    if len(message) > LOG_MESSAGE_LIMIT:
        message = f"{message[:LOG_MESSAGE_LIMIT]}… ({len(message) - LOG_MESSAGE_LIMIT} more characters not logged)"
    masked = mask(message)
    if masked != message or record.args:
        record.msg, record.args = masked, None
    record._mcp_hub_masked = True  # type: ignore[attr-defined]
