"""`python -m server`: its options (host, port, device, data directory, dataset), HOST and PORT
from the environment, and clear errors with exit code 2 for what cannot work."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from server.__main__ import main, parse_args, settings_from
from tests.support.helpers import REPO


def run_server_command(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "server", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def help_and_cuda_runs(tmp_path_factory):
    """`--help` and `--device cuda`, started together (each pays for importing PyTorch)."""
    data_dir = tmp_path_factory.mktemp("cli-data")
    processes = {
        "help": run_server_command("--help"),
        "cuda": run_server_command("--device", "cuda", "--port", "0", "--data-dir", str(data_dir)),
    }
    results = {}
    for name, process in processes.items():
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[name] = (process.returncode, stdout, stderr)
    return results


def test_help_lists_host_port_device_data_dir_and_dataset(help_and_cuda_runs):
    code, stdout, _ = help_and_cuda_runs["help"]
    assert code == 0
    assert stdout.startswith("usage: python -m server")
    for option in ("--host", "--port", "--device", "--data-dir", "--dataset"):
        assert option in stdout, option
    assert "{auto,cpu,cuda}" in stdout and "{mnist-embedded,mnist}" in stdout
    assert "env HOST" in stdout and "env PORT" in stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_without_a_gpu_exits_2_with_a_clear_message(help_and_cuda_runs):
    code, stdout, stderr = help_and_cuda_runs["cuda"]
    assert code == 2, (stdout, stderr)
    assert stderr.strip().endswith("error: --device cuda was asked for, but PyTorch sees no CUDA GPU on this machine")
    assert "Traceback" not in stderr
    assert "The playground is at" not in stdout  # it stopped before serving


def test_defaults_are_loopback_port_5000_auto_device_and_the_embedded_digits(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    args = parse_args([])
    assert (args.host, str(args.port), args.device, args.dataset) == ("127.0.0.1", "5000", "auto", "mnist-embedded")
    assert args.data_dir.endswith("data")


def test_host_and_port_environment_variables_override_the_defaults(monkeypatch):
    monkeypatch.setenv("HOST", "localhost")
    monkeypatch.setenv("PORT", "8123")
    args = parse_args([])
    assert (args.host, str(args.port)) == ("localhost", "8123")


def test_flags_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("HOST", "localhost")
    monkeypatch.setenv("PORT", "8123")
    args = parse_args(["--host", "::1", "--port", "9000", "--device", "cpu", "--data-dir", "/tmp/x",
                       "--dataset", "mnist"])
    assert (args.host, str(args.port), args.device, args.data_dir, args.dataset) == (
        "::1", "9000", "cpu", "/tmp/x", "mnist")


@pytest.mark.parametrize("port, words", [
    ("abc", "port: give a whole number"),
    ("70000", "port: give a number of at most 65,535"),
    ("-1", "port: give a number of at least 0"),
])
def test_a_bad_port_is_a_clear_error_with_exit_code_2(capsys, port, words):
    assert main(["--port", port]) == 2
    assert capsys.readouterr().err.startswith(f"error: {words}")


@pytest.mark.parametrize("port, words", [
    ("abc", "port: give a whole number"),
    ("70000", "port: give a number of at most 65,535"),
])
def test_a_bad_port_from_the_environment_is_a_clear_error_too(monkeypatch, capsys, port, words):
    monkeypatch.setenv("PORT", port)
    assert main([]) == 2
    assert capsys.readouterr().err.startswith(f"error: {words}")


def test_an_unknown_device_or_dataset_is_refused_by_the_parser(capsys):
    for argv in (["--device", "tpu"], ["--dataset", "cifar"]):
        with pytest.raises(SystemExit) as info:
            parse_args(argv)
        assert info.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


def test_the_database_flag_chooses_where_runs_are_recorded():
    url = "postgresql://playground:secret@db.example:5432/runs"
    assert settings_from(parse_args(["--database", url])).database == url
    assert settings_from(parse_args([])).database is None  # runs.sqlite3 in the data directory


def test_the_waits_on_quiet_peers_default_to_a_classrooms_and_flags_shorten_them():
    defaults = settings_from(parse_args([]))
    assert (defaults.request_timeout_s, defaults.idle_thread_s, defaults.ping_interval_s,
            defaults.ping_timeout_s) == (15, 20, 10, 20)
    short = settings_from(parse_args(["--request-timeout", "2", "--idle-thread-timeout", "1.5",
                                      "--ping-interval", "1", "--ping-timeout", "2"]))
    assert (short.request_timeout_s, short.idle_thread_s, short.ping_interval_s, short.ping_timeout_s) == (
        2, 1.5, 1, 2)


@pytest.mark.parametrize("flag, value, words", [
    ("--request-timeout", "0", "request_timeout_s: give a number of at least 0.5"),
    ("--idle-thread-timeout", "7200", "idle_thread_s: give a number of at most 3,600"),
    ("--ping-interval", "-1", "ping_interval_s: give a number of at least 0.5"),
    ("--ping-timeout", "nan", "ping_timeout_s: give"),
])
def test_a_wait_out_of_range_is_a_clear_error_with_exit_code_2(capsys, flag, value, words):
    assert main(["--port", "0", flag, value]) == 2
    assert capsys.readouterr().err.startswith(f"error: {words}")


@pytest.mark.slow
def test_a_database_that_is_not_postgresql_stops_the_start_in_words(tmp_path):
    process = run_server_command("--port", "0", "--data-dir", str(tmp_path), "--database", "mysql://u@h/db")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert stderr.splitlines()[-1] == (
        "error: the runs database must be PostgreSQL (postgresql://user:password@host:port/database), not mysql; "
        "without a URL runs go to runs.sqlite3 in the data directory")
