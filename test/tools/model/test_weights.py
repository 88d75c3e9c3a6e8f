"""densehybrid-weights against a real HTTP server on 127.0.0.1 serving official-layout files."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import re
import socket
import threading
import urllib.parse

import pytest
import torch

from densehybrid_ros.models.checkpoint import load_checkpoint
from densehybrid_ros.tools.model import weights

UUID = '4b1c3f5e-0d6a-4e55-9c1e-2f0a7d9b6e21'
LDN_ID = weights.find_release('ldn121-smiyc').drive_id


def _manifest(path: Path):
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            key, shape, dtype = line.split()
            yield key, (() if shape == 'scalar' else tuple(map(int, shape.split('x')))), dtype


@pytest.fixture(scope='session')
def ldn_file(official_dir, tmp_path_factory) -> bytes:
    """An LDN-121 DenseHybrid state_dict with exactly the official keys/shapes (45 MB)."""
    state = {k: (torch.ones if k.endswith('running_var') else torch.zeros)(
        shape, dtype=getattr(torch, dtype))
        for k, shape, dtype in _manifest(official_dir / 'ldn121_densehybrid_19.keys')}
    path = tmp_path_factory.mktemp('official') / 'ldn121_smiyc.pth'
    torch.save(state, path)
    return path.read_bytes()


@pytest.fixture(scope='session')
def dlv3_file(official_dir, tmp_path_factory) -> bytes:
    """The DeepLabV3+ WRN-38 layout (137 M values as stride-0 views: an 80 kB file)."""
    state = {k: torch.zeros((), dtype=getattr(torch, dtype)).expand(shape)
             for k, shape, dtype in _manifest(official_dir / 'dlv3plus_wrn38_densehybrid_19.keys')}
    path = tmp_path_factory.mktemp('official') / 'dlv3.pth'
    torch.save(state, path)
    return path.read_bytes()


class _Drive(BaseHTTPRequestHandler):
    """Google Drive as seen by a downloader: confirmation form, Range, a cut connection."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server.state
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        state['requests'].append((self.path, self.headers.get('Range')))
        mode = state['mode']
        if mode == 'error-page':
            return self._html('<html><head><title>Google Drive - Quota exceeded</title></head>'
                              '<body><p>Too many users have viewed or downloaded this file '
                              'recently.</p></body></html>')
        if mode in ('confirm', 'confirm-cut') and query.get('uuid') != UUID:
            base = f'http://127.0.0.1:{self.server.server_port}/download'
            return self._html(
                '<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>'
                '</head><body><p>Google Drive can&#39;t scan this file for viruses.</p>'
                f'<form id="download-form" action="{base}" method="get">'
                '<input type="submit" value="Download anyway"/>'
                f'<input type="hidden" name="id" value="{query.get("id", "")}">'
                '<input type="hidden" name="export" value="download">'
                '<input type="hidden" name="confirm" value="t">'
                f'<input type="hidden" name="uuid" value="{UUID}"></form></body></html>')
        self._file(state['body'], honour_range=mode != 'ignore-range',
                   cut=mode.endswith('cut') and not state['cut_done'])

    def _html(self, text):
        body = text.encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, body, honour_range, cut):
        start = 0
        match = re.fullmatch(r'bytes=(\d+)-', self.headers.get('Range') or '')
        if match and honour_range:
            start = int(match.group(1))
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(body) - 1}/{len(body)}')
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Disposition', 'attachment; filename="weights.pth"')
        self.send_header('Content-Length', str(len(body) - start))
        self.end_headers()
        if cut:                          # half the file, then the connection drops
            self.server.state['cut_done'] = True
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def drive(monkeypatch):
    """A loopback server (reset per test); $DENSEHYBRID_WEIGHTS_URL points get at it."""
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Drive)
    server.daemon_threads = True
    server.state = {'mode': 'plain', 'body': b'', 'requests': [], 'cut_done': False,
                    'port': server.server_port}
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05},
                              daemon=True)
    thread.start()
    monkeypatch.setenv(weights.URL_ENV, f'http://127.0.0.1:{server.server_port}'
                                        '/download?id={id}&export=download')
    yield server.state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _get(tmp_path, *extra, name='ldn121-smiyc'):
    return weights.main(['get', name, '--output', str(tmp_path / 'model.pt'),
                         '--cache', str(tmp_path / 'cache'), *extra])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('densehybrid-weights: error: ')
    return err[0]


