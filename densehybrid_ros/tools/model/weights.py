"""densehybrid-weights: the DenseHybrid authors' released weights, as ready checkpoints.

``list`` shows the five files the authors publish on Google Drive (matejgrcic/DenseHybrid,
README "Weights"); ``get NAME`` downloads one into a cache folder, checks it strictly with the
same key/shape import as densehybrid-import (a file of another architecture or class count is
refused), and writes a densehybrid_ros checkpoint.

The download resumes (``download.py``: HTTP Range, Google Drive's confirmation page followed):
bytes arrive in ``<cache>/<name>.pth.part``. Only a complete and checked
download becomes ``<cache>/<name>.pth`` (later ``get``s reuse it); the checkpoint is written
next to ``--output`` and renamed into place, so a failed run never leaves a torn one.

The two files without the anomaly head (the authors' fine-tuning starts) are imported with a
fresh, untrained head and flagged ``fine_tuning_start`` in the checkpoint: a start for
``densehybrid-train --init``, not a model whose anomaly scores mean anything.
"""

import argparse
from dataclasses import dataclass
import json
import os
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .download import download, DownloadError, reason_of

PROG = 'densehybrid-weights'
# The Drive entry that gdown and browsers use for a shared file; it redirects to
# drive.usercontent.google.com/download?id=...&export=download, which answers a large file
# with the confirmation page. {id} is the Drive file id, {name} the release name.
DEFAULT_URL = 'https://drive.google.com/uc?export=download&id={id}'
URL_ENV = 'DENSEHYBRID_WEIGHTS_URL'
VIEW_URL = 'https://drive.google.com/file/d/{id}/view'

# The authors' StreetHazards classes as their loader numbers them (StreetHazards ids 1-3 and
# 5-13; 4 'other' is void, 14 the anomaly), Cityscapes colours where the class is shared.
STREETHAZARDS_CLASSES = ('background', 'building', 'fence', 'person', 'pole', 'road line',
                         'road', 'sidewalk', 'vegetation', 'car', 'wall', 'traffic sign')
STREETHAZARDS_PALETTE = ((0, 0, 0), (70, 70, 70), (190, 153, 153), (220, 20, 60),
                         (153, 153, 153), (157, 234, 50), (128, 64, 128), (244, 35, 232),
                         (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0))


@dataclass(frozen=True)
class Release:
    """One file the authors publish: what it is and how to check it."""

    name: str
    drive_id: str
    arch: str
    num_classes: int
    classes: str                 # 'Cityscapes' or 'StreetHazards'
    anomaly_head: bool           # False: a fine-tuning start (logits_ood.* absent)
    what: str

    @property
    def class_names(self) -> Optional[Tuple[str, ...]]:
        """Names to store (None: the Cityscapes default of the import)."""
        return STREETHAZARDS_CLASSES if self.classes == 'StreetHazards' else None

    @property
    def view_url(self) -> str:
        """The authors' public link to the file."""
        return VIEW_URL.format(id=self.drive_id)


RELEASES = (
    Release('ldn121-smiyc', '1bXzZ5B6YGqVKEKcFgcDbMHj5sHYSsjss', 'ldn121', 19, 'Cityscapes',
            True, "LDN-121 DenseHybrid, the authors' SegmentMeIfYouCan submission: road "
                  'scenes from a car camera (recommended; 45 MB)'),
    Release('dlv3plus-wrn38-fishyscapes', '1MZhINlNrXQlEyByUxypBebZQECqWAhlL',
            'dlv3plus_wrn38', 19, 'Cityscapes', True,
            'DeepLabV3+ WRN-38 DenseHybrid fine-tuned with negatives (Fishyscapes): best '
            'accuracy, for a GPU or offline use (550 MB)'),
    Release('ldn121-streethazards', '1vDXp-rySo-ASRh71O4h_MNiv_f-gFDm1', 'ldn121', 12,
            'StreetHazards', True,
            'LDN-121 DenseHybrid fine-tuned on StreetHazards (CARLA renderings) with negatives'),
    Release('ldn121-streethazards-semseg', '1Mf1sNVUhTtT1XexO-afco9577hzV5_kQ', 'ldn121', 12,
            'StreetHazards', False,
            'LDN-121 segmentation trained on StreetHazards, no anomaly head: fine-tuning start'),
    Release('dlv3plus-wrn38-cityscapes', '1CKB7gpcPLgDLA7LuFJc46rYcNzF3aWzH', 'dlv3plus_wrn38',
            19, 'Cityscapes', False,
            'DeepLabV3+ WRN-38 trained on Cityscapes by NVIDIA, no anomaly head: fine-tuning '
            'start'),
)


