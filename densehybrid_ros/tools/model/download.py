"""Resumable HTTP downloads of one large file, Google Drive's confirmation page followed.

``download(url, part)`` appends to ``part`` from where it stopped (HTTP Range; a server that
ignores Range sends the whole file again and ``part`` restarts from zero). Google Drive answers a
large file with an HTML "can't scan for viruses" page whose form (action, hidden
``id``/``export``/``confirm``/``uuid`` inputs) leads to the file: the form is followed; any other
HTML answer is an error, never written to ``part``.
"""

from html.parser import HTMLParser
import http.client
from http.cookiejar import CookieJar
from pathlib import Path
import sys
from typing import List, Optional, Tuple
import urllib.error
import urllib.parse
import urllib.request

USER_AGENT = 'Mozilla/5.0 (compatible; densehybrid-weights)'
CHUNK = 1 << 20                  # bytes per read: 45 MB (LDN-121) is 45 reads
MAX_PAGE_BYTES = 2 << 20         # an HTML answer is read this far, never written to the .part
MAX_PAGES = 3                    # confirmation pages followed before giving up


class DownloadError(Exception):
    """A download that failed; the message is the one line printed."""


class DownloadCut(DownloadError):
    """The transfer stopped early; the .part file is kept for the next run to resume."""


class _Page(HTMLParser):
    """Title, forms (action, method, hidden inputs) and links of an HTML answer."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title, self.forms, self.links = '', [], []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        a = {k: v or '' for k, v in attrs}
        if tag == 'title':
            self._in_title = True
        elif tag == 'form':
            self.forms.append({'id': a.get('id', ''), 'action': a.get('action', ''),
                               'method': a.get('method', 'get').lower(), 'inputs': {}})
        elif tag == 'input' and self.forms and a.get('type', '').lower() == 'hidden' \
                and a.get('name'):
            self.forms[-1]['inputs'][a['name']] = a.get('value', '')
        elif tag == 'a' and a.get('href'):
            self.links.append(a['href'])

    def handle_endtag(self, tag: str) -> None:
        if tag == 'title':
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def confirmation_url(html: str, page_url: str) -> Tuple[Optional[str], str]:
    """``(url, title)``: where a Drive confirmation page leads (None: not one), its title."""
    page = _Page()
    page.feed(html)
    page.close()
    title = ' '.join(page.title.split())
    for form in page.forms:
        if form['method'] == 'get' and ('confirm' in form['inputs']
                                        or form['id'] == 'download-form'):
            target = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, form['action']))
            query = dict(urllib.parse.parse_qsl(target.query))
            query.update(form['inputs'])
            return urllib.parse.urlunsplit(
                target._replace(query=urllib.parse.urlencode(query))), title
    for href in page.links:           # the older page: a link carrying confirm=<token>
        if 'confirm=' in href and 'export=download' in href:
            return urllib.parse.urljoin(page_url, href), title
    return None, title


def _page_title(exc: urllib.error.HTTPError) -> str:
    """`` (title)`` of an HTML error answer, '' for any other body."""
    if exc.headers.get_content_type() != 'text/html':
        return ''
    try:
        page = _Page()
        page.feed(exc.read(MAX_PAGE_BYTES).decode('utf-8', 'replace'))
    except (OSError, http.client.HTTPException):
        return ''
    title = ' '.join(page.title.split())
    return f' ({title[:80]})' if title else ''


def _looks_like_html(response: http.client.HTTPResponse) -> bool:
    if response.headers.get_content_type() in ('text/html', 'application/xhtml+xml'):
        return True
    # A page served as octet-stream: torch files start with 'PK' (zip) or a pickle opcode.
    head = response.peek(64)[:64].lstrip().lower()
    return head.startswith((b'<!doctype html', b'<html'))


def _content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``bytes FIRST-LAST/TOTAL`` -> (FIRST, TOTAL); None for what is absent or '*'."""
    try:
        _, spec = (value or '').split(' ', 1)
        span, total = spec.split('/', 1)
        first = None if span.strip() == '*' else int(span.split('-', 1)[0])
        return first, (None if total.strip() == '*' else int(total))
    except ValueError:
        return None, None


def reason_of(exc: BaseException) -> str:
    """Return an exception's reason as one line (strerror, reason, else its text)."""
    reason = getattr(exc, 'reason', None) or getattr(exc, 'strerror', None) or exc
    return ' '.join(str(reason).split()) or type(exc).__name__


def _mb(n: float) -> str:
    return f'{n / 1e6:.1f} MB'


def download(url: str, part: Path, progress: bool = False, timeout: float = 60.0,
             label: str = 'weights') -> int:
    """Download ``url`` into ``part``, resuming from its size; return the complete size.

    Follows Google Drive's confirmation form; a 206 answer is appended, a 200 answer (the
    server ignored Range) restarts the file. Raises DownloadCut when the transfer stops early
    (``part`` kept) and DownloadError for every other failure.
    """
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    part.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(MAX_PAGES + 2):    # pages to follow, plus one restart after a 416
        start = part.stat().st_size if part.exists() else 0
        headers = {'User-Agent': USER_AGENT}
        if start:
            headers['Range'] = f'bytes={start}-'
        try:
            response = opener.open(urllib.request.Request(url, headers=headers),
                                   timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:         # asked past the end: the .part is stale
                if _content_range(exc.headers.get('Content-Range'))[1] == start:
                    return start                  # it was complete already
                part.unlink()
                continue
            raise DownloadError(
                f'HTTP {exc.code} {exc.reason} from {url}{_page_title(exc)}') from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise DownloadError(f'cannot download {url}: {reason_of(exc)}') from None
        with response:
            if _looks_like_html(response):
                try:
                    html = response.read(MAX_PAGE_BYTES).decode('utf-8', 'replace')
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(f'cannot download {url}: {reason_of(exc)}') from None
                following, title = confirmation_url(html, response.geturl())
                if following is None:
                    raise DownloadError(f'got an HTML page instead of the weights '
                                        f'({title[:80] or "untitled"}) from {url}')
                url = following
                continue
            return _receive(response, part, start, progress, label)
    raise DownloadError(f'{url} kept answering with confirmation pages; open it in a browser')


def _receive(response: http.client.HTTPResponse, part: Path, start: int, progress: bool,
             label: str) -> int:
    """Write one file answer into ``part`` (appending after a 206); return the size reached."""
    offset = 0
    if response.status == 206:
        offset, _ = _content_range(response.headers.get('Content-Range'))
        if offset != start:
            part.unlink(missing_ok=True)
            raise DownloadCut(f'the server sent bytes from {offset} where {start} were asked; '
                              f'the partial download was deleted, run the command again')
    length = response.headers.get('Content-Length')
    total = offset + int(length) if length and length.isdigit() else None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=offset, unit='B', unit_scale=True, unit_divisor=1024,
                   desc=label, file=sys.stderr, leave=False)
    size, reason = offset, 'the connection closed'
    try:
        with open(part, 'ab' if offset else 'wb') as f:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    reason = reason_of(exc)
                    break
                if not chunk:
                    break
                try:
                    f.write(chunk)
                except OSError as exc:
                    raise DownloadError(
                        f'cannot write {part}: {reason_of(exc)}; the {_mb(size)} downloaded so '
                        f'far are kept there, run the command again to resume') from None
                size += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if total is not None and size < total:
        raise DownloadCut(f'the download stopped at {_mb(size)} of {_mb(total)} ({reason}); '
                          f'run the same command again to resume from {part}')
    return size
