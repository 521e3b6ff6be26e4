"""Test runners read natively: turn what a runner prints into the oracle's summary.

The summary is `{"passed", "failed", "skipped", "areas": {name: {"passed", "failed", "skipped"}}}`. A runner is
named by `[oracle] runner` in `.swarm.toml`: `json` (the last JSON line with integer counts: the universal
contract), `cargo`, `pytest` (its JUnit XML), `go` (`go test -json`), `node` (`node --test`, TAP or spec
reporter), `junit:<path>` (a JUnit XML file the command writes inside the repository), `generic` (a
`N passed, M failed, K skipped` line) or `auto` (each of these in turn, the JSON line first).
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

NAMES = ("json", "cargo", "pytest", "go", "node", "generic", "auto")
OUTPUT_BYTES = 8 * 1024 * 1024
"""How much of an oracle's output the readers need: the end of a long `go test -json` stream still counts."""
MAX_XML_BYTES = 64 * 1024 * 1024

Summary = dict[str, Any]


def check_name(runner: str) -> str:
    """The runner's name if it is one this module reads, else ValueError saying which ones are."""
    if runner in NAMES:
        return runner
    if runner.startswith("junit:"):
        path = runner.removeprefix("junit:")
        if not path or path.startswith("/") or ".." in PurePosixPath(path).parts:
            raise ValueError(f"{runner!r}: junit:<path> needs a relative path inside the repository")
        return runner
    raise ValueError(f"unknown runner {runner!r}: one of {', '.join(NAMES)} or junit:<path>")


def summarize(runner: str, output: str, workdir: Path) -> Summary | None:
    """The summary of one run of `runner`, read from its output (and files it wrote in workdir); None if absent."""
    check_name(runner)
    if runner.startswith("junit:"):
        return junit_file(workdir, runner.removeprefix("junit:"))
    if runner == "auto":
        for name in ("json", "go", "cargo", "pytest", "node", "generic"):
            found = READERS[name](output, workdir)
            if found is not None:
                log.debug("auto runner: output read as %s", name)
                return found
        return None
    return READERS[runner](output, workdir)


# --- the summary itself ---


class Tally:
    """Counts in total and per area, built one test (or one batch of tests) at a time."""

    def __init__(self) -> None:
        self.total = {"passed": 0, "failed": 0, "skipped": 0}
        self.areas: dict[str, dict[str, int]] = {}

    def add(self, area: str | None, passed: int = 0, failed: int = 0, skipped: int = 0) -> None:
        for counts in [self.total] + ([self.areas.setdefault(area, _zero())] if area else []):
            counts["passed"] += passed
            counts["failed"] += failed
            counts["skipped"] += skipped

    def summary(self) -> Summary:
        return {**self.total, "areas": {name: self.areas[name] for name in sorted(self.areas)}}


def _zero() -> dict[str, int]:
    return {"passed": 0, "failed": 0, "skipped": 0}


# --- json: the universal contract ---


