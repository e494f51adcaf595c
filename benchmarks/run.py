"""Benchmark of API token deactivation against the local CSP emulator.

For each number of token ids N, the benchmark seeds N fresh active tokens in the emulator and times:

- A: one csp_api_token_deactivate task in ansible-playbook, and again with max_concurrency=4 when the
  module has that option;
- B: ansible.builtin.uri looped over batches of 15 ids, after one uri task that authenticates;
- C: plain_client.py, one requests.Session sending the same requests in sequence, with no Ansible;
- the floor: ceil(N / 15) deactivate requests plus one authentication request, times the emulator's latency.

It checks after every run that each id was sent once and is inactive, and that exactly one authentication
request was made. It exits with status 1 when a run or a check fails, and timings never change the exit
status. Run it through scripts/benchmark, which creates .venv first.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_DIR = ROOT / "benchmarks"
PLAYBOOKS_DIR = BENCHMARKS_DIR / "playbooks"
MODULE_PATH = ROOT / "plugins" / "modules" / "csp_api_token_deactivate.py"
sys.path.insert(0, str(ROOT / "tests"))

from csp_emulator import Emulator  # noqa: E402 - tests/ is added to sys.path above

ORG_ID = "8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a"
API_TOKEN = "benchmark-owner-api-token-not-a-secret"
BATCH_SIZE = 15
CONCURRENCY = 4
TIME_COMMAND = "/usr/bin/time"
DOC_BEGIN = "<!-- benchmark:begin -->"
DOC_END = "<!-- benchmark:end -->"


class AccountingError(Exception):
    """A run that failed, or whose requests or token states do not match the requested ids."""


@dataclass
class Measurement:
    """One timed run of one case at one N, with what the emulator saw during it."""

    case: str
    size: int
    wall: float
    deactivate_requests: int
    authorize_requests: int
    handshakes: int
    peak_rss_kb: int | None
    first_request: float  # seconds from the process start to the emulator receiving the first API request
    request_span: float  # seconds from the first API request to the end of the process
    net: float = 0.0  # wall time minus the ansible-playbook start-up, for the Ansible cases


@dataclass
class Report:
    latency: float
    startup: float
    startup_samples: list = field(default_factory=list)
    measurements: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    emulator_overhead: dict = field(default_factory=dict)
    import_time: dict = field(default_factory=dict)
    has_max_concurrency: bool = False

    def get(self, case: str, size: int) -> Measurement | None:
        for measurement in self.measurements:
            if measurement.case == case and measurement.size == size:
                return measurement
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/benchmark", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="15,150,1500,15000", help="comma-separated numbers of token ids (default: 15,150,1500,15000)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.02, help="seconds the emulator sleeps before each API request (default: 0.02)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="how many times to run each case except B, which always runs once. The table shows the fastest run "
        "(default: 1)"
    )
    parser.add_argument(
        "--b-time-limit",
        type=float,
        default=600.0,
        help="skip case B at a size whose projected time, scaled from the previous size, is over this many seconds "
        "(default: 600)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="check that every case works and accounts for every id, without writing docs/performance.md",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "performance.md", help="page to write the results to"
    )
    args = parser.parse_args(argv)

    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"invalid --sizes {args.sizes!r}: expected positive integers separated by commas")

    if not args.sizes or min(args.sizes) < 1:
        parser.error(f"invalid --sizes {args.sizes!r}: expected positive integers")
    if args.latency < 0:
        parser.error(f"invalid --latency {args.latency!r}: expected seconds >= 0")
    if args.repeat < 1:
        parser.error(f"invalid --repeat {args.repeat!r}: expected 1 or more")
    return args


def module_has_option(name: str) -> bool:
    """Tell whether csp_api_token_deactivate accepts an option: in its argument spec or in its DOCUMENTATION."""
    collections_path = os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".venv" / "collections"))
    sys.path.insert(0, collections_path.split(os.pathsep)[0])
    try:
        from ansible_collections.csp.iam.plugins.module_utils._token_module import token_argument_spec
    except ImportError as error:
        print(f"benchmark: cannot import the module's argument spec ({error}), so reading DOCUMENTATION", file=sys.stderr)
    else:
        if name in token_argument_spec():
            return True

    tree = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "DOCUMENTATION" for target in node.targets):
            options = yaml.safe_load(node.value.value).get("options") or {}
            return name in options
    raise RuntimeError(f"No DOCUMENTATION string found in {MODULE_PATH}.")


class Runner:
    """Runs the cases as subprocesses against one in-process emulator, and checks each run's accounting."""

    def __init__(self, emulator: Emulator, work_dir: Path):
        self.emulator = emulator
        self.work_dir = work_dir
        self.python = Path(sys.executable)
        self.rss_file = work_dir / "peak-rss.txt"
        self.measured_python = self._write_measured_python()
        self.env = self._environment()
        self.run_index = 0
        self.started_at = 0.0  # time.monotonic() of the last timed() process start, the clock of RequestRecord.time
        self.ended_at = 0.0

    def _write_measured_python(self) -> Path | None:
        """Write a wrapper that runs this Python under /usr/bin/time, which appends the peak RSS to rss_file.

        Ansible uses it as ansible_python_interpreter, so only the module processes are measured, never
        ansible-playbook itself. The wrapper costs one extra fork and exec of a small C program per process.
        """
        if not os.access(TIME_COMMAND, os.X_OK):
            print(f"benchmark: {TIME_COMMAND} not found, so peak memory is not measured", file=sys.stderr)
            return None
        wrapper = self.work_dir / "measured-python"
        wrapper.write_text(
            f'#!/bin/sh\nexec {TIME_COMMAND} -f "%M" -a -o "{self.rss_file}" "{self.python}" "$@"\n', encoding="utf-8"
        )
        wrapper.chmod(0o755)
        return wrapper

    def _environment(self) -> dict:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CSP_", "ANSIBLE_")) and key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        }
        for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(variable, None)
        empty_config = self.work_dir / "ansible.cfg"
        empty_config.write_text("", encoding="utf-8")
        env.update(
            {
                "NO_PROXY": "127.0.0.1,localhost",
                "ANSIBLE_CONFIG": str(empty_config),
                "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
                "ANSIBLE_HOME": str(self.work_dir / "ansible-home"),
                "ANSIBLE_LOCAL_TEMP": str(self.work_dir / "ansible-local"),
                "ANSIBLE_LOCALHOST_WARNING": "false",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
                "ANSIBLE_NOCOLOR": "true",
                "CSP_API_HOST": self.emulator.api_host,
                "CSP_CA_PATH": self.emulator.ca_path,
                "CSP_API_TOKEN": API_TOKEN,
            }
        )
        if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
            env["ANSIBLE_COLLECTIONS_PATH"] = os.environ["ANSIBLE_COLLECTIONS_PATH"]
        return env

    def seed(self, size: int) -> list:
        """Empty the emulator and give it one organization, its owner's API token and `size` active tokens."""
        self.run_index += 1
        ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"benchmark-{self.run_index}-{index}")) for index in range(size)]
        self.emulator.reset()
        self.emulator.add_org(ORG_ID)
        self.emulator.add_api_token(API_TOKEN, user="owner@example.com", roles={ORG_ID: "org_owner"})
        self.emulator.add_tokens(ORG_ID, ids)
        return ids

    def write_input(self, ids: list, **extra) -> Path:
        path = self.work_dir / "input.json"
        data = {
            "api_host": self.emulator.api_host,
            "ca_path": self.emulator.ca_path,
            "api_token": API_TOKEN,
            "org_id": ORG_ID,
            "token_ids": ids,
            **extra,
        }
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def playbook_command(self, playbook: str, input_path: Path | None) -> list:
        command = [str(self.python.with_name("ansible-playbook")), str(PLAYBOOKS_DIR / playbook)]
        if input_path is not None:
            command += ["-e", f"@{input_path}"]
        if self.measured_python is not None:
            command += ["-e", f"ansible_python_interpreter={self.measured_python}"]
        return command

    def timed(self, command: list, timeout: float) -> float:
        """Run a command with the benchmark's environment and return its wall time, or raise AccountingError."""
        self.rss_file.unlink(missing_ok=True)
        started = time.perf_counter()
        self.started_at = time.monotonic()
        try:
            process = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise AccountingError(f"{' '.join(command[:2])} timed out after {timeout:.0f} s.") from None
        wall = time.perf_counter() - started
        self.ended_at = time.monotonic()
        if process.returncode != 0:
            output = (process.stdout + process.stderr)[-3000:]
            raise AccountingError(f"{' '.join(command[:2])} exited with status {process.returncode}:\n{output}")
        return wall

    def peak_rss_kb(self) -> int | None:
        """Return the largest peak RSS, in KiB, of the processes measured since the last timed() call."""
        if not self.rss_file.exists():
            return None
        values = [int(line) for line in self.rss_file.read_text().split() if line.isdigit()]
        return max(values) if values else None

    def startup(self) -> float:
        return self.timed(self.playbook_command("noop.yml", None), timeout=120)

    def run_case(self, case: str, size: int) -> Measurement:
        ids = self.seed(size)
        timeout = 120 + size * 0.2
        if case == "A":
            wall = self.timed(self.playbook_command("module.yml", self.write_input(ids)), timeout)
        elif case == f"A, max_concurrency={CONCURRENCY}":
            input_path = self.write_input(ids, max_concurrency=CONCURRENCY)
            wall = self.timed(self.playbook_command("module.yml", input_path), timeout)
        elif case == "B":
            wall = self.timed(self.playbook_command("uri.yml", self.write_input(ids)), 120 + size * 2)
        elif case == "C":
            command = [str(self.python), str(BENCHMARKS_DIR / "plain_client.py"), str(self.write_input(ids))]
            if self.measured_python is not None:
                command[0] = str(self.measured_python)
            wall = self.timed(command, timeout)
        else:
            raise ValueError(f"Unknown case {case!r}.")
        first_request_time = min(record.time for record in self.emulator.requests)
        measurement = Measurement(
            case=case,
            size=size,
            wall=wall,
            deactivate_requests=len(self.emulator.api_requests("deactivate")),
            authorize_requests=len(self.emulator.api_requests("authorize")),
            handshakes=self.emulator.connection_count,
            peak_rss_kb=self.peak_rss_kb(),
            first_request=first_request_time - self.started_at,
            request_span=self.ended_at - first_request_time,
        )
        self.check_accounting(case, ids, measurement, in_order=not case.startswith("A, max_concurrency"))
        return measurement

    def check_accounting(self, case: str, ids: list, measurement: Measurement, in_order: bool) -> None:
        """Raise AccountingError unless each id was sent once, in batches of 15, and every token is inactive."""
        problems = []
        expected_requests = math.ceil(len(ids) / BATCH_SIZE)
        if measurement.deactivate_requests != expected_requests:
            problems.append(f"{measurement.deactivate_requests} deactivate requests, expected {expected_requests}")
        if measurement.authorize_requests != 1:
            problems.append(f"{measurement.authorize_requests} authentication requests, expected 1")
        batches = [record.ids or [] for record in self.emulator.api_requests("deactivate")]
        if any(len(batch) > BATCH_SIZE for batch in batches):
            problems.append(f"a deactivate request had more than {BATCH_SIZE} ids")
        sent = [token_id for batch in batches for token_id in batch]
        if not in_order:
            sent, ids_to_compare = sorted(sent), sorted(ids)
        else:
            ids_to_compare = ids
        if sent != ids_to_compare:
            problems.append("the ids sent differ from the requested ids, or their order does")
        still_active = sum(self.emulator.token_active(ORG_ID, token_id) for token_id in ids)
        if still_active:
            problems.append(f"{still_active} of {len(ids)} tokens are still active")
        if problems:
            raise AccountingError(f"Case {case} at N={len(ids)}: " + "; ".join(problems) + ".")


