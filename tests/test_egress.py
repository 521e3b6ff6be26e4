"""What an agent's sandbox can reach: in `proxy` mode only its vendor's allow-listed hosts, through the egress proxy.

Real bubblewrap, real sockets, a real Redis, real processes; the real vendor CLIs where installed.
"""

from __future__ import annotations

import http.server
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest

from swarm import doctor, egress, sandbox
from swarm.agents.base import AgentResult, AgentRun
from swarm.agents.process import Launched, egress_log, launch
from swarm.egress import DEFAULT_ALLOW, Policy, Refused
from swarm.errors import SettingsError
from swarm.runtime import connect
from swarm.sandbox import Network, Sandbox, toolchains
from swarm.settings import VendorSettings, load_settings
from swarm.workspace import reach
from tests.agents.helpers import agent_run, real_cli, real_clis_side_by_side
from tests.agents.test_adapters_e2e import keys_set, pipeline, vendors
from tests.conftest import Project, make_settings, task_file, wait_for

__all__ = ["keys_set"]  # a fixture of the adapter tests, used here too

needs_sandbox = pytest.mark.skipif(
    bool(sandbox.check()) and os.environ.get("CI") != "true", reason=sandbox.check() or "no sandbox"
)

PROBE = r"""
import os, socket, sys

def tunnel(port):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    status = s.recv(4096).split(b"\r\n")[0].decode()
    if " 200 " not in status + " ":
        return "tunnel refused: " + status
    s.sendall(b"GET /hello HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return "tunnel: " + data.decode(errors="replace").split("\r\n\r\n", 1)[-1]

def direct(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return "direct: CONNECTED"
    except OSError as exc:
        return f"direct: failed ({exc})"

print("proxy variable:", os.environ.get("HTTPS_PROXY"))
for arg in sys.argv[1:]:
    kind, port = arg.split("=")
    print(kind, port, tunnel(int(port)) if kind == "tunnel" else direct(int(port)), flush=True)
"""


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        body = b"hello from the allowed server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def allowed_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def probe_run(tmp_path: Path, network: Network, allow: list[str], *targets: str) -> tuple[Launched, str, AgentRun]:
    """The probe script run as an agent through `launch` (the one door every adapter uses), in a sandbox."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    run = agent_run(tmp_path, timeout=60)
    run.home.mkdir(parents=True, exist_ok=True)
    run.sandbox = Sandbox(rw=[run.worktree, run.home], ro=[script], network=network, allow_hosts=allow)
    launched = launch(run, [sys.executable, "-I", str(script), *targets], {"PATH": os.environ["PATH"]})
    return launched, run.log_path.read_text(), run


def redis_port(url: str) -> int:
    port = urlparse(url).port
    assert port is not None, url
    return port


# --- the sandbox in proxy mode, end to end ---


@needs_sandbox
def test_an_agent_reaches_an_allowed_server_through_the_proxy_and_nothing_else(
    tmp_path: Path, allowed_server: int, redis_url: str
) -> None:
    redis = redis_port(redis_url)
    launched, out, run = probe_run(tmp_path, "proxy", [f"127.0.0.1:{allowed_server}"],
                                   f"tunnel={allowed_server}", f"tunnel={redis}", f"direct={redis}",
                                   f"direct={allowed_server}")  # fmt: skip
    assert launched.ended.ok, out
    assert "proxy variable: http://127.0.0.1:3128" in out
    assert f"tunnel {allowed_server} tunnel: hello from the allowed server" in out
    assert f"tunnel {redis} tunnel refused: HTTP/1.1 403 Forbidden" in out, out
    assert f"direct {redis} direct: failed" in out, "the agent reached the host's Redis directly"
    assert f"direct {allowed_server} direct: failed" in out, "the agent reached a host's service directly"
    decisions = egress_log(run.log_path).read_text()
    assert f"allowed CONNECT 127.0.0.1:{allowed_server}" in decisions
    assert f"REFUSED CONNECT 127.0.0.1:{redis}: not on the vendor's allow_hosts" in decisions
    assert launched.egress == (f"refused 127.0.0.1:{redis}",)


@needs_sandbox
def test_the_safeguard_host_network_reaches_the_local_redis(tmp_path: Path, redis_url: str) -> None:
    """What `proxy` mode prevents: on the host's network (the old --share-net), the agent reaches Redis."""
    redis = redis_port(redis_url)
    _, out, _ = probe_run(tmp_path, "host", [], f"direct={redis}")
    assert f"direct {redis} direct: CONNECTED" in out