def test_get_writes_a_checkpoint_that_loads(tmp_path, drive, ldn_file, capsys):
    drive['body'] = ldn_file
    assert _get(tmp_path, '--json', str(tmp_path / 'summary.json')) == 0
    model, meta = load_checkpoint(tmp_path / 'model.pt')
    assert meta['arch'] == 'ldn121' and meta['num_classes'] == 19
    assert meta['calibration'] is None and meta['train']['release'] == 'ldn121-smiyc'
    assert float(model.state_dict()['logits.conv.weight'].abs().sum()) == 0.0   # the file's
    assert drive['requests'] == [(f'/download?id={LDN_ID}&export=download', None)]
    assert (tmp_path / 'cache' / 'ldn121-smiyc.pth').read_bytes() == ldn_file
    assert not list((tmp_path / 'cache').glob('*.part'))
    out = capsys.readouterr().out
    assert '--no-labels --threshold-from-fpr 0.01 --calibrated-checkpoint' in out
    assert f'-p checkpoint:={tmp_path / "model_calibrated.pt"}' in out
    # a second get reuses the checked download; an existing output needs --force
    assert _get(tmp_path) == 2
    assert _one_error_line(capsys).endswith('model.pt exists; give --force to overwrite it')
    assert len(drive['requests']) == 1


def test_drive_confirmation_page_then_a_cut_then_resume_with_range(tmp_path, drive, ldn_file,
                                                                   capsys):
    drive.update(body=ldn_file, mode='confirm-cut')
    assert _get(tmp_path) == 2
    line = _one_error_line(capsys)
    part = tmp_path / 'cache' / 'ldn121-smiyc.pth.part'
    half = part.stat().st_size
    assert half == len(ldn_file) // 2 and not (tmp_path / 'model.pt').exists()
    assert f'stopped at {half / 1e6:.1f} MB of {len(ldn_file) / 1e6:.1f} MB' in line
    assert line.endswith(f'run the same command again to resume from {part}')
    first, confirmed = drive['requests']
    assert first == (f'/download?id={LDN_ID}&export=download', None)
    assert dict(urllib.parse.parse_qsl(confirmed[0].split('?', 1)[1])) == {
        'id': LDN_ID, 'export': 'download', 'confirm': 't', 'uuid': UUID}
    assert _get(tmp_path) == 0
    assert drive['requests'][-1][1] == f'bytes={half}-'        # the rest only
    assert drive['requests'][-2][1] == f'bytes={half}-'        # the page, asked with Range too
    assert (tmp_path / 'cache' / 'ldn121-smiyc.pth').read_bytes() == ldn_file
    assert not part.exists()
    assert load_checkpoint(tmp_path / 'model.pt')[1]['arch'] == 'ldn121'


def test_a_server_that_ignores_range_restarts_the_part_cleanly(tmp_path, drive):
    drive.update(body=b'PK' + bytes(range(256)) * 4000, mode='ignore-range')
    part = tmp_path / 'x.part'
    part.write_bytes(b'stale bytes of another attempt')
    url = f'http://127.0.0.1:{drive["port"]}/download?id=x'
    assert weights.download(url, part) == len(drive['body'])
    assert part.read_bytes() == drive['body']
    assert drive['requests'][0][1] == 'bytes=30-'


def test_an_html_page_instead_of_the_weights_is_one_line(tmp_path, drive, capsys):
    drive['mode'] = 'error-page'
    assert _get(tmp_path) == 2
    assert _one_error_line(capsys).startswith(
        'densehybrid-weights: error: got an HTML page instead of the weights '
        '(Google Drive - Quota exceeded) from http://127.0.0.1:')
    assert not (tmp_path / 'model.pt').exists()
    assert not list((tmp_path / 'cache').glob('*'))          # nothing of the page was kept


