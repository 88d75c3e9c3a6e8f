"""Targets, pass/fail and the printed table of densehybrid-bench."""

import math
from typing import Any, Dict, List, Optional

# Figure -> (comparison, target). Only these are judged pass/fail; the rest is information.
TARGETS = {
    'hybrid_overhead': ('<=', 1.03),
    'flop_utilisation': ('>=', 0.80),         # judged for ldn121 fp32 on the CPU
    'node_overhead': ('<=', 1.15),
    'node_overhead_score_only': ('<=', 1.05),
    'overload_latency': ('<=', 1.3),
    'reference_speedup': ('>=', 1.4),
    'reference_max_abs_diff': ('<=', 1e-3),
    'obstacle_cost_ms': ('<=', 5.0),          # per 1280x720 frame (issue 21)
    'three_d_cost_ms': ('<=', 5.0),           # per 1280x720 frame, ground plane (issue 22)
}


def judge(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Each figure that has a target: value, target, pass/fail.

    A --quick run's tiny sizes say nothing about full-size targets: its checks keep value and
    target but are not judged (``pass`` is None).
    """
    checks = []
    quick = bool(results.get('settings', {}).get('quick'))

    def add(figure: str, key: str, value: Optional[float], note: str = '') -> None:
        op, target = TARGETS[key]
        ok = value is not None and math.isfinite(value) and (
            value <= target if op == '<=' else value >= target)
        checks.append({'figure': figure, 'value': value, 'target': f'{op} {target:g}',
                       'pass': None if quick else bool(ok),
                       'note': 'not judged: --quick sizes' if quick else note})

    cpu = results['machine']['device'].startswith('cpu')
    for arch, figs in results.get('archs', {}).items():
        add(f'{arch}.hybrid_overhead', 'hybrid_overhead', figs['hybrid_overhead']['value'])
        if arch == 'ldn121' and cpu:
            add(f'{arch}.flop_utilisation', 'flop_utilisation',
                figs['flop_utilisation']['value'], 'fp32, CPU')
    node = results.get('node') or {}
    for key in ('node_overhead', 'node_overhead_score_only', 'overload_latency'):
        if key in node:
            add(key, key, node[key]['value'])
    obstacles = results.get('obstacles') or {}
    for key in ('obstacle_cost_ms', 'three_d_cost_ms'):
        if key in obstacles:
            add(key, key, obstacles[key], f'at {obstacles["size"]}')
    ref = results.get('reference')
    if ref and 'speedup' in ref:
        add('ldn121.reference_speedup', 'reference_speedup', ref['speedup'])
        add('ldn121.reference_max_abs_diff', 'reference_max_abs_diff', ref['max_abs_diff'])
    return checks


def format_table(results: Dict[str, Any]) -> str:
    """Human-readable summary: every figure, its target and pass/fail."""
    lines = []
    m = results['machine']
    quick = ' [quick]' if results['settings']['quick'] else ''
    lines.append(f'densehybrid-bench on {m["device"]} ({m["cpu"]}, {m["torch_threads"]} '
                 f'threads, torch {m["torch"]}){quick}')
    load = m.get('load_average_start')
    if load:
        lines.append(f'load average at start: {load[0]:.2f} on {m["usable_cpus"]} CPUs')
    checks = {c['figure']: c for c in results.get('checks', [])}

    def row(name: str, value: str, figure: Optional[str] = None) -> None:
        check = checks.get(figure or '')
        verdict = '' if not check else f'{check["target"]:>9}  ' + (
            '(quick)' if check['pass'] is None else 'PASS' if check['pass'] else 'FAIL')
        lines.append(f'  {name:<44} {value:>14}  {verdict}')

    for arch, figs in results.get('archs', {}).items():
        lines.append(f'{arch} (fp32)')
        for size, fps in figs['fps'].items():
            gf = figs['gflop_per_frame'].get(size)
            row(f'fps {size} batch 1', f'{fps:.3f}' + (f' ({gf:.0f} GFLOP)' if gf else ''))
        for n, cam in figs['cameras'].items():
            row(f'{n} camera(s) batched {cam["size"]}, frames/s', f'{cam["frames_per_s"]:.3f}')
        ho = figs['hybrid_overhead']
        row(f'hybrid_overhead ({ho["pairs"]} pairs, IQR {ho["p25"]:.3f}-{ho["p75"]:.3f})',
            f'{ho["value"]:.3f}', f'{arch}.hybrid_overhead')
        if 'score_and_open_set_ms' in ho:
            row(f'  score + open-set {ho["score_and_open_set_ms"]:.0f} ms of '
                f'{ho["hybrid_ms"]:.0f}; plain {ho["plain_ms"]:.0f} ms', '')
        fu = figs['flop_utilisation']
        row(f'flop_utilisation ({fu["model_gflops_per_s"]:.1f} / '
            f'{fu["peak_gflops_per_s"]:.1f} GFLOP/s)', f'{fu["value"]:.3f}',
            f'{arch}.flop_utilisation')
        if figs.get('bf16'):
            b = figs['bf16']
            row('bf16 autocast speed-up vs fp32 (separate)', f'{b["speedup_vs_fp32"]:.3f}')
            row('bf16 score max |diff| / label agreement',
                f'{b["score_max_abs_diff"]:.3g} / {b["label_agreement"]:.4f}')
    node = results.get('node') or {}
    if 'skipped' in node:
        lines.append(f'live node: skipped ({node["skipped"]})')
    elif node:
        lines.append(f'live node ({node["arch"]}, {node["image_size"]} rgb8, inference width '
                     f'{node["inference_width"] or "native"}, {node["frames"]} frames)')
        every = len(node['node_overhead'].get('outputs', ()))
        for key, label in (('node_overhead', f'node_overhead (all {every} outputs)'),
                           ('node_overhead_score_only', 'node_overhead (anomaly_score only)')):
            f = node[key]
            row(f'{label}: {f["node_latency_ms"]:.0f} / {f["bare_segmenter_ms"]:.0f} ms',
                f'{f["value"]:.3f}', key)
            row(f'  IQR of {f["frames"]} pairs', f'{f["p25"]:.3f}-{f["p75"]:.3f}')
            row(f'  received by the subscriber: {f["received_latency_ms"]:.0f} ms',
                f'{f["received_ratio"]:.3f}')
        o = node['overload_latency']
        row(f'overload_latency: p95 {o["overload"]["p95_ms"]:.0f} / '
            f'{o["calm"]["p95_ms"]:.0f} ms', f'{o["value"]:.3f}', 'overload_latency')
        row(f'  frames processed at 3x: {o["overload"]["processed"]} of '
            f'{o["overload"]["published"]}', '')
    conv = results.get('conversions_ms')
    if conv and 'skipped' not in conv:
        lines.append(f'conversions at {conv["size"]} (ms)')
        row('input rgb8 / bgr8 through cv_bridge',
            f'{conv["input_rgb8_cv_bridge"]:.2f} / {conv["input_bgr8_cv_bridge"]:.2f}')
        for name, c in conv['outputs'].items():
            row(f'{name}: render + message', f'{c["render"]:.2f} + {c["to_message"]:.2f}')
        for name, v in conv.get('resize', {}).items():
            if name != 'from':
                row(f'resize {name} ({conv["resize"]["from"]})', f'{v:.2f}')
        row('total, all outputs', f'{conv["total_all_outputs"]:.2f}')
    elif conv:
        lines.append(f'conversions: skipped ({conv["skipped"]})')
    obst = results.get('obstacles')
    if obst and 'skipped' not in obst:
        frame = obst['frame_ms']
        lines.append(f'node object and 3-D outputs at {obst["size"]} (ms; the Segmenter takes '
                     f'{frame:.0f} ms at {obst["inference_size"]})')
        for key, label in (('obstacle_cost_ms', 'instances + tracks + markers'),
                           ('three_d_cost_ms', '3-D outputs, ground plane'),
                           ('three_d_depth_cost_ms', '3-D outputs with depth')):
            row(f'{label}, {obst[key] / frame:.4f} x frame', f'{obst[key]:.2f}', key)
        row('ray table, once per camera', f'{obst["ray_table_ms"]:.1f}')
    elif obst:
        lines.append(f'obstacles: skipped ({obst["skipped"]})')
    ref = results.get('reference')
    if ref and 'speedup' in ref:
        lines.append(f'authors\' LadderDenseNetTH vs ldn121 at {ref["size"]}')
        row(f'speed-up ({ref["reference_ms"]:.0f} / {ref["ours_ms"]:.0f} ms)',
            f'{ref["speedup"]:.3f}', 'ldn121.reference_speedup')
        row('max |output difference|', f'{ref["max_abs_diff"]:.3g}',
            'ldn121.reference_max_abs_diff')
    elif ref:
        lines.append(f'reference: skipped ({ref.get("skipped")})')
    checks_run = results.get('checks', [])
    failed = [c['figure'] for c in checks_run if c['pass'] is False]
    if any(c['pass'] is None for c in checks_run):
        lines.append(f'{len(checks_run)} targets not judged: --quick runs tiny sizes, the '
                     f'targets are for full sizes')
    else:
        lines.append(f'{len(checks_run) - len(failed)} of {len(checks_run)} targets met'
                     + (f'; missed: {", ".join(failed)}' if failed else ''))
    lines.append(f'elapsed {results.get("elapsed_s", 0):.0f} s')
    return '\n'.join(lines)