def measure_emulator_overhead(emulator: Emulator, count: int = 50) -> dict:
    """Time `count` requests on one keep-alive connection with the emulator's latency at 0.

    A server that sends headers and body in two writes without TCP_NODELAY meets the client's delayed ACK and
    adds about 40 ms to each response, so the median here shows whether the emulator adds delay of its own.
    """
    saved_latency = emulator.latency
    emulator.latency = 0
    emulator.reset()
    emulator.add_org(ORG_ID)
    emulator.add_api_token(API_TOKEN, roles={ORG_ID: "org_owner"})
    emulator.add_tokens(ORG_ID, ["overhead-check"])
    durations = []
    try:
        with requests.Session() as session:
            session.trust_env = False
            session.verify = emulator.ca_path
            url = emulator.url + "/csp/gateway/am/api/auth/api-tokens/authorize"
            for _repeat in range(count):
                started = time.perf_counter()
                response = session.post(url, data={"api_token": API_TOKEN}, timeout=10)
                durations.append(time.perf_counter() - started)
                response.raise_for_status()
    finally:
        emulator.latency = saved_latency
    return {
        "requests": count,
        "median_ms": statistics.median(durations) * 1000,
        "max_ms": max(durations) * 1000,
        "handshakes": emulator.connection_count,
    }


