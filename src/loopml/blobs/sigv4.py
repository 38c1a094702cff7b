"""Signed HTTP requests to S3 and S3-compatible stores: credentials, Signature V4, retries.

The S3 backend needs a handful of calls (HEAD, GET, PUT, DELETE, list, multipart upload).
Made with the standard library's ``http.client``, a command that pushes a few objects
starts in milliseconds, where importing ``s3fs`` or ``botocore`` alone costs 0.2-0.5 s.

Credentials are found as the AWS tools find the simple ones: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), else the keys of the profile
(``AWS_PROFILE``, else ``default``) in ``~/.aws/credentials`` or ``~/.aws/config``. Any
other source — an assumed role, SSO, a credential process, a container or instance role —
is left to botocore's credential chain, imported only then. The region comes from
``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile (else ``us-east-1``), and a bucket in
another region is followed once S3 names it. ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
and ``AWS_CA_BUNDLE`` are honoured.

Each thread keeps one connection alive. Connection errors, throttling and 5xx answers are
retried with backoff; every other answer goes back to the caller as a :class:`Response`.
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import http.client
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from loopml.errors import BackendUnavailable

__all__ = ["Credentials", "Response", "S3Client", "find_credentials", "find_region", "sign",
           "signing_key", "xml_values"]

_ATTEMPTS = 5
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_TIMEOUT_S = 60
_UNSIGNED = "UNSIGNED-PAYLOAD"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Bucket names that can be a host name under the S3 certificate (no dots, lower case).
_VIRTUAL_HOST = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
#: Body of a request: bytes, or a file opened anew by the callable for each attempt.
Body = bytes | Callable[[], BinaryIO]


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str = ""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def error(self) -> tuple[str, str]:
        """The error code and message of an S3 error body (empty when there is none)."""
        text = self.body.decode(errors="replace")
        code = re.search(r"<Code>(.*?)</Code>", text)
        message = re.search(r"<Message>(.*?)</Message>", text)
        return (code.group(1) if code else "", message.group(1) if message else "")


def _profile_sections(path: Path, profile: str, *, config: bool) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return {}
    name = f"profile {profile}" if config and profile != "default" else profile
    return dict(parser[name]) if parser.has_section(name) else {}


def _aws_files(env: Mapping[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """The profile name and its sections of ~/.aws/credentials and ~/.aws/config."""
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    home = Path.home() / ".aws"
    credentials = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials")
    config = Path(env.get("AWS_CONFIG_FILE") or home / "config")
    return (profile, _profile_sections(credentials.expanduser(), profile, config=False),
            _profile_sections(config.expanduser(), profile, config=True))


_DELEGATED = ("role_arn", "credential_process", "sso_session", "sso_start_url",
              "web_identity_token_file", "credential_source")


def find_credentials(env: Mapping[str, str] | None = None) -> Credentials | None:
    """Static credentials from the environment or the profile; None when the AWS chain
    holds something else (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                           env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN", ""))
    _, from_credentials, from_config = _aws_files(env)
    if any(key in from_config for key in _DELEGATED) or any(
            key in from_credentials for key in _DELEGATED):
        return None
    for section in (from_credentials, from_config):
        if section.get("aws_access_key_id") and section.get("aws_secret_access_key"):
            return Credentials(section["aws_access_key_id"], section["aws_secret_access_key"],
                               section.get("aws_session_token", ""))
    return None


def find_region(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    return region or _aws_files(env)[2].get("region") or "us-east-1"


def _botocore_credentials() -> Callable[[], Credentials | None]:
    """Credentials from botocore's chain (refreshed by botocore as they expire)."""
    try:
        import botocore.session
    except ImportError:
        return lambda: None
    try:
        found = botocore.session.get_session().get_credentials()
    except Exception as exc:  # botocore's errors, and ValueError for a bad setting
        raise BackendUnavailable(f"the AWS credential chain failed ({exc})") from None
    if found is None:
        return lambda: None

    def frozen() -> Credentials:
        try:
            current = found.get_frozen_credentials()
        except Exception as exc:  # a role or process that can no longer refresh
            raise BackendUnavailable(f"the AWS credentials could not be refreshed ({exc})"
                                     ) from None
        return Credentials(current.access_key, current.secret_key, current.token or "")

    return frozen


class S3Client:
    """Signed requests to one bucket of S3 or of an S3-compatible server (``endpoint_url``,
    addressed by path); safe to share between threads."""

    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "") -> None:
        self.bucket = bucket
        self.region = region or find_region()
        self.endpoint_url = endpoint_url.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._credentials: Callable[[], Credentials | None] | None = None
        self._keys: dict[tuple[str, str, str], bytes] = {}

    # -- addressing ---------------------------------------------------------------------------

    def _target(self) -> tuple[str, str, str]:
        """(scheme, host[:port], path prefix) of the bucket's URL."""
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            return parts.scheme or "https", parts.netloc, f"{parts.path}/{self.bucket}"
        host = f"s3.{self.region}.amazonaws.com"
        if not _VIRTUAL_HOST.fullmatch(self.bucket):  # dotted or legacy names: by path
            return "https", host, f"/{self.bucket}"
        return "https", f"{self.bucket}.{host}", ""

    # -- requests -----------------------------------------------------------------------------

    def request(self, method: str, key: str = "", *, query: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, body: Body = b"",
                sink: Callable[[http.client.HTTPResponse], None] | None = None) -> Response:
        """Send one request (retried as the module docstring says) and return the answer.

        With ``sink``, the body of a 200 or 206 answer is handed to it unread (to stream it
        to a file; it may be called again if the transfer is retried) and
        :attr:`Response.body` is empty. Connection errors left after the retries propagate
        as ``OSError`` or ``http.client.HTTPException``.
        """
        delay = 0.1
        redirected = False
        for attempt in range(_ATTEMPTS):
            try:
                response = self._send(method, key, query or {}, headers or {}, body, sink)
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                if attempt == _ATTEMPTS - 1:
                    raise
            else:
                region = response.headers.get("x-amz-bucket-region", "")
                if (response.status in (301, 400) and region and region != self.region
                        and not redirected and not self.endpoint_url):
                    self.region, redirected = region, True  # the bucket lives elsewhere
                    continue
                if response.status not in _RETRY_STATUS or attempt == _ATTEMPTS - 1:
                    return response
            time.sleep(delay * (1 + random.random()))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, key: str, query: Mapping[str, str],
              headers: Mapping[str, str], body: Body,
              sink: Callable[[http.client.HTTPResponse], None] | None) -> Response:
        scheme, host, prefix = self._target()
        path = quote(f"{prefix}/{key}", safe="/-_.~")
        canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                   for k, v in sorted(query.items()))
        stream = body() if callable(body) else None
        try:
            if stream is not None:
                size = os.fstat(stream.fileno()).st_size
                payload = _UNSIGNED if scheme == "https" else _file_sha256(stream)
            else:
                assert isinstance(body, bytes)
                size = len(body)
                payload = (_EMPTY_SHA256 if not body else _UNSIGNED if scheme == "https"
                           else hashlib.sha256(body).hexdigest())
            sent = self._signed(method, host, path, canonical_query, headers, payload)
            if size or method in ("PUT", "POST"):
                sent["content-length"] = str(size)
            conn, absolute = self._connection(scheme, host)
            target = f"{path}?{canonical_query}" if canonical_query else path
            conn.putrequest(method, f"{scheme}://{host}{target}" if absolute else target,
                            skip_host=True, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            if stream is not None:
                while piece := stream.read(1 << 20):
                    conn.send(piece)
            elif body:
                assert isinstance(body, bytes)
                conn.send(body)
            answer = conn.getresponse()
        finally:
            if stream is not None:
                stream.close()
        answer_headers = {name.lower(): value for name, value in answer.getheaders()}
        if sink is not None and answer.status in (200, 206):
            sink(answer)
            return Response(answer.status, answer_headers, b"")
        return Response(answer.status, answer_headers, answer.read())

    def _signed(self, method: str, host: str, path: str, query: str,
                headers: Mapping[str, str], payload: str) -> dict[str, str]:
        credentials = self._find_credentials()
        now = datetime.datetime.now(datetime.UTC)
        key = self._signing_key(credentials.secret_key, now.strftime("%Y%m%d"))
        return sign(method, host, path, query, headers, payload, credentials=credentials,
                    region=self.region, now=now, key=key)

    def _signing_key(self, secret: str, day: str) -> bytes:
        cache_key = (secret, day, self.region)
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = signing_key(secret, day, self.region)
        return key

    def _find_credentials(self) -> Credentials:
        with self._lock:
            if self._credentials is None:
                static = find_credentials()
                self._credentials = (lambda: static) if static else _botocore_credentials()
        found = self._credentials()
        if found is None:
            raise BackendUnavailable(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or a profile in ~/.aws/credentials (AWS_PROFILE)")
        return found

    # -- connections --------------------------------------------------------------------------

    def _connection(self, scheme: str, host: str) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether requests name the absolute URL (through a
        plain HTTP proxy)."""
        found: tuple[http.client.HTTPConnection, bool] | None = getattr(self._local, "conn",
                                                                       None)
        if found is not None and self._local.target == (scheme, host):
            return found
        self._drop_connection()
        self._local.conn, self._local.target = _open_connection(scheme, host), (scheme, host)
        return self._local.conn  # type: ignore[no-any-return]

    def _drop_connection(self) -> None:
        found = getattr(self._local, "conn", None)
        if found is not None:
            found[0].close()
            self._local.conn = None


def signing_key(secret: str, day: str, region: str) -> bytes:
    """The Signature V4 key of a secret for a day (``YYYYMMDD``) and region, for S3."""
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(method: str, host: str, path: str, query: str, headers: Mapping[str, str],
         payload: str, *, credentials: Credentials, region: str, now: datetime.datetime,
         key: bytes | None = None) -> dict[str, str]:
    """``headers`` plus ``host`` and the Signature V4 headers of an S3 request.

    ``path`` and ``query`` are already URI-encoded (``query`` sorted, as it is sent);
    ``payload`` is the hex SHA-256 of the body, or ``UNSIGNED-PAYLOAD``; ``key`` the
    cached :func:`signing_key` of the day.
    """
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp,
              **{name.lower(): value.strip() for name, value in headers.items()}}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical = "\n".join([method, path, query, *(f"{n}:{signed[n]}" for n in names), "",
                           ";".join(names), payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = key or signing_key(credentials.secret_key, day, region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/"
                               f"{scope}, SignedHeaders={';'.join(names)}, "
                               f"Signature={signature}")
    return signed


def _open_connection(scheme: str, host: str) -> tuple[http.client.HTTPConnection, bool]:
    """A connection to ``host``, through the proxy the environment names for it, if any."""
    import urllib.request  # only when connecting

    proxy = urllib.request.getproxies().get(scheme)
    if proxy and urllib.request.proxy_bypass(host.rsplit(":", 1)[0]):
        proxy = None
    via = urlsplit(proxy if proxy is None or "://" in proxy else f"http://{proxy}") \
        if proxy else None
    if scheme == "https":
        import ssl

        context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
        if via is None:
            return http.client.HTTPSConnection(host, timeout=_TIMEOUT_S, context=context), False
        conn = http.client.HTTPSConnection(via.hostname or "", via.port or 8080,
                                           timeout=_TIMEOUT_S, context=context)
        conn.set_tunnel(host, headers=_proxy_auth(via.username, via.password))
        return conn, False
    if via is None:
        return http.client.HTTPConnection(host, timeout=_TIMEOUT_S), False
    return http.client.HTTPConnection(via.hostname or "", via.port or 8080,
                                      timeout=_TIMEOUT_S), True


def _proxy_auth(user: str | None, password: str | None) -> dict[str, str] | None:
    if not user:
        return None
    import base64

    token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
    return {"Proxy-Authorization": f"Basic {token}"}


def _file_sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while piece := stream.read(1 << 20):
        digest.update(piece)
    stream.seek(0)
    return digest.hexdigest()


def xml_values(body: bytes, tag: str) -> list[str]:
    """The text of every ``<tag>`` element of an S3 XML answer, unescaped."""
    from xml.sax.saxutils import unescape

    return [unescape(found.group(1).decode(), {"&quot;": '"', "&apos;": "'"})
            for found in re.finditer(rf"<{tag}>(.*?)</{tag}>".encode(), body, re.DOTALL)]