@needs_sandbox
def test_without_network_there_is_no_proxy_and_no_way_out(tmp_path: Path, redis_url: str) -> None:
    redis = redis_port(redis_url)
    launched, out, run = probe_run(tmp_path, "none", [], f"direct={redis}", "tunnel=1")
    assert "proxy variable: None" in out
    assert f"direct {redis} direct: failed" in out
    assert "tunnel 1" not in out and "Connection refused" in out, "nothing listens on 3128 without a proxy"
    assert not egress_log(run.log_path).exists()


@needs_sandbox
def test_the_proxy_and_the_forwarder_end_with_the_run(tmp_path: Path, allowed_server: int) -> None:
    before = {t.name for t in threading.enumerate()}
    folders = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("swarm-egress-*"))
    launched, out, _ = probe_run(tmp_path, "proxy", [f"127.0.0.1:{allowed_server}"], f"tunnel={allowed_server}")
    assert "hello from the allowed server" in out
    assert not [t for t in threading.enumerate() if t.name.startswith("egress") and t.name not in before]
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("swarm-egress-*")) <= folders, "its socket folder stays"
    forwarders = [p.pid for p in psutil.process_iter(["cmdline"]) if str(egress.FORWARDER) in (p.info["cmdline"] or [])]
    assert not forwarders, f"forwarders outlived the run: {forwarders}"


HANGING = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(f"CONNECT 127.0.0.1:{sys.argv[1]} HTTP/1.1\r\n\r\n".encode())
s.settimeout(1)
try:
    print("answered:", s.recv(4096))
except TimeoutError:
    print("pending", flush=True)
