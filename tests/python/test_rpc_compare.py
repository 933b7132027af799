"""scripts/device/rpc_compare.py: the RPC servers' timelines (measurement bursts) read from their logs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("rpc_compare", ROOT / "scripts/device/rpc_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _log(path: Path, stamps: list[str]) -> str:
    lines = ["2026-11-28 20:41:05.059 INFO bind to 127.0.0.1:9100"]
    for t in stamps:
        lines += [
            f"2026-11-28 {t} INFO connected from ('127.0.0.1', 1)",
            f"2026-11-28 {t} INFO load_module /tmp/x/tvm_tmp_mod.tar",
        ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_bursts_split_on_gaps_and_merge_servers(tmp_path):
    mod = _module()
    a = _log(tmp_path / "a.log", ["20:46:00.000", "20:46:02.000", "20:47:30.000"])
    b = _log(tmp_path / "b.log", ["20:46:01.000", "20:46:04.500", "20:47:31.000"])
    bs = mod.bursts([a, b])
    # two bursts: 20:46:00-20:46:04.5 (4 modules) and 20:47:30-20:47:31 (2); the probe line is not a module
    assert [(round(e - s, 1), n) for s, e, n in bs] == [(4.5, 4), (1.0, 2)]
    n, busy = mod.servers("2 GPUs", [a, b])
    assert (n, round(busy, 1)) == (6, 5.5)


def test_servers_line_in_main(tmp_path, capsys):
    mod = _module()
    one = _log(tmp_path / "one.log", ["20:42:00.000", "20:42:01.000", "20:42:02.000", "20:42:03.000"])
    two = _log(tmp_path / "two.log", ["20:46:00.000", "20:46:01.000", "20:46:01.500", "20:46:02.000"])
    assert mod.main([str(tmp_path / "none1"), str(tmp_path / "none2"), "--servers", one, two]) == 0
    out = capsys.readouterr().out
    assert "1 GPU: 1 server(s) timed 4 module(s) in 1 burst(s)" in out
    assert "seconds measuring per module: 1 GPU 0.75, 1 GPUs 0.50 (0.67x)" in out
    assert "no task has a best candidate in both runs" in out