class WeightsError(Exception):
    """A failure the user can act on; the message is the one line printed."""


def find_release(name: str) -> Release:
    """Return the release called ``name`` (WeightsError naming the known ones otherwise)."""
    for release in RELEASES:
        if release.name == name:
            return release
    raise WeightsError(f'no released weights called {name!r}; known: '
                       f'{", ".join(r.name for r in RELEASES)} (see `{PROG} list`)')


def release_url(release: Release, template: Optional[str] = None) -> str:
    """Download URL of ``release``: ``template`` (else $DENSEHYBRID_WEIGHTS_URL, else Drive)."""
    template = template or os.environ.get(URL_ENV) or DEFAULT_URL
    return template.replace('{id}', release.drive_id).replace('{name}', release.name)


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/densehybrid_ros/weights`` (``~/.cache/...`` without it)."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'densehybrid_ros' / 'weights'


def import_release(path: Path, release: Release) -> Tuple[Any, Dict[str, Any]]:
    """Check ``path`` strictly as ``release`` and build its model: ``(model, meta)``."""
    from ...models.official import import_official    # torch: only when a file is checked

    try:
        model, meta = import_official(path, release.arch, release.num_classes,
                                      release.class_names,
                                      new_ood_head=not release.anomaly_head)
    except (ValueError, RuntimeError) as exc:             # CheckpointError is a ValueError
        detail = ' '.join(str(exc).split())
        raise WeightsError(f'the downloaded file is not the {release.arch} state_dict with '
                           f'{release.num_classes} {release.classes} classes that '
                           f'{release.name} should be: {detail}') from None
    if release.classes == 'StreetHazards':
        meta['palette'] = np.asarray(STREETHAZARDS_PALETTE, dtype=np.uint8)
    return model, meta


def fetch(release: Release, cache: Path, url: Optional[str] = None, progress: bool = False,
          timeout: float = 60.0) -> Path:
    """Download ``release`` into ``cache`` once (resuming a .part); return the file."""
    done = cache / f'{release.name}.pth'
    if done.is_file():
        return done
    part = done.with_name(done.name + '.part')
    download(release_url(release, url), part, progress, timeout, label=release.name)
    return part


def _tool(name: str) -> str:
    """How to call a sibling console script: the venv's path when not on PATH as is."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        return name
    try:
        return os.path.relpath(script)
    except ValueError:
        return str(script)


def next_steps(release: Release, output: Path) -> str:
    """Tell what to run after ``get``: calibrate on the user's own bag, then the node."""
    if not release.anomaly_head:
        return (f'note: {release.name} has no anomaly head; {output} got a fresh, untrained '
                f'one, so its anomaly scores mean nothing until it is fine-tuned:\n'
                f'  {_tool("densehybrid-train")} ... --init {output}\n'
                f'for a ready model take one of: '
                f'{", ".join(r.name for r in RELEASES if r.anomaly_head)}')
    calibrated = output.with_name(output.stem + '_calibrated' + output.suffix)
    return (f'{output} has no anomaly threshold yet (the authors publish none): until it is '
            f'calibrated no pixel is flagged.\n'
            f'next: record your camera in normal driving (a bag without anomalies, no labels '
            f'needed) and set the threshold so that 1 % of its pixels are flagged:\n'
            f'  {_tool("densehybrid-eval")} YOUR_BAG --checkpoint {output} --no-labels '
            f'--threshold-from-fpr 0.01 --calibrated-checkpoint {calibrated} '
            f'--output out/calibration\n'
            f'then run the node on it:\n'
            f'  {_tool("densehybrid-node")} --autostart --ros-args -r image:=/camera/image_raw '
            f'-p checkpoint:={calibrated}')


def get(release: Release, output: Path, cache: Path, url: Optional[str] = None,
        progress: bool = False, command: Sequence[str] = (), timeout: float = 60.0
        ) -> Dict[str, Any]:
    """Download, check and convert ``release``; write the checkpoint; return a summary."""
    from ...models.checkpoint import save_checkpoint

    started = time.monotonic()
    path = fetch(release, cache, url, progress, timeout)
    try:
        model, meta = import_release(path, release)
    except WeightsError as exc:
        path.unlink(missing_ok=True)          # complete but wrong: the next run starts afresh
        raise WeightsError(f'{exc} (the download was deleted)') from None
    done = cache / f'{release.name}.pth'
    if path != done:
        os.replace(path, done)
    # Cityscapes-class releases were trained on real street images; StreetHazards is CARLA's
    # rendering, not this package's generator either: its domain stays unknown.
    domain = 'real' if release.num_classes == 19 else 'unknown'
    meta['train'] = {**meta['train'], 'domain': domain, 'imported_from': done.name,
                     'release': release.name, 'release_url': release.view_url,
                     'command': ' '.join(command)}
    if not release.anomaly_head:
        meta['train']['fine_tuning_start'] = True
    try:
        save_checkpoint(output, model, meta)
    except (OSError, RuntimeError) as exc:
        raise WeightsError(f'cannot write {output}: {reason_of(exc)} (the verified download '
                           f'stays in {done}; run the command again)') from None
    return {'name': release.name, 'output': str(output), 'arch': release.arch,
            'num_classes': release.num_classes, 'anomaly_head': release.anomaly_head,
            'calibrated': False, 'download': str(done), 'bytes': done.stat().st_size,
            'parameters': sum(p.numel() for p in model.parameters()),
            'seconds': round(time.monotonic() - started, 2)}