"""


@needs_sandbox
def test_a_connect_still_waiting_when_the_run_ends_counts_as_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver or host that never answers: the agent ends with its CONNECT pending, and the run's notes and
    egress log still say where it was going (once: not again when the upstream attempt gives up later)."""
    monkeypatch.setattr(egress, "CONNECT_TIMEOUT", 8.0)
    before = {t.ident for t in threading.enumerate()}
    with socket.socket() as full:  # a listener whose backlog is full: a connect to it hangs
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            script = tmp_path / "hang.py"
            script.write_text(HANGING)
            run = agent_run(tmp_path, timeout=60)
            run.home.mkdir(parents=True, exist_ok=True)
            run.sandbox = Sandbox(rw=[run.worktree, run.home], ro=[script], network="proxy",
                                  allow_hosts=[f"127.0.0.1:{port}"])  # fmt: skip
            launched = launch(run, [sys.executable, "-I", str(script), str(port)], {"PATH": os.environ["PATH"]})
            assert "pending" in run.log_path.read_text(), run.log_path.read_text()
            assert launched.egress == (f"could not reach 127.0.0.1:{port}",)

            def ended() -> bool:  # the proxy's upstream attempt gives up after CONNECT_TIMEOUT
                return not [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("egress")]

            wait_for(ended, 30, "the proxy's upstream attempt to end")
    failed = [line for line in egress_log(run.log_path).read_text().splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "no answer" in failed[0] and "when the run ended" in failed[0], failed


# --- the policy: names and addresses ---


def test_a_listed_name_that_resolves_to_loopback_is_refused() -> None:
    """DNS rebinding or a hosts-file entry: the name is allowed, the address it resolves to is not."""
    with pytest.raises(Refused, match="127.0.0.1 is not a public address"):
        Policy(("localhost:6379",)).addresses("localhost", 6379)
    assert Policy(("localhost:6379", "127.0.0.1:6379")).addresses("localhost", 6379) == ["127.0.0.1"]
    assert Policy(("127.0.0.1:8080",)).addresses("127.0.0.1", 8080) == ["127.0.0.1"]


NOT_PUBLIC = ["127.0.0.1:6379", "10.0.0.5:443", "192.168.1.1:443", "169.254.169.254:80", "[::1]:443",
              "100.64.0.1:443", "0.0.0.0:443", "[::ffff:127.0.0.1]:6379"]  # fmt: skip


@pytest.mark.parametrize("target", NOT_PUBLIC)
def test_a_pattern_never_lets_a_private_address_through(target: str) -> None:
    host, port = egress.split_target(target)
    with pytest.raises(Refused, match="not a public address"):
        Policy((f"*:{port}",)).addresses(host, port)


@pytest.mark.parametrize("adapter", sorted(DEFAULT_ALLOW))
def test_the_default_allow_lists_refuse_local_services(adapter: str) -> None:
    policy = Policy(DEFAULT_ALLOW[adapter])
    for host, port in [("127.0.0.1", 6379), ("localhost", 443), ("169.254.169.254", 80), ("github.com", 443)]:
        with pytest.raises(Refused):
            policy.addresses(host, port)
    assert policy.listed(DEFAULT_ALLOW[adapter][0].split(":")[0], 443)


def test_a_public_address_named_by_a_pattern_is_let_through() -> None:
    assert Policy(("*-aiplatform.googleapis.com:443", "8.8.8.8:53")).addresses("8.8.8.8", 53) == ["8.8.8.8"]
    policy = Policy(DEFAULT_ALLOW["gemini"])
    assert policy.listed("us-central1-aiplatform.googleapis.com", 443)
    assert not policy.listed("us-central1-aiplatform.googleapis.com", 80)


def test_plain_http_through_the_proxy_is_refused(tmp_path: Path, allowed_server: int) -> None:
    with egress.serving([f"127.0.0.1:{allowed_server}"], tmp_path / "egress.log") as proxy:
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(proxy.socket_path))
        client.sendall(f"GET http://127.0.0.1:{allowed_server}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = client.recv(4096).decode()
        client.close()
    assert answer.startswith("HTTP/1.1 403") and "only CONNECT" in answer
    assert not proxy.socket_path.exists()


def test_a_long_run_of_tunnels_leaves_no_socket_or_thread_open(tmp_path: Path, allowed_server: int) -> None:
    with egress.serving([f"127.0.0.1:{allowed_server}"], tmp_path / "egress.log") as proxy:
        for _ in range(30):
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(proxy.socket_path))
            client.sendall(f"CONNECT 127.0.0.1:{allowed_server} HTTP/1.1\r\n\r\nGET / HTTP/1.0\r\n\r\n".encode())
            data = b""
            while chunk := client.recv(4096):
                data += chunk
            client.close()
            assert data.startswith(b"HTTP/1.1 200 Connection established") and data.endswith(b"allowed server")
        deadline = time.monotonic() + 5
        while (proxy._open or len([t for t in proxy._threads if t.is_alive()]) > 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not proxy._open, "closed tunnels still count against the proxy's limit"


# --- settings ---


def test_each_adapter_has_its_reach_and_the_old_boolean_still_reads() -> None:
    assert reach(VendorSettings(adapter="claude")) == ("proxy", list(DEFAULT_ALLOW["claude"]))
    assert reach(VendorSettings(adapter="codex"))[0] == "proxy"
    assert reach(VendorSettings(adapter="command")) == ("none", [])
    assert reach(VendorSettings(adapter="replay"))[0] == "none"
    assert reach(VendorSettings(adapter="gemini", allow_hosts=["x.example:443"])) == ("proxy", ["x.example:443"])
    assert VendorSettings(adapter="claude", network=True).network == "host"
    assert VendorSettings(adapter="claude", network=False).network == "none"


def test_doctor_says_what_each_vendors_agent_reaches_and_warns_about_the_host_network() -> None:
    hosts = ", ".join(DEFAULT_ALLOW["claude"])
    expected = ("vendor c network", True, f"proxy: only {hosts} (vendors.c.allow_hosts)")
    assert doctor.reach_check("c", VendorSettings(adapter="claude")) == expected
    assert doctor.reach_check("r", VendorSettings(adapter="replay"))[1:] == (True, "none: a loopback of its own only")
    ok, detail = doctor.reach_check("h", VendorSettings(adapter="codex", network="host"))[1:]
    assert ok is None and "unsafe" in detail


def test_a_bad_allow_list_entry_stops_start_up_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "swarm.toml"
    config.write_text('[vendors.claude]\nadapter = "claude"\nallow_hosts = ["api.anthropic.com"]\n')
    with pytest.raises(SettingsError, match=r"vendors\.claude\.allow_hosts.*not host:port"):
        load_settings(config)
    config.write_text('[vendors.claude]\nadapter = "claude"\nnetwork = "open"\n')
    with pytest.raises(SettingsError, match=r"vendors\.claude\.network"):
        load_settings(config)


# --- the real CLIs, where installed: their traffic goes through the proxy, to their vendor's host ---

VENDOR_HOST = {"claude": "api.anthropic.com:443", "codex": "api.openai.com:443",
               "gemini": "generativelanguage.googleapis.com:443"}  # fmt: skip


@pytest.fixture(scope="module")
def proxied_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[AgentRun, AgentResult, float]]:
    """Each real CLI with a fake key in a `proxy` sandbox, all at once (each with its own egress proxy)."""
    runs: dict[str, AgentRun] = {}

    def run(cli: str, folder: Path) -> AgentResult:
        runs[cli] = one = agent_run(folder, "Say hi.", timeout=300)
        one.home.mkdir(parents=True, exist_ok=True)
        one.sandbox = Sandbox(rw=[one.worktree, one.home], ro=[*toolchains(os.environ["PATH"]), one.prompt_file],
                              network="proxy", allow_hosts=list(DEFAULT_ALLOW[cli]))  # fmt: skip
        return real_cli(cli, connect_timeout=20).run(one)

    ran = real_clis_side_by_side(tmp_path_factory, run)
    return {cli: (runs[cli], result, seconds) for cli, (result, seconds) in ran.items()}


