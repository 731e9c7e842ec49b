"""Quiet logs: progress bars only on a terminal; in a log one line per stage or seed, no carriage returns."""
from __future__ import annotations

import io

from a2q.progress import Progress


def test_log_gets_one_line_per_unit_and_no_carriage_returns():
    log = io.StringIO()
    with Progress(6, "train", unit="ep", line_every=3, stream=log) as bar:
        for _ in range(6):
            bar.update()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [ln.split(" | ")[0] for ln in lines] == ["train: 3/6 ep", "train: 6/6 ep"]


def test_terminal_gets_a_bar():
    tty = io.StringIO()
    with Progress(4, "sweep", unit="point", stream=tty, force_tty=True) as bar:
        for _ in range(4):
            bar.update()
    assert "\r" in tty.getvalue() and "4/4" in tty.getvalue()


def test_train_logs_a_line_per_seed(tmp_path, capsys):
    from a2q.trainer import parse_train_args, run_train

    run_train(parse_train_args(["--dataset", "KarateClub", "--method", "a2q", "--epochs", "15", "--seeds", "0-2",
                                "--out", str(tmp_path)]))
    err = capsys.readouterr().err
    assert "\r" not in err
    progress = [ln for ln in err.splitlines() if ln.startswith("KarateClub a2q: ")]
    assert [ln.split(" | ")[0] for ln in progress] == [f"KarateClub a2q: {15 * k}/45 ep" for k in (1, 2, 3)]


def test_sweep_logs_a_line_per_point(tmp_path, capsys):
    from a2q import sweep

    sweep.run_grid(sweep.grid(["KarateClub"], ["fp32", "int4"], ["2"]), [(4, 4)], tmp_path, seeds="0", epochs=5)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("sweep: ")]
    assert [ln.split(" | ")[0] for ln in lines] == ["sweep: 1/2 point", "sweep: 2/2 point"]
    assert "KarateClub fp32@32 ok" in lines[0]