def list_text() -> str:
    """Format the releases as a table, each with its public link."""
    rows = [f'{"name":28} {"architecture":15} {"classes":17} {"anomaly head":13} what']
    for r in RELEASES:
        rows.append(f'{r.name:28} {r.arch:15} {f"{r.num_classes} {r.classes}":17} '
                    f'{"yes" if r.anomaly_head else "no (start)":13} {r.what}')
        rows.append(f'{"":28} {r.view_url}')
    rows.append(f'`{PROG} get NAME` writes a ready checkpoint; the two without an anomaly head '
                f'become fine-tuning starts for densehybrid-train --init (fresh head).')
    return '\n'.join(rows)


EXAMPLE = f'''examples:
  {PROG} list
  {PROG} get ldn121-smiyc --output models/ldn121_smiyc.pt
  {PROG} get ldn121-smiyc --output models/ldn121_smiyc.pt --url https://mirror.example/{{id}}
environment: ${URL_ENV} replaces the download URL like --url ({{id}}: the Drive file id,
{{name}}: the release name); default {DEFAULT_URL}
'''


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface of densehybrid-weights."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split('\n\n')[0], epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    listing = sub.add_parser('list', help="the authors' released checkpoints")
    listing.add_argument('--json', action='store_true', help='print them as JSON')
    fetching = sub.add_parser('get', help='download one, check it, write a checkpoint')
    fetching.add_argument('name', help='a name from `list` (e.g. ldn121-smiyc)')
    fetching.add_argument('--output', help='checkpoint to write (default models/NAME.pt)')
    fetching.add_argument('--cache', help=f'download folder, where an interrupted download '
                                          f'resumes (default {default_cache()})')
    fetching.add_argument('--url', help='download from here instead of Google Drive '
                                        '({id} and {name} are replaced)')
    fetching.add_argument('--force', action='store_true', help='overwrite an existing --output')
    fetching.add_argument('--quiet', action='store_true', help='no progress bar')
    fetching.add_argument('--json', help='also write the summary JSON here')
    fetching.add_argument('--timeout', type=float, default=60.0,
                          help='seconds without data before the download gives up')
    return parser


def _list(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([{'name': r.name, 'arch': r.arch, 'num_classes': r.num_classes,
                           'classes': r.classes, 'anomaly_head': r.anomaly_head,
                           'what': r.what, 'drive_id': r.drive_id, 'url': r.view_url}
                          for r in RELEASES], indent=2))
    else:
        print(list_text())
    return 0


def _get(args: argparse.Namespace, argv: Sequence[str]) -> int:
    release = find_release(args.name)
    output = Path(args.output or f'models/{release.name}.pt')
    if output.is_dir():
        raise WeightsError(f'{output} is a directory; give the checkpoint file name')
    if output.exists() and not args.force:
        raise WeightsError(f'{output} exists; give --force to overwrite it')
    cache = Path(args.cache) if args.cache else default_cache()
    progress = not args.quiet and sys.stderr.isatty()
    print(f'{release.name}: {release.what}\n  from {release_url(release, args.url)}', flush=True)
    summary = get(release, output, cache, args.url, progress, [PROG, *argv], args.timeout)
    print(f'wrote {output}: {summary["arch"]}, {summary["num_classes"]} {release.classes} '
          f'classes, {summary["parameters"] / 1e6:.1f} M parameters '
          f'({summary["seconds"]:.1f} s; download kept in {summary["download"]})')
    print(next_steps(release, output))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return _list(args) if args.command == 'list' else _get(args, argv)
    except (WeightsError, DownloadError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    except OSError as exc:            # e.g. the cache folder cannot be made
        where = f'{exc.filename}: ' if exc.filename else ''
        print(f'{PROG}: error: {where}{reason_of(exc)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted; run the same command again to resume the download',
              file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