def json_line(output: str, workdir: Path | None = None) -> Summary | None:
    """The last line that is a JSON object with integer passed/failed counts (an earlier one never counts)."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("passed"), int) and isinstance(data.get("failed"), int):
            return data
        return None
    return None


# --- cargo test ---

_CARGO_RUNNING = re.compile(r"^\s*Running (?:unittests )?(\S+) \((?:.*/)?([^/()]+?)(?:-[0-9a-f]{16})?(?:\.exe)?\)\s*$")
_CARGO_DOC = re.compile(r"^\s*Doc-tests (\S+)\s*$")
_CARGO_RESULT = re.compile(
    r"^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored; \d+ measured; \d+ filtered out"
)


def cargo(output: str, workdir: Path | None = None) -> Summary | None:
    """`cargo test`: one area per test binary (`<binary> <source>`, `<crate> doc-tests`); ignored is skipped.

    With `-q` cargo names no binary, so only the totals are known.
    """
    tally, area, seen = Tally(), None, False
    for line in output.splitlines():
        if m := _CARGO_RUNNING.match(line):
            area = f"{m.group(2)} {m.group(1)}"
        elif m := _CARGO_DOC.match(line):
            area = f"{m.group(1)} doc-tests"
        elif m := _CARGO_RESULT.match(line.strip()):
            seen = True
            passed, failed, ignored = (int(g) for g in m.groups())
            tally.add(area, passed, failed, ignored)
            area = None  # a result belongs to the binary announced just before it, never to a later one
    return tally.summary() if seen else None


# --- go test -json ---


def go(output: str, workdir: Path | None = None) -> Summary | None:
    """`go test -json`: one area per package; leaf tests are counted (a test with subtests is their sum).

    A package that failed without a failing test (it did not build, TestMain crashed) counts one failure.
    """
    results: dict[tuple[str, str], str] = {}
    package_failed: set[str] = set()
    seen = False
    for event in _json_events(output):
        action, package, test = event.get("Action"), event.get("Package"), event.get("Test")
        if not isinstance(package, str) or action not in ("pass", "fail", "skip"):
            continue
        seen = True
        if isinstance(test, str):
            results[(package, test)] = str(action)
        elif action == "fail":
            package_failed.add(package)
    for m in _GO_BUILD_FAILED.finditer(output):  # before Go 1.24 a build failure is a plain line, not an event
        package_failed.add(m.group(1))
    if not seen:
        return None
    parents = {(pkg, name.rsplit("/", 1)[0]) for pkg, name in results if "/" in name}
    tally = Tally()
    for (pkg, name), action in results.items():
        if (pkg, name) not in parents:
            tally.add(pkg, **{_GO_COUNT[action]: 1})
    for pkg in package_failed:
        if not tally.areas.get(pkg, {}).get("failed"):
            tally.add(pkg, failed=1)
    return tally.summary()


_GO_BUILD_FAILED = re.compile(r"^FAIL\t(\S+) \[(?:build|setup) failed\]\s*$", re.M)
_GO_COUNT = {"pass": "passed", "fail": "failed", "skip": "skipped"}


def _json_events(output: str) -> Iterable[dict[str, Any]]:
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith('{"'):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


# --- node --test ---

_NODE_COUNT = re.compile(r"^(?:# |ℹ )(tests|pass|fail|cancelled|skipped|todo) (\d+)\s*$")
_TAP_POINT = re.compile(r"^( *)(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$")
_TAP_LOCATION = re.compile(r"^ *location: '(.+):\d+:\d+'\s*$")


def node(output: str, workdir: Path | None = None) -> Summary | None:
    """`node --test`, TAP or spec reporter: the totals of its final summary block.

    Areas are test files, read from each test's `location:` in TAP. Node 20 prints a location only for failing
    tests, so there areas are left out rather than given for some tests only.
    """
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^(?:# |ℹ )tests \d+\s*$", line)]
    if not starts:
        return None
    counts: dict[str, int] = {}
    for line in lines[starts[-1] : starts[-1] + 12]:  # the last block: a test printing "# pass 9" came earlier
        if m := _NODE_COUNT.match(line):
            counts.setdefault(m.group(1), int(m.group(2)))
    if "pass" not in counts or "fail" not in counts:
        return None
    tally = Tally()
    tally.add(None, counts["pass"], counts["fail"] + counts.get("cancelled", 0),
              counts.get("skipped", 0) + counts.get("todo", 0))  # fmt: skip
    tally.areas = _tap_areas(lines[: starts[-1]], workdir)
    return tally.summary()


def _tap_areas(lines: list[str], workdir: Path | None) -> dict[str, dict[str, int]]:
    """Per-file counts of TAP test points, only when every point names its file."""
    points: list[tuple[str, str | None]] = []
    for line in lines:
        if m := _TAP_POINT.match(line):
            kind = "skipped" if m.group(4) else ("passed" if m.group(2) == "ok" else "failed")
            points.append((kind, None))
        elif (m := _TAP_LOCATION.match(line)) and points and points[-1][1] is None:
            points[-1] = (points[-1][0], _relative(m.group(1), workdir))
    if not points or any(file is None for _, file in points):
        return {}
    tally = Tally()
    for kind, file in points:
        tally.add(file, **{kind: 1})
    return tally.areas


def _relative(path: str, workdir: Path | None) -> str:
    if workdir is not None:
        try:
            return Path(path).resolve().relative_to(workdir.resolve()).as_posix()
        except ValueError:
            pass
    return path


# --- JUnit XML: pytest and any runner that writes it ---

_PYTEST_XML = re.compile(r"generated xml file: (.+?)\s*-*\s*$")


def pytest(output: str, workdir: Path) -> Summary | None:
    """pytest: its JUnit XML (the file named on its `generated xml file:` line), one area per test file.

    Without that line (`-q` hides it, or no `--junitxml`) only the totals of its last summary line are known.
    """
    named = [m.group(1) for line in output.splitlines() if (m := _PYTEST_XML.search(line))]
    if named:
        path = _inside(workdir, named[-1])
        if path is None:
            log.warning("pytest wrote its JUnit XML to %s, outside the repository: reading only its summary line",
                        named[-1])  # fmt: skip
        else:
            found = junit_xml(path, workdir)
            if found is not None:
                return found
    return generic(output, workdir)


def junit_file(workdir: Path, relative: str) -> Summary | None:
    """The JUnit XML file a runner wrote at `relative` inside workdir."""
    path = _inside(workdir, relative)
    return junit_xml(path, workdir) if path is not None else None


def junit_xml(path: Path, workdir: Path) -> Summary | None:
    """Counts of a JUnit XML report: one area per test file (its `file` attribute or its class's module)."""
    try:
        if path.stat().st_size > MAX_XML_BYTES:
            log.warning("%s is larger than %d bytes; not read", path, MAX_XML_BYTES)
            return None
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        log.warning("JUnit XML %s not read: %s", path, exc)
        return None
    tally = Tally()
    area_of = _module_files(workdir)
    for suite, case in _cases(root, None):
        kind = _case_kind(case)
        area = case.get("file") or area_of(case.get("classname") or "") or suite or "tests"
        tally.add(area, **{kind: 1})
    if root.tag not in ("testsuites", "testsuite"):
        return None
    return tally.summary()


def _cases(element: ET.Element, suite: str | None) -> Iterable[tuple[str | None, ET.Element]]:
    for child in element:
        if child.tag == "testsuite":
            yield from _cases(child, child.get("name") or suite)
        elif child.tag == "testcase":
            yield suite, child


def _case_kind(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        return "failed"
    if "skipped" in tags:
        return "skipped"
    return "passed"


def _module_files(workdir: Path) -> Callable[[str], str | None]:
    """classname `tests.sub.test_b.TestK` -> `tests/sub/test_b.py` when that file exists in workdir."""
    cache: dict[str, str | None] = {}

    def area(classname: str) -> str | None:
        if classname not in cache:
            parts = classname.split(".")
            cache[classname] = next(
                (f"{'/'.join(parts[:n])}.py" for n in range(len(parts), 0, -1)
                 if (workdir / f"{'/'.join(parts[:n])}.py").is_file()),
                None,
            )  # fmt: skip
        return cache[classname]

    return area


def _inside(workdir: Path, named: str) -> Path | None:
    """The file `named` resolved inside workdir; an absolute path from a sandbox is matched by its longest tail."""
    root = workdir.resolve()
    path = Path(named)
    candidates = (
        [path] if not path.is_absolute() else [path, *(Path(*path.parts[i:]) for i in range(1, len(path.parts)))]
    )
    for candidate in candidates:
        full = (root / candidate).resolve()
        if full.is_relative_to(root) and full.is_file():
            return full
    return None


# --- the generic line: `N passed, M failed, K skipped` ---

_GENERIC = re.compile(r"\b(\d+) (passed|passing|xpassed|failed|failing|errors?|skipped|pending|xfailed)\b")
_GENERIC_KIND = {
    "passed": "passed", "passing": "passed", "xpassed": "passed",
    "failed": "failed", "failing": "failed", "error": "failed", "errors": "failed",
    "skipped": "skipped", "pending": "skipped", "xfailed": "skipped",
}  # fmt: skip


def generic(output: str, workdir: Path | None = None) -> Summary | None:
    """The last line saying `N passed` or `N failed` (with `, K skipped`, errors as failures); no areas."""
    for line in reversed(output.splitlines()):
        found = _GENERIC.findall(line)
        if not any(_GENERIC_KIND[word] in ("passed", "failed") for _, word in found):
            continue
        tally = Tally()
        for number, word in found:
            tally.add(None, **{_GENERIC_KIND[word]: int(number)})
        return tally.summary()
    return None


READERS: dict[str, Callable[[str, Path], Summary | None]] = {
    "json": json_line,
    "cargo": cargo,
    "pytest": pytest,
    "go": go,
    "node": node,
    "generic": generic,
}
