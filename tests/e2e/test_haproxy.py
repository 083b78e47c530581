"""Many machines, as a deployment runs them: HAProxy (the Debian package) in front of three
gateway instances — launchers with two workers each, separate state folders (no shared file
system) — and one Redis. Everything is started here.

The tests run in file order on one cluster: the last two kill one instance (SIGKILL) and
restart another (SIGTERM) under steady load, and count the requests that failed."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ACCOUNTS, ADMIN_PASSWORD, DANA_PASSWORD, test_policy_dir, wait_for_login_app
from tests.e2e.test_launcher import ACCEPT, ADMIN_ENV, INIT, LOCAL_AUTH
from tests.support.gateway import Gateway, server_entry
from tests.support.haproxy import run_haproxy
from tests.support.launcher import run_launcher
from tests.support.waiting import wait_until
from tests.support.login import cookie_header, login_local
from tests.support.processes import free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(180)

PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
RATE = {"requests_per_second": 25, "burst": 40}  # the steady load below stays under it
LOAD_THREADS = 3
LOAD_INTERVAL = 0.15  # per thread: about 20 requests/s in all


@dataclass
class Instance:
    name: str
    port: int
    directory: Path
    stack: ExitStack = field(default_factory=ExitStack)
    gw: Gateway | None = None


@dataclass
class Cluster:
    url: str
    redis_url: str
    instances: list[Instance]
    launch: callable  # (Instance) -> None: starts it (again) on its port

    def instance_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{i.port}" for i in self.instances]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, upstream_sse_answers, recorder):
    tmp = tmp_path_factory.mktemp("haproxy")
    lb_port = free_port()
    lb_url = f"http://127.0.0.1:{lb_port}"
    policies = test_policy_dir(tmp)
    servers = [server_entry("currenttime", upstream_sse_answers.url), server_entry("rec", recorder.url)]
    with RedisServer(tmp / "redis") as redis, ExitStack() as stack:
        def launch(instance: Instance) -> None:
            instance.stack = ExitStack()
            instance.gw = instance.stack.enter_context(run_launcher(
                instance.directory, servers, workers=2, auth=LOCAL_AUTH, env=ADMIN_ENV, port=instance.port,
                session={"store": redis.url}, sections={"rate_limits": RATE},
                gateway={"public_url": lb_url, "policy_dir": str(policies), "drain_timeout": "10s"}))
            wait_for_login_app(instance.gw)

        instances = [Instance(f"g{i}", free_port(), tmp / f"g{i}") for i in (1, 2, 3)]
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(launch, instances))
        for instance in instances:
            stack.callback(lambda i=instance: i.stack.close())
        stack.enter_context(run_haproxy(tmp, [i.port for i in instances], port=lb_port))
        wait_until(lambda: _get(lb_url + "/healthz") == 200, timeout=20, message="HAProxy up")
        yield Cluster(lb_url, redis.url, instances, launch)


def _get(url: str, **kwargs) -> int | None:
    try:
        return httpx.get(url, timeout=5, **kwargs).status_code
    except httpx.HTTPError:
        return None


def post(base: str, server: str, headers: dict[str, str], body: dict = PING, client: httpx.Client | None = None):
    send = client.post if client else httpx.post
    return send(f"{base}/api/streamable/{server}", json=body, headers={**headers, **ACCEPT}, timeout=10)


def test_a_sign_in_through_the_load_balancer_is_a_session_at_every_instance(cluster):
    admin = cookie_header(login_local(cluster.url, "admin", ADMIN_PASSWORD))
    for url in cluster.instance_urls():
        me = httpx.get(f"{url}/oauth/me", headers=admin, timeout=10)
        assert me.status_code == 200 and me.json()["user"] == "admin", me.text
        assert post(url, "currenttime", admin, INIT).status_code == 200
    # nothing of the registry or the sessions is kept in the instances' folders
    for instance in cluster.instances:
        assert not (instance.directory / "state" / "registry.toml").exists()
        assert not (instance.directory / "state" / "sessions.db").exists()


def test_an_sse_stream_on_one_instance_gets_the_answers_to_posts_sent_to_the_others(cluster):
    tina = cookie_header(login_local(cluster.url, "tina", ACCOUNTS["tina"][0]))
    first, *others = cluster.instance_urls()
    with httpx.Client(timeout=15) as http, http.stream("GET", f"{first}/api/execute/currenttime/sse",
                                                       headers=tina) as stream:
        events = (line[5:] for line in stream.iter_lines() if line.startswith("data:"))
        path = next(events).strip()
        init = {**INIT, "params": {**INIT["params"], "protocolVersion": "2024-11-05"}}
        assert http.post(others[0] + path, json=init, headers=tina).status_code == 202
        assert json.loads(next(events))["id"] == 1
        http.post(others[1] + path, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=tina)
        for request_id, url in enumerate(others, start=2):
            assert http.post(url + path, json={"jsonrpc": "2.0", "id": request_id, "method": "tools/list"},
                             headers=tina).status_code == 202
            answer = json.loads(next(events))
            assert answer["id"] == request_id
            assert [t["name"] for t in answer["result"]["tools"]] == ["current_time_by_timezone"]


def seconds_until_seen(predicate, since: float, message: str) -> float:
    """How long after `since` began the first round of requests in which `predicate` held: a round's
    own requests take time on a loaded host, and are not what is measured."""
    rounds: list[float] = []

    def holds() -> bool:
        rounds.append(time.monotonic())
        return predicate()

    wait_until(holds, timeout=5.0, interval=0.02, message=message)
    return rounds[-1] - since


def test_a_toggle_through_one_instance_is_in_force_at_the_others_within_a_second(cluster):
    admin = cookie_header(login_local(cluster.url, "admin", ADMIN_PASSWORD))
    first, *others = cluster.instance_urls()
    toggle = f"{first}/api/servers/rec/toggle"

    def every_worker_answers(status: int) -> bool:  # of every other instance: several requests each
        return all(post(url, "rec", admin).status_code == status for url in others for _ in range(4))

    try:
        assert httpx.post(toggle, json={"enabled": False}, headers=admin, timeout=10).status_code == 200
        lag = seconds_until_seen(lambda: every_worker_answers(503), time.monotonic(), "disabled at every instance")
        assert lag < 1.0, f"disabled everywhere only by the round begun {lag:.2f} s after the toggle"
    finally:
        assert httpx.post(toggle, json={"enabled": True}, headers=admin, timeout=10).status_code == 200
    lag = seconds_until_seen(lambda: every_worker_answers(200), time.monotonic(), "enabled again at every instance")
    assert lag < 1.0, f"enabled everywhere only by the round begun {lag:.2f} s after the toggle"


def test_rate_limits_hold_across_the_instances(cluster):
    dana = cookie_header(login_local(cluster.url, "dana", DANA_PASSWORD))
    with httpx.Client(timeout=10) as client:
        started = time.monotonic()
        codes = [post(cluster.url, "currenttime", dana, INIT, client).status_code for _ in range(70)]
        elapsed = time.monotonic() - started
    allowed = codes.count(200)
    # one bucket for dana on currenttime, whichever instance and worker answers (per process: 6 × 40)
    assert RATE["burst"] <= allowed <= RATE["burst"] + RATE["requests_per_second"] * elapsed + 1, codes
    assert codes.count(429) == len(codes) - allowed


class SteadyLoad:
    """Threads sending MCP requests through the load balancer at a steady pace; every request's
    start, end and outcome is kept."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.url, self.headers = url, headers
        self.results: list[tuple[float, float, int | str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    outcome: int | str = post(self.url, "rec", self.headers, client=client).status_code
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                self.results.append((started, time.monotonic(), outcome))
                self._stop.wait(max(0.0, LOAD_INTERVAL - (time.monotonic() - started)))

    def stop(self) -> list[tuple[float, float, int | str]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)
        return self.results

    def failures(self) -> list[tuple[float, float, int | str]]:
        return [r for r in self.results if r[2] != 200]


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_an_instance_killed_under_load_fails_only_the_requests_it_held(cluster):
    admin = cookie_header(login_local(cluster.url, "admin", ADMIN_PASSWORD))
    victim = cluster.instances[2]
    load = SteadyLoad(cluster.url, admin)
    time.sleep(1.0)  # steady state: every instance serves part of the load
    os.killpg(victim.gw.process.proc.pid, signal.SIGKILL)  # the machine is gone: launcher, workers, login app
    # SIGKILL takes effect when the kernel gets to it: the instance is gone once its port refuses.
    gone_at = wait_until(lambda: refuses_connections(victim.port) and time.monotonic(), timeout=10,
                         interval=0.005, message="the killed instance's port closed")
    time.sleep(3.0)
    results = load.stop()
    failures = load.failures()
    assert len(results) > 40
    # at most one request per load thread can have been in flight at the victim
    assert len(failures) <= LOAD_THREADS, failures
    assert all(started <= gone_at for started, _, _ in failures), (gone_at, failures)
    later = [r for r in results if r[0] > gone_at]
    assert later and all(outcome == 200 for _, _, outcome in later)


def test_a_graceful_restart_under_load_fails_no_request(cluster):
    admin = cookie_header(login_local(cluster.url, "admin", ADMIN_PASSWORD))
    instance = cluster.instances[1]
    load = SteadyLoad(cluster.url, admin)
    time.sleep(1.0)
    before = instance.gw.log.count("access allowed")
    os.kill(instance.gw.process.proc.pid, signal.SIGTERM)
    assert instance.gw.process.proc.wait(20) == 0
    assert instance.gw.log.count("drained; stopping") == 2
    instance.stack.close()
    cluster.launch(instance)  # the same port again, as a restarted pod or service would
    wait_until(lambda: instance.gw.log.count("access allowed user=admin server=rec") > 0, timeout=20,
               message="the restarted instance serves its share again")
    time.sleep(0.5)
    load.stop()
    assert before > 0
    assert load.failures() == [], load.failures()