def measure_import_time(python: Path, env: dict, top: int = 12) -> dict:
    """Import the module under `python -X importtime` and return the total and the slowest top-level packages.

    Each package's time is the sum of the self times of its modules, so nested imports are counted once.
    """
    module = "ansible_collections.csp.iam.plugins.modules.csp_api_token_deactivate"
    code = f"import sys; sys.path.insert(0, {env['ANSIBLE_COLLECTIONS_PATH']!r}); import {module}"
    process = subprocess.run(
        [str(python), "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    per_package: dict[str, int] = {}
    total_us = 0
    for line in process.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative_us, name = line[len("import time:"):].split("|", 2)
        name = name.strip()
        if name.startswith("ansible_collections.csp.iam."):
            package = name  # this collection's own modules, one by one
        else:
            package = name.split(".")[0]
        per_package[package] = per_package.get(package, 0) + int(self_us)
        total_us += int(self_us)
    slowest = sorted(per_package.items(), key=lambda item: item[1], reverse=True)[:top]
    return {"total_ms": total_us / 1000, "top": [(name, us / 1000) for name, us in slowest]}


def cases_for(report: Report) -> list:
    cases = ["A"]
    if report.has_max_concurrency:
        cases.append(f"A, max_concurrency={CONCURRENCY}")
    return cases + ["B", "C"]


def floor_seconds(size: int, latency: float) -> float:
    return (math.ceil(size / BATCH_SIZE) + 1) * latency


def format_ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def results_table(report: Report, sizes: list) -> list:
    """Return the Markdown lines of the per-run table and the ratio table."""
    lines = [
        "| N | case | wall s | minus start-up s | first request after s | requests to exit s | deactivate requests "
        "| auth requests | TLS handshakes | module peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        lines.append(f"| {size} | floor | {floor_seconds(size, report.latency):.3f} | | | | "
                     f"{math.ceil(size / BATCH_SIZE)} | 1 | 1 | |")
        for case in cases_for(report):
            measurement = report.get(case, size)
            if measurement is None:
                reason = next((text for skipped_case, skipped_size, text in report.skipped
                               if skipped_case == case and skipped_size == size), "not run")
                lines.append(f"| {size} | {case} | {reason} | | | | | | | |")
                continue
            rss = f"{measurement.peak_rss_kb / 1024:.1f}" if measurement.peak_rss_kb else "n/a"
            net = f"{measurement.net:.3f}" if case != "C" else ""
            lines.append(
                f"| {size} | {case} | {measurement.wall:.3f} | {net} | {measurement.first_request:.3f} | "
                f"{measurement.request_span:.3f} | {measurement.deactivate_requests} | "
                f"{measurement.authorize_requests} | {measurement.handshakes} | {rss} |"
            )
    lines += [
        "",
        "Ratios of wall times, with the ansible-playbook start-up subtracted from A and B:",
        "",
        f"| N | A / C | A / floor | B / A | A with max_concurrency={CONCURRENCY} / A | "
        f"A with max_concurrency={CONCURRENCY} / C |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        a, b, c = (report.get(case, size) for case in ("A", "B", "C"))
        parallel = report.get(f"A, max_concurrency={CONCURRENCY}", size)
        net = {name: m.net if m else None for name, m in (("a", a), ("b", b), ("p", parallel))}
        lines.append(
            f"| {size} | {format_ratio(net['a'], c.wall if c else None)} | "
            f"{format_ratio(net['a'], floor_seconds(size, report.latency))} | {format_ratio(net['b'], net['a'])} | "
            f"{format_ratio(net['p'], net['a'])} | {format_ratio(net['p'], c.wall if c else None)} |"
        )
    return lines


def target_lines(report: Report, sizes: list) -> list:
    """Return one line per target of the benchmark, computed from the measurements: met, missed or not measured."""

    def verdict(passed: bool | None) -> str:
        if passed is None:
            return "not measured"
        return "met" if passed else "missed"

    sequential = [m.handshakes for m in report.measurements if m.case == "A"]
    parallel = [m.handshakes for m in report.measurements if m.case.startswith("A, max_concurrency")]
    lines = [f"- One TLS handshake per sequential module run at every N: "
             f"{verdict(all(h == 1 for h in sequential) if sequential else None)} "
             f"(handshakes seen: {sorted(set(sequential))})."]
    if parallel:
        lines.append(f"- With max_concurrency={CONCURRENCY}, one TLS handshake per concurrent connection: "
                     f"{verdict(all(h <= CONCURRENCY for h in parallel))} (handshakes seen: {sorted(set(parallel))}).")

    for size in [s for s in sizes if s >= 1500]:
        a, c = report.get("A", size), report.get("C", size)
        ratio = a.net / c.wall if a and c else None
        lines.append(f"- A at most 1.1 times C at N={size}: {verdict(None if ratio is None else ratio <= 1.1)} "
                     f"(A / C = {format_ratio(a.net if a else None, c.wall if c else None)}, A / floor = "
                     f"{format_ratio(a.net if a else None, floor_seconds(size, report.latency))}).")

    a, b = report.get("A", 1500), report.get("B", 1500)
    ratio = b.net / a.net if a and b else None
    lines.append(f"- A at least 10 times faster than B at N=1500: {verdict(None if ratio is None else ratio >= 10)} "
                 f"(B / A = {format_ratio(b.net if b else None, a.net if a else None)}).")

    a = report.get("A", 15000)
    rss_mb = a.peak_rss_kb / 1024 if a and a.peak_rss_kb else None
    lines.append(f"- Module peak RSS under 100 MB at N=15000: {verdict(None if rss_mb is None else rss_mb < 100)}"
                 + (f" ({rss_mb:.1f} MB)." if rss_mb else "."))

    parallel, a, c = report.get(f"A, max_concurrency={CONCURRENCY}", 1500), report.get("A", 1500), report.get("C", 1500)
    if parallel and a and c:
        passed = parallel.net <= 0.35 * a.net and parallel.net < c.wall
        detail = f"{format_ratio(parallel.net, a.net)} of sequential A, {format_ratio(parallel.net, c.wall)} of C"
    else:
        passed, detail = None, "the module has no max_concurrency option yet" if not report.has_max_concurrency else "N=1500 not run"
    lines.append(f"- max_concurrency={CONCURRENCY} at N=1500 at most 0.35 times sequential A, and faster than C: "
                 f"{verdict(passed)} ({detail}).")
    return lines


def render(report: Report, sizes: list, command: str) -> str:
    overhead = report.emulator_overhead
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}.",
        "",
        f"Emulator latency {report.latency * 1000:g} ms per API request. ansible-playbook start-up (a playbook "
        f"with one `ansible.builtin.meta: noop` task): {report.startup:.3f} s, the fastest of "
        f"{len(report.startup_samples)} runs ({', '.join(f'{s:.3f}' for s in report.startup_samples)} s).",
        "",
        *results_table(report, sizes),
        "",
        "Targets, computed from this run:",
        "",
        *target_lines(report, sizes),
        "",
        f"Emulator overhead at latency 0: median {overhead['median_ms']:.2f} ms, max {overhead['max_ms']:.2f} ms "
        f"over {overhead['requests']} requests on {overhead['handshakes']} connection(s).",
        "",
        f"Import time of the module and its module_utils (`python -X importtime`): {report.import_time['total_ms']:.0f} ms "
        "in all. The slowest packages, each with the self time of all its modules:",
        "",
        "| package | ms |",
        "|---|---:|",
        *[f"| `{name}` | {ms:.1f} |" for name, ms in report.import_time["top"]],
    ]
    if report.skipped:
        lines += ["", "Skipped: " + "; ".join(f"{case} at N={size}: {reason}" for case, size, reason in report.skipped) + "."]
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from ansible.release import __version__ as ansible_version

    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, ansible-core {ansible_version}, requests {requests.__version__}"
    )


