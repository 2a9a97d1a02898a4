"""``avmae doctor``: what downloads will use, what is missing, and its exit status."""

import re
import socket
import stat

import numpy as np
import pytest

from avmae.cli import main
from avmae.toy.media import write_mp4


def doctor(capsys, *args):
    with pytest.raises(SystemExit) as ended:
        main(["doctor", *args])
    lines = capsys.readouterr().out.splitlines()
    return ended.value.code, {line.split()[0] if not line.startswith("js runtime") else "js runtime": line
                              for line in lines if not line.startswith("doctor:")}, lines[-1]


def test_everything_there(capsys):
    code, lines, verdict = doctor(capsys)
    assert code == 0 and verdict == "doctor: ready (downloads have what they need)"
    assert re.fullmatch(r"js runtime +ok +deno \d+\.\d+\.\d+ at /\S+/deno", lines["js runtime"])
    assert re.fullmatch(r"ffmpeg +ok +\S+ at /\S+", lines["ffmpeg"])
    assert re.fullmatch(r"yt-dlp +ok +\d{4}\.\d\d\.\d\d", lines["yt-dlp"])
    assert re.fullmatch(r"yt-dlp-ejs +ok +\d+\.\d+\.\d+", lines["yt-dlp-ejs"])
    for optional in ("po-token", "cookies", "proxy", "probe"):
        assert re.match(rf"{optional} +- +", lines[optional])


def test_js_runtime_named_but_missing(capsys, tmp_path):
    code, lines, verdict = doctor(capsys, "--js-runtime", str(tmp_path / "deno"))
    assert code == 1 and verdict == "doctor: 1 problem(s): js runtime"
    assert re.fullmatch(rf"js runtime +MISSING +JS runtime '{tmp_path}/deno' \(--js-runtime\) is not an "
                        r"executable file; YouTube downloads need it .*", lines["js runtime"])


def test_no_js_runtime_anywhere(capsys, tmp_path, monkeypatch):
    """Neither $AVMAE_DENO, the deno package's binary nor deno on PATH."""
    import deno

    def not_installed():
        raise FileNotFoundError("deno")

    monkeypatch.setattr(deno, "find_deno_bin", not_installed)
    monkeypatch.delenv("AVMAE_DENO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    code, lines, verdict = doctor(capsys)
    assert code == 1 and verdict == "doctor: 1 problem(s): js runtime"
    assert re.fullmatch(r"js runtime +MISSING +no Deno: not \$AVMAE_DENO, not the deno package .*",
                        lines["js runtime"])


def test_js_runtime_that_does_not_run(capsys, tmp_path, monkeypatch):
    broken = tmp_path / "deno"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("AVMAE_DENO", str(broken))
    code, lines, _ = doctor(capsys)
    assert code == 1
    assert re.fullmatch(rf"js runtime +MISSING +{broken} does not run .*", lines["js runtime"])


def test_cookies_and_proxy(capsys, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       ".youtube.com\tTRUE\t/\tTRUE\t4102444800\tSID\tabc\n"
                       ".example.org\tTRUE\t/\tFALSE\t4102444800\tx\ty\n")
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port, shut = listening.getsockname()[1], closed.getsockname()[1]
        code, lines, _ = doctor(capsys, "--cookies", str(cookies), "--proxy", f"socks5://127.0.0.1:{port}")
        assert code == 0
        assert lines["cookies"].endswith(f"{cookies}: 2 cookies, 1 for youtube.com")
        assert re.fullmatch(rf"proxy +ok +socks5://127.0.0.1:{port} reachable .*", lines["proxy"])
        code, lines, verdict = doctor(capsys, "--cookies", str(tmp_path / "none.txt"),
                                      "--proxy", f"http://127.0.0.1:{shut}", "--timeout", "2")
    assert code == 1 and verdict == "doctor: 2 problem(s): cookies, proxy"
    assert re.match(r"cookies +FAILED +.*none.txt: not readable", lines["cookies"])
    assert re.match(rf"proxy +FAILED +127.0.0.1:{shut} not reachable", lines["proxy"])


def test_probe_downloads_one_clip(capsys, tmp_path):
    rng = np.random.default_rng(0)
    write_mp4(tmp_path / "probe_me.mp4", rng.integers(0, 255, (75, 32, 48, 3), dtype=np.uint8),
              rng.normal(0, 3000, (3 * 44100, 2)).astype(np.int16))
    common = ["--url-template", f"file://{tmp_path}/{{id}}.mp4", "--allow-file-urls",
              "--clip-seconds", "2", "--probe-start", "0.5"]
    code, lines, _ = doctor(capsys, "--probe", "probe_me", *common)
    assert code == 0
    assert re.fullmatch(rf"probe +ok +file://{tmp_path}/probe_me.mp4 \[0.5, 2.5\) s: 2.0\d s clip, .*",
                        lines["probe"])
    code, lines, verdict = doctor(capsys, "--probe", "not_there", *common)
    assert code == 1 and verdict == "doctor: 1 problem(s): probe"
    assert re.match(r"probe +FAILED +file://\S+/not_there.mp4: unavailable \(not found\): ", lines["probe"])


def test_the_downloader_points_ytdlp_at_that_runtime(tmp_path, monkeypatch, capsys):
    import deno

    from avmae.acquire.download import Policy, ytdlp_options

    monkeypatch.delenv("AVMAE_DENO", raising=False)
    opts = ytdlp_options(tmp_path, False, Policy(extractor_args=("youtube:player_client=default,mweb",)))
    assert opts["js_runtimes"] == {"deno": {"path": deno.find_deno_bin()}}
    assert opts["extractor_args"] == {"youtube": {"player_client": ["default", "mweb"]}}
    _, lines, _ = doctor(capsys)
    assert lines["js runtime"].endswith(f" at {deno.find_deno_bin()}")
    # a runtime named but missing stops `avmae download` before any clip
    with pytest.raises(SystemExit, match="is not an executable file"):
        main(["download", "--list", str(tmp_path / "none.csv"), "--url-template", "https://x/{id}",
              "--out", str(tmp_path / "media"), "--manifest", str(tmp_path / "m.csv"),
              "--js-runtime", str(tmp_path / "deno")])
    assert not (tmp_path / "media").exists()
