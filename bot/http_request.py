"""A python-telegram-bot `BaseRequest` transport on aiohttp.

PTB's default `HTTPXRequest` spends most of the bot's CPU under load inside httpcore's pool
bookkeeping: before every request it walks each pooled connection and probes its socket
(getpeername/poll) to see whether it expired. aiohttp learns about closed connections from
the event loop's `connection_lost` callback instead, so reusing a pooled connection costs no
syscalls (measured with benchmarks/bot_load.py).

The request bodies are the ones `HTTPXRequest` sends: `application/x-www-form-urlencoded`
with PTB's JSON-encoded field values, or `multipart/form-data` with the same fields followed
by the files when the call uploads something (sendPhoto). Errors map like `HTTPXRequest`:
any timeout -> `TimedOut` (with PTB's "Pool timeout" message when no connection slot freed
up in time), any other transport failure -> `NetworkError`; HTTP status codes are left to
`BaseRequest` (400 -> BadRequest, 403 -> Forbidden, 429 -> RetryAfter, 502 -> NetworkError).
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import IO, Any, Final
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# A timeout argument: seconds, None (no timeout) or BaseRequest.DEFAULT_NONE ("use the default").
Timeout = Any


class OutcomeUnknown(Exception):
    """Marks a failure after the request was written: Telegram may have acted on it.

    The outbox never re-sends such a message (Telegram has no idempotency key for sendMessage);
    every other `NetworkError`/`TimedOut` from this transport means the request was not accepted.
    """


class UnknownTimedOut(TimedOut, OutcomeUnknown):
    """The answer did not arrive in time after the request was sent."""


class UnknownNetworkError(NetworkError, OutcomeUnknown):
    """The connection broke after the request was sent."""


POOL_TIMEOUT_MESSAGE: Final = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* sent to "
    "Telegram. Consider adjusting the connection pool size or the pool timeout."
)


class AiohttpRequest(BaseRequest):
    """`BaseRequest` on one `aiohttp.ClientSession`, created in `initialize()`.

    `connection_pool_size` bounds concurrent requests like httpx's `max_connections`: a request
    waits up to `pool_timeout` seconds for a free slot and fails with `TimedOut` otherwise.
    aiohttp has no per-write timeout, so `write_timeout` is enforced as part of an overall cap
    (connect + write + read) on each request; a stalled upload therefore still ends in `TimedOut`.
    `media_write_timeout` replaces `write_timeout` for calls that upload files, as in PTB.
    """

    __slots__ = ("_connect_timeout", "_limit", "_media_write_timeout", "_pool_size", "_pool_timeout",
                 "_proxies", "_proxy_by_host", "_read_timeout", "_session", "_write_timeout")

    def __init__(self, *, connection_pool_size: int = 16, connect_timeout: float | None = 5.0,
                 read_timeout: float | None = 5.0, write_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0, media_write_timeout: float | None = 20.0) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        # Both need a running event loop, so they are made in initialize().
        self._session: aiohttp.ClientSession | None = None
        self._limit: asyncio.Semaphore | None = None
        self._proxies: dict[str, str] = {}
        self._proxy_by_host: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout in seconds (PTB adds the long-poll timeout for getUpdates)."""
        return self._read_timeout

    @property
    def is_initialized(self) -> bool:
        """True between `initialize()` and `shutdown()`."""
        return self._session is not None and not self._session.closed

    async def initialize(self) -> None:
        """Open the session; calling it again on an open session does nothing."""
        if self.is_initialized:
            return
        connector = aiohttp.TCPConnector(limit=self._pool_size)
        # HTTPS_PROXY/NO_PROXY are honoured like httpx does, but read once here: aiohttp's
        # trust_env looks them (and ~/.netrc) up again on every request, a measurable share of
        # the bot's CPU per message.
        self._proxies = urllib.request.getproxies()
        self._proxy_by_host.clear()
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                              headers={"User-Agent": self.USER_AGENT})
        self._limit = asyncio.Semaphore(self._pool_size)

    async def shutdown(self) -> None:
        """Close the session and its pooled connections; safe to call twice."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Timeout = BaseRequest.DEFAULT_NONE,
        write_timeout: Timeout = BaseRequest.DEFAULT_NONE,
        connect_timeout: Timeout = BaseRequest.DEFAULT_NONE,
        pool_timeout: Timeout = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; returns `(status code, body)`. See `BaseRequest.do_request`."""
        session, limit = self._session, self._limit
        if session is None or session.closed or limit is None:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        uploads = request_data is not None and request_data.contains_files
        default = BaseRequest.DEFAULT_NONE
        read = self._read_timeout if read_timeout is default else read_timeout
        connect = self._connect_timeout if connect_timeout is default else connect_timeout
        pool = self._pool_timeout if pool_timeout is default else pool_timeout
        if write_timeout is default:
            write = self._media_write_timeout if uploads else self._write_timeout
        else:
            write = write_timeout
        timeout = _client_timeout(connect=connect, read=read, write=write)
        if limit.locked():  # only a full pool pays for a timeout context
            try:
                async with asyncio.timeout(pool):
                    await limit.acquire()
            except TimeoutError as err:
                raise TimedOut(message=POOL_TIMEOUT_MESSAGE) from err
        else:
            await limit.acquire()
        try:
            async with session.request(method, url, data=_body(request_data), timeout=timeout,
                                       headers=_FORM_HEADERS if _is_form(request_data) else None,
                                       proxy=self._proxy_for(url)) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as err:  # never connected: nothing was sent
            raise TimedOut from err
        except TimeoutError as err:  # a read timeout or the overall cap: it may have been sent
            raise UnknownTimedOut from err
        except aiohttp.ClientPayloadError as err:  # the answer started, then broke: it was processed
            raise UnknownNetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        except aiohttp.ClientError as err:
            # Never connected, or closed with no answer at all: a server that accepted a request
            # answers it, so a silent close (restart, proxy) is treated as "not accepted".
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            limit.release()


    def _proxy_for(self, url: str) -> str | None:
        """The proxy for `url`'s host from the environment read at start (NO_PROXY honoured)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxy_by_host:
            proxy = self._proxies.get(parts.scheme)
            bypass = bool(proxy) and bool(key[1]) and urllib.request.proxy_bypass(key[1])
            self._proxy_by_host[key] = None if bypass else proxy
        return self._proxy_by_host[key]


_FORM_HEADERS: Final = {"Content-Type": FORM_CONTENT_TYPE}


def _is_form(request_data: RequestData | None) -> bool:
    """Whether `_body` sends a urlencoded form (multipart bodies carry their own content type)."""
    return request_data is not None and not request_data.contains_files


def _client_timeout(*, connect: float | None, read: float | None, write: float | None) -> aiohttp.ClientTimeout:
    """aiohttp timeouts for one request; the overall cap stands in for the missing write timeout."""
    total = None if connect is None or read is None or write is None else connect + write + read
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=connect, sock_read=read)


def _body(request_data: RequestData | None) -> bytes | aiohttp.FormData | None:
    """The request body exactly as HTTPXRequest builds it: a urlencoded form, or multipart with files."""
    if request_data is None:
        return None
    if not request_data.contains_files:
        return request_data.url_encoded_parameters().encode("ascii")
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        payload: bytes | IO[bytes] = content
        form.add_field(name, payload, filename=filename, content_type=mimetype)
    return form