def test_a_file_of_another_architecture_names_the_expected_one(tmp_path, drive, dlv3_file,
                                                               capsys):
    drive['body'] = dlv3_file
    assert _get(tmp_path) == 2
    line = _one_error_line(capsys)
    assert line.startswith('densehybrid-weights: error: the downloaded file is not the '
                           'ldn121 state_dict with 19 Cityscapes classes that ldn121-smiyc '
                           'should be: ')
    assert "does not fit arch 'ldn121'" in line and 'the download was deleted' in line
    assert not (tmp_path / 'model.pt').exists() and not list((tmp_path / 'cache').glob('*'))


def test_a_truncated_file_names_the_expected_architecture(tmp_path, drive, ldn_file, capsys):
    drive['body'] = ldn_file[:len(ldn_file) // 3]     # the server itself has a torn file
    assert _get(tmp_path) == 2
    line = _one_error_line(capsys)
    assert 'is not the ldn121 state_dict' in line and 'truncated' in line
    assert not (tmp_path / 'model.pt').exists()


def test_an_unknown_name_and_an_unreachable_server_are_one_line(tmp_path, drive, capsys):
    assert _get(tmp_path, name='ldn121-cityscapes') == 2
    line = _one_error_line(capsys)
    assert "no released weights called 'ldn121-cityscapes'; known: ldn121-smiyc," in line
    assert drive['requests'] == []
    with socket.socket() as s:                          # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    assert _get(tmp_path, '--url', f'http://127.0.0.1:{port}/{{id}}') == 2
    assert 'cannot download http://127.0.0.1:' in _one_error_line(capsys)
    assert _get(tmp_path, '--url', 'not-a-url/{id}') == 2
    assert "unknown url type: 'not-a-url/" in _one_error_line(capsys)


def test_a_fine_tuning_start_gets_a_fresh_head_and_says_so(tmp_path, drive, official_dir,
                                                           capsys):
    # The authors' StreetHazards segmentation model: 12 classes, no logits_ood.* (stride-0
    # views keep the file small; the import copies them into real tensors).
    state = {k: torch.zeros((), dtype=getattr(torch, dtype)).expand(
        (12,) + shape[1:] if k.startswith('logits.conv.') else shape)
        for k, shape, dtype in _manifest(official_dir / 'ldn121_densehybrid_19.keys')
        if not k.startswith('logits_ood.')}
    torch.save(state, tmp_path / 'semseg.pth')
    drive['body'] = (tmp_path / 'semseg.pth').read_bytes()
    assert _get(tmp_path, '--quiet', name='ldn121-streethazards-semseg') == 0
    ckpt = torch.load(tmp_path / 'model.pt', weights_only=True)
    assert ckpt['arch'] == 'ldn121' and ckpt['num_classes'] == 12
    assert ckpt['class_names'] == list(weights.STREETHAZARDS_CLASSES)
    assert ckpt['train']['fine_tuning_start'] and ckpt['train']['new_ood_head']
    assert float(ckpt['state_dict']['logits_ood.conv.weight'].abs().sum()) > 0   # fresh init
    out = capsys.readouterr().out
    assert 'has no anomaly head' in out and f'--init {tmp_path / "model.pt"}' in out
    assert '--threshold-from-fpr' not in out


def test_list_has_every_file_of_the_authors_readme(official_dir, capsys):
    ids = re.findall(r'\| ([0-9A-Za-z_-]{33}) \|', (official_dir / 'README.md').read_text())
    assert len(ids) == 5
    assert weights.main(['list']) == 0
    out = capsys.readouterr().out
    for drive_id in ids:
        assert f'https://drive.google.com/file/d/{drive_id}/view' in out
    starts = [r.name for r in weights.RELEASES if not r.anomaly_head]
    assert starts == ['ldn121-streethazards-semseg', 'dlv3plus-wrn38-cityscapes']