def write_doc(path: Path, section: str) -> None:
    """Replace the text between the benchmark markers of the page, or create the page with only the markers."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Performance\n\n{DOC_BEGIN}\n{DOC_END}\n"
    if DOC_BEGIN not in text or DOC_END not in text:
        text = text.rstrip("\n") + f"\n\n{DOC_BEGIN}\n{DOC_END}\n"
    before, _separator, rest = text.partition(DOC_BEGIN)
    _old_section, _separator, after = rest.partition(DOC_END)
    path.write_text(f"{before}{DOC_BEGIN}\n{section}{DOC_END}{after}", encoding="utf-8")


def run_benchmark(args: argparse.Namespace, runner: Runner, report: Report) -> None:
    for _repeat in range(3):
        report.startup_samples.append(runner.startup())
    previous_b = None
    for size in args.sizes:
        report.startup_samples.append(runner.startup())
        report.startup = min(report.startup_samples)
        for case in cases_for(report):
            if case == "B" and previous_b is not None:
                projected = previous_b.wall * size / previous_b.size
                if projected > args.b_time_limit:
                    reason = f"skipped, projected {projected:.0f} s from N={previous_b.size} is over --b-time-limit"
                    report.skipped.append((case, size, reason))
                    print(f"N={size} {case}: {reason}", flush=True)
                    continue
            repeats = 1 if case == "B" else args.repeat
            runs = [runner.run_case(case, size) for _repeat in range(repeats)]
            measurement = min(runs, key=lambda m: m.wall)
            measurement.peak_rss_kb = max((m.peak_rss_kb or 0 for m in runs), default=0) or None
            report.measurements.append(measurement)
            if case == "B":
                previous_b = measurement
            print(
                f"N={size} {case}: {measurement.wall:.3f} s, {measurement.deactivate_requests} deactivate requests, "
                f"{measurement.handshakes} TLS handshakes",
                flush=True,
            )
    report.startup = min(report.startup_samples)
    for measurement in report.measurements:
        measurement.net = measurement.wall - (report.startup if measurement.case != "C" else 0.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "scripts/benchmark " + " ".join(argv if argv is not None else sys.argv[1:])
    report = Report(latency=args.latency, startup=0.0, has_max_concurrency=module_has_option("max_concurrency"))
    if not report.has_max_concurrency:
        print("benchmark: the module has no max_concurrency option, so that case is not run", file=sys.stderr)

    work_dir = Path(tempfile.mkdtemp(prefix="csp-benchmark-"))
    try:
        with Emulator(latency=args.latency, state_dir=work_dir / "emulator", host="127.0.0.1") as emulator:
            report.emulator_overhead = measure_emulator_overhead(emulator)
            if report.emulator_overhead["median_ms"] > 20:
                print(
                    f"benchmark: warning: the emulator took a median {report.emulator_overhead['median_ms']:.1f} ms "
                    "per request at latency 0, so it may delay responses, for example on a delayed ACK",
                    file=sys.stderr,
                )
            runner = Runner(emulator, work_dir)
            report.import_time = measure_import_time(runner.python, runner.env)
            try:
                run_benchmark(args, runner, report)
            except AccountingError as error:
                print(f"benchmark: run failed: {error}", file=sys.stderr)
                return 1
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    section = render(report, args.sizes, command.strip())
    print()
    print(section)
    if not args.quick:
        write_doc(args.output, section)
        print(f"benchmark: wrote the results to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