@needs_sandbox
@pytest.mark.parametrize("cli", sorted(VENDOR_HOST))
def test_the_real_cli_sends_its_traffic_through_the_proxy_to_its_vendor(
    cli: str, proxied_runs: dict[str, tuple[AgentRun, AgentResult, float]]
) -> None:
    """No internet here: the CLI's CONNECT to its vendor reaches the proxy, which cannot resolve the host (or is
    still waiting on a resolver that never answers when the run ends, as on some CI machines); the run ends as the
    vendor's network failure (never the task's), and the egress log shows where the CLI went."""
    if cli not in proxied_runs:
        pytest.skip(f"{cli} is not installed")
    run, result, seconds = proxied_runs[cli]
    assert result.fault == "vendor" and result.reason in ("network", "auth"), result.message
    assert f"could not reach {VENDOR_HOST[cli]}" in result.message
    assert f"FAILED CONNECT {VENDOR_HOST[cli]}" in egress_log(run.log_path).read_text()
    assert seconds < 90


# --- through the pipeline: each vendor CLI adapter, with its default reach, cannot reach the swarm's Redis ---


@needs_sandbox
@pytest.mark.parametrize("cli", ["claude", "codex", "gemini"])
def test_a_vendor_agent_in_a_real_attempt_cannot_reach_the_swarms_redis(
    cli: str, project: Project, redis_url: str, keys_set: dict[str, str]
) -> None:
    target = f"127.0.0.1:{redis_port(redis_url)}"
    rt = connect(make_settings(project, redis_url, vendors=vendors()))
    project.add_tasks({"reach": task_file("Reach", f"reach {target} src/reach.txt")})
    assert pipeline(rt).run("reach", cli) == "landed"
    assert project.show("src/reach.txt") == "direct failed; proxy HTTP/1.1 403 Forbidden"
    decisions = egress_log(Path(rt.book.history("reach")[-1].log_dir) / "agent.log").read_text()
    assert f"REFUSED CONNECT {target}: not on the vendor's allow_hosts" in decisions
