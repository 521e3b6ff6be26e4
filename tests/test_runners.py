"""Each runner reader on real output of the real tool, run here on a small project made by the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from swarm import oracle, runners
from swarm.settings import OracleSettings, parse_repo_settings

# Each tool run may take up to 300 s (its subprocess timeout): more than pytest's 300 s default.
pytestmark = pytest.mark.timeout(420)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def run(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    """The tool's stdout and stderr together, as the oracle's log holds them."""
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, check=False)  # fmt: skip
    return done.stdout


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed and CI=true: .ci/run installs it")
        pytest.skip(f"{tool} is not installed")


CARGO_WORKSPACE = {
    "Cargo.toml": '[workspace]\nmembers = ["alpha", "beta"]\nresolver = "2"\n',
    "alpha/Cargo.toml": '[package]\nname = "alpha"\nversion = "0.1.0"\nedition = "2021"\n',
    "alpha/src/lib.rs": """
        pub fn add(a: i32, b: i32) -> i32 { a + b }
        #[cfg(test)]
        mod tests {
            #[test] fn adds() { assert_eq!(super::add(1, 2), 3); }
            #[test] #[ignore] fn slow() {}
            #[test] fn wrong() { assert_eq!(super::add(1, 2), 4); }
        }
        """,
    "alpha/tests/api.rs": "#[test] fn api_works() { assert_eq!(alpha::add(2, 2), 4); }\n",
    "beta/Cargo.toml": '[package]\nname = "beta"\nversion = "0.1.0"\nedition = "2021"\n',
    "beta/src/lib.rs": """
        /// ```
        /// assert_eq!(beta::one(), 1);
        /// ```
        pub fn one() -> i32 { 1 }
        #[cfg(test)]
        mod tests { #[test] fn one() { assert_eq!(super::one(), 1); } #[test] fn two() {} }
        """,
}


def test_cargo_workspace_areas_per_test_binary_and_ignored_as_skipped(tmp_path: Path) -> None:
    need("cargo")
    root = write(tmp_path, CARGO_WORKSPACE)
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    out = run(root, "cargo", "test", "--no-fail-fast", env=env)
    summary = runners.summarize("cargo", out, root)
    assert summary is not None, out
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (5, 1, 1)
    areas = summary["areas"]
    assert areas["alpha src/lib.rs"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert areas["api tests/api.rs"] == {"passed": 1, "failed": 0, "skipped": 0}
    assert areas["beta src/lib.rs"]["passed"] == 2
    assert areas["beta doc-tests"]["passed"] == 1
    quiet = runners.summarize("cargo", run(root, "cargo", "test", "-q", "--no-fail-fast", env=env), root)
    assert quiet is not None and quiet["passed"] == 5 and quiet["areas"] == {}, "-q names no binary: totals only"
    assert runners.summarize("auto", out, root) == summary


def test_cargo_that_does_not_build_has_no_summary(tmp_path: Path) -> None:
    need("cargo")
    root = write(tmp_path, {**CARGO_WORKSPACE, "beta/src/lib.rs": "pub fn one() -> i32 { nope }\n"})
    out = run(root, "cargo", "test", env={"CARGO_TARGET_DIR": str(tmp_path / "target")})
    assert "error" in out
    assert runners.summarize("cargo", out, root) is None


PYTEST_PROJECT = {
    "tests/test_a.py": """
        import pytest
        def test_ok(): assert 1
        def test_bad(): assert 0
        @pytest.mark.skip(reason="later")
        def test_skip(): pass
        class TestK:
            def test_m(self): pass
            @pytest.mark.parametrize("x", [1, 2])
            def test_p(self, x): assert x
        """,
    "tests/sub/test_b.py": """
        import pytest
        def test_b(): pass
        @pytest.fixture
        def broken(): raise RuntimeError("x")
        def test_err(broken): pass
        @pytest.mark.xfail
        def test_xf(): assert 0
        """,
}


def pytest_run(root: Path, *args: str) -> str:
    return run(root, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, env={"PYTEST_ADDOPTS": ""})


def test_pytest_junit_xml_areas_per_test_file(tmp_path: Path) -> None:
    root = write(tmp_path, PYTEST_PROJECT)
    out = pytest_run(root, "--junitxml=reports/junit.xml")
    summary = runners.summarize("pytest", out, root)
    assert summary is not None, out
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (5, 2, 2), "errors fail, xfail skips"
    assert summary["areas"] == {
        "tests/sub/test_b.py": {"passed": 1, "failed": 1, "skipped": 1},
        "tests/test_a.py": {"passed": 4, "failed": 1, "skipped": 1},
    }
    assert runners.summarize("junit:reports/junit.xml", "", root) == summary, "the same file read as plain JUnit"
    assert runners.summarize("auto", out, root) == summary


def test_pytest_without_its_xml_line_counts_its_summary_line(tmp_path: Path) -> None:
    root = write(tmp_path, PYTEST_PROJECT)
    out = pytest_run(root, "-q")
    assert runners.summarize("pytest", out, root) == {"passed": 5, "failed": 2, "skipped": 2, "areas": {}}
    assert runners.summarize("generic", out, root) == {"passed": 5, "failed": 2, "skipped": 2, "areas": {}}


def test_an_xml_outside_the_repository_or_missing_is_not_read(tmp_path: Path) -> None:
    root = write(tmp_path / "repo", PYTEST_PROJECT)
    out = pytest_run(root, f"--junitxml={tmp_path / 'elsewhere.xml'}")
    summary = runners.summarize("pytest", out, root)
    assert summary is not None and summary["areas"] == {}, "only the summary line: the XML is outside the tree"
    assert runners.summarize("junit:missing.xml", out, root) is None
    (root / "bad.xml").write_text("<testsuites><testcase")
    assert runners.summarize("junit:bad.xml", "", root) is None


GO_MODULE = {
    "go.mod": "module example.com/gp\n\ngo 1.19\n",
    "calc/calc.go": "package calc\nfunc Add(a, b int) int { return a + b }\n",
    "calc/calc_test.go": """
        package calc
        import "testing"
        func TestAdd(t *testing.T) { if Add(1, 2) != 3 { t.Fatal("bad") } }
        func TestWrong(t *testing.T) { if Add(1, 2) != 4 { t.Fatal("wrong") } }
        func TestSkip(t *testing.T) { t.Skip("later") }
        func TestTable(t *testing.T) {
            for _, n := range []string{"a", "b"} { t.Run(n, func(t *testing.T) {}) }
        }
        """,
    "strs/strs.go": "package strs\nfunc Up(s string) string { return s }\n",
    "strs/strs_test.go": """
        package strs
        import "testing"
        func TestUp(t *testing.T) { if Up("a") != "a" { t.Fatal() } }
        """,
    "broken/broken.go": "package broken\nfunc X() int { return nope }\n",
    "broken/broken_test.go": 'package broken\nimport "testing"\nfunc TestX(t *testing.T) {}\n',
}


def test_go_test_json_areas_per_package(tmp_path: Path) -> None:
    need("go")
    root = write(tmp_path / "mod", GO_MODULE)
    env = {"GOCACHE": str(tmp_path / "gocache"), "GOPATH": str(tmp_path / "gopath"), "GOFLAGS": "-mod=mod",
           "HOME": str(tmp_path)}  # fmt: skip
    out = run(root, "go", "test", "-json", "./...", env=env)
    summary = runners.summarize("go", out, root)
    assert summary is not None, out
    assert summary["areas"]["example.com/gp/calc"] == {"passed": 3, "failed": 1, "skipped": 1}, "subtests, not parent"
    assert summary["areas"]["example.com/gp/strs"] == {"passed": 1, "failed": 0, "skipped": 0}
    assert summary["areas"]["example.com/gp/broken"]["failed"] == 1, "a package that does not build fails"
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (4, 2, 1)
    assert runners.summarize("auto", out, root) == summary


NODE_PROJECT = {
    "test/a.test.js": """
        const test = require('node:test'); const assert = require('node:assert');
        test('adds', () => assert.equal(1 + 1, 2));
        test('wrong', () => assert.equal(1 + 1, 3));
        test('later', { skip: 'not yet' }, () => {});
        test('noise', () => console.log('# pass 99'));
        test.describe('suite', () => { test.it('inner ok', () => {}); test.it('inner 2', () => {}); });
        """,
    "test/b.test.mjs": """
        import test from 'node:test';
        test('b passes', () => {});
        test('parent', async (t) => { await t.test('child1', () => {}); await t.test('child2', () => {}); });
        """,
}


@pytest.mark.parametrize("reporter", ["tap", "spec"])
def test_node_test_runner_tap_and_spec(tmp_path: Path, reporter: str) -> None:
    need("node")
    root = write(tmp_path, NODE_PROJECT)
    out = run(root, "node", "--test", f"--test-reporter={reporter}")
    summary = runners.summarize("node", out, root)
    assert summary is not None, out
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (8, 1, 1), "a test's own '# pass 99' line"
    assert runners.summarize("auto", out, root) == summary


def test_node_areas_per_file_where_tap_names_every_file(tmp_path: Path) -> None:
    need("node")
    failing = "require('node:test')('{}', () => {{ throw new Error('x') }});\n"
    root = write(tmp_path, {"test/a.test.js": failing.format("bad"), "test/b.test.js": failing.format("also bad")})
    out = run(root, "node", "--test", "--test-reporter=tap")
    summary = runners.summarize("node", out, root)
    assert summary is not None and summary["failed"] == 2
    assert summary["areas"] == {"test/a.test.js": {"passed": 0, "failed": 1, "skipped": 0},
                                "test/b.test.js": {"passed": 0, "failed": 1, "skipped": 0}}  # fmt: skip


def test_json_line_stays_the_contract_and_wins_in_auto(tmp_path: Path) -> None:
    out = '3 passed, 1 failed\n{"passed": 7, "failed": 0, "areas": {"x": {"passed": 7}}}\n'
    assert runners.summarize("json", out, tmp_path) == {"passed": 7, "failed": 0, "areas": {"x": {"passed": 7}}}
    assert runners.summarize("auto", out, tmp_path) == runners.summarize("json", out, tmp_path)
    assert runners.summarize("json", "3 passed, 1 failed\n", tmp_path) is None
    assert runners.summarize("generic", "3 passed, 1 failed\n", tmp_path) == {
        "passed": 3, "failed": 1, "skipped": 0, "areas": {}}  # fmt: skip
    assert runners.summarize("auto", "compiled, nothing ran\n", tmp_path) is None


def test_runner_names_are_checked_in_the_repository_settings() -> None:
    base = '[oracle]\nfast = "x"\nfull = "x"\n'
    assert parse_repo_settings(base, "t").oracle.runner == "json"
    assert parse_repo_settings(base + 'runner = "junit:out/r.xml"\n', "t").oracle.runner == "junit:out/r.xml"
    for bad in ("jest", "junit:", "junit:/etc/r.xml", "junit:../r.xml"):
        with pytest.raises(Exception, match="oracle.runner"):
            parse_repo_settings(base + f'runner = "{bad}"\n', "t")


def test_the_oracle_judges_a_plain_runner_with_its_reader(tmp_path: Path) -> None:
    root = write(tmp_path / "repo", PYTEST_PROJECT)
    (root / "tests/test_a.py").write_text("def test_ok(): pass\n")
    (root / "tests/sub/test_b.py").write_text("def test_b(): pass\ndef test_c(): pass\n")
    command = f"{sys.executable} -m pytest -p no:cacheprovider --junitxml=.swarm-junit.xml"
    cfg = OracleSettings(fast=command, full=command, runner="pytest")
    result = oracle.run(cfg, "full", root, tmp_path / "o.log", tmp_path / "cache", "a1", 60)
    assert result.ok, result.reason
    assert result.passed == 3 and result.summary["areas"]["tests/sub/test_b.py"]["passed"] == 2
    plain = oracle.run(OracleSettings(fast=command, full=command), "full", root, tmp_path / "p.log",
                       tmp_path / "cache", "a1", 60)  # fmt: skip
    assert not plain.ok and "summary" in plain.reason, "the default runner still wants the JSON line"
