"""`evo1 serve`: both wire formats against in-process predictions, batching, tokens, bad input, load."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
from conftest import Running, make_stats
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from evo1cli.client import wire
from evo1cli.client.remote import ChunkExecutor, PolicyClient, RequestError
from evo1cli.model.policy import Evo1Model, Observation
from evo1cli.runtime.policy import chunk_noise

SEED = 7


@pytest.fixture(scope="module")
def policy(tiny_config):
    return Evo1Model.build(tiny_config.replace(horizon=8, num_inference_steps=4), stats=make_stats()).eval()


@pytest.fixture(scope="module")
def running(policy):
    server = Running(policy)
    yield server
    server.stop()


def image(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 4, 3), dtype=np.uint8)


def expected(policy: Evo1Model, images, state, prompt="reach the goal") -> np.ndarray:
    noise = chunk_noise((policy.config.horizon, policy.config.action_dim), SEED)  # what `--seed` fixes
    return policy.predict([Observation(images, prompt, state)], noise=noise[None])[0]


def test_health_and_metadata(running):
    with urllib.request.urlopen(running.url.replace("ws://", "http://") + "/healthz") as response:
        assert response.status == 200 and response.read() == b"ok\n"
    with PolicyClient(running.url) as client:
        meta = client.metadata
    assert meta["type"] == "metadata" and meta["horizon"] == 8
    assert meta["action_dims"] == {"metaworld/mt50": 4} and meta["state_dims"] == {"metaworld/mt50": 8}
    assert set(meta["protocols"]) == {"msgpack", "authors"}


def test_msgpack_client_gets_the_policys_chunk(running, policy):
    state = np.linspace(-1, 1, 8).astype(np.float32)
    with PolicyClient(running.url) as client:
        actions = client.infer([image(1)], state, "reach the goal")
        timing = client.last_timing
    assert actions.shape == (8, 4) and actions.dtype == np.float32
    assert np.allclose(actions, expected(policy, [image(1)], state), atol=1e-5)
    assert timing["total_ms"] >= timing["infer_ms"] > 0 and timing["batch_size"] >= 1


def test_authors_json_client_gets_the_same_chunk(running, policy):
    state = np.linspace(-1, 1, 8)
    bgr = image(2)[:, :, ::-1]
    blank = np.zeros((448, 448, 3), np.uint8).tolist()
    request = {
        "image": [bgr.tolist(), blank, blank],
        "image_mask": [1, 0, 0],
        "state": state.tolist() + [0.0] * 16,  # pre-padded, as the authors' clients do
        "prompt": "reach the goal",
        "action_mask": [[1] * 4 + [0] * 20],  # nested: breaks the authors' own server, fine here
        "arm_key": "metaworld",
    }
    with connect(running.url, max_size=None) as ws:
        ws.send(json.dumps(request))
        reply = np.array(json.loads(ws.recv()))
    assert reply.shape == (8, 24) and not reply[:, 4:].any()
    assert np.allclose(reply[:, :4], expected(policy, [image(2), None, None], state.astype(np.float32)), atol=1e-5)


def test_relative_actions_come_back_absolute(tiny_config):
    config = tiny_config.replace(horizon=8, num_inference_steps=2)
    absolute = Evo1Model.build(config, stats=make_stats()).eval()
    relative = Evo1Model.build(config.replace(relative_actions=True), stats=make_stats()).eval()
    server = Running(relative)
    try:
        state = np.arange(8, dtype=np.float32)
        with PolicyClient(server.url) as client:
            actions = client.infer([image(3)], state, "reach the goal")
        assert np.allclose(actions, expected(absolute, [image(3)], state) + state[:4], atol=1e-5)
    finally:
        server.stop()


def test_token_is_required_when_set(policy):
    server = Running(policy, token="s3cret")
    try:
        with pytest.raises(RequestError, match="HTTP 401"):
            PolicyClient(server.url, retries=0)
        with PolicyClient(server.url, token="s3cret") as client:
            assert client.infer([image()], np.zeros(8), "x").shape == (8, 4)
        with connect(server.url + "?token=s3cret") as ws:  # the authors' clients can put it in the URL
            ws.send(json.dumps({"image": [image()[:, :, ::-1].tolist()], "state": [0] * 8, "prompt": "x"}))
            assert np.array(json.loads(ws.recv())).shape == (8, 24)
    finally:
        server.stop()


def _ask(ws, frame):
    ws.send(frame)
    reply = ws.recv()
    return json.loads(reply) if isinstance(reply, str) else wire.unpack(reply)


GOOD = {"images": [image()], "state": np.zeros(8, np.float32), "prompt": "reach"}
BAD_FRAMES = [
    (b"\x00\x01garbage", "message"),
    (wire.pack([1, 2, 3]), "message"),
    (wire.pack({**GOOD, "images": []}), "images"),
    (wire.pack({**GOOD, "images": [None]}), "images"),
    (wire.pack({**GOOD, "images": [np.zeros((8, 8, 3), np.float32)]}), "images[0]"),
    (wire.pack({**GOOD, "images": [np.zeros((8, 8), np.uint8)]}), "images[0]"),
    (wire.pack({**GOOD, "images": [image()] * 4}), "images"),
    (wire.pack({**GOOD, "images": ["a picture"]}), "images[0]"),
    (wire.pack({**GOOD, "state": np.zeros(7, np.float32)}), "state"),
    (wire.pack({**GOOD, "state": np.array([np.nan] * 8)}), "state"),
    (wire.pack({**GOOD, "state": "zeros"}), "state"),
    (wire.pack({**GOOD, "prompt": 5}), "prompt"),
    (wire.pack({**GOOD, "embodiment": "aloha"}), "embodiment/dataset"),
    (
        wire.pack({**GOOD, "images": [{b"__ndarray__": True, b"data": b"xx", b"dtype": "<f4", b"shape": [9]}]}),
        "images[0]",
    ),
    (
        wire.pack({**GOOD, "images": [{b"__ndarray__": True, b"data": b"xx", b"dtype": "|O", b"shape": [1]}]}),
        "images[0]",
    ),
    ("not json", "message"),
    (json.dumps([1]), "message"),
    (json.dumps({"image": "x", "state": [0] * 8, "prompt": "p"}), "image"),
    (json.dumps({"image": [[[1, 2, 3]]], "state": [0] * 8, "prompt": "p"}), "image[0]"),
    (json.dumps({"image": [[[[300, 0, 0]]]], "state": [0] * 8, "prompt": "p"}), "image[0]"),
    (json.dumps({"image": [[[[1, 0, 0]]]], "image_mask": [0], "state": [0] * 8, "prompt": "p"}), "image_mask"),
    (json.dumps({"image": [[[[1, 0, 0]]]], "state": [0] * 8, "prompt": "p", "action_mask": "all"}), "action_mask"),
    (json.dumps({"image": [[[[1, 0, 0]]]], "state": [0] * 9 + [1], "prompt": "p"}), "state"),
    (
        json.dumps({"image": [[[[1, 0, 0]]]], "state": [0] * 8, "prompt": "p", "dataset_key": "nope"}),
        "arm_key/dataset_key",
    ),
]


@pytest.mark.parametrize("frame, field", BAD_FRAMES, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_FRAMES)])
def test_bad_frames_get_an_error_naming_the_field(running, frame, field):
    with connect(running.url, max_size=None) as ws:
        reply = _ask(ws, frame)
        assert reply["error"]["field"] == field, reply
        after = _ask(ws, wire.pack(GOOD))  # the same connection keeps working
        assert after["actions"].shape == (8, 4)


def test_oversized_frames(policy):
    server = Running(policy, max_message_bytes=100_000)
    try:
        with connect(server.url, max_size=None) as ws:
            reply = _ask(ws, wire.pack({**GOOD, "images": [np.zeros((200, 200, 3), np.uint8)]}))  # 120 KB
            assert reply["error"]["field"] == "message" and "limit" in reply["error"]["message"]
            with pytest.raises(ConnectionClosed):  # beyond twice the limit the frame is not even read
                _ask(ws, wire.pack({**GOOD, "images": [np.zeros((400, 400, 3), np.uint8)]}))
        with PolicyClient(server.url) as client:  # and the server goes on
            assert client.infer([image()], np.zeros(8), "x").shape == (8, 4)
    finally:
        server.stop()


def test_requests_arriving_together_share_a_forward_pass(policy):
    server = Running(policy, batch_window_s=0.2)
    try:
        clients = [PolicyClient(server.url) for _ in range(6)]
        states = [np.full(8, i / 10, np.float32) for i in range(6)]
        results: dict[int, np.ndarray] = {}

        def ask(i: int) -> None:
            results[i] = clients[i].infer([image(i)], states[i], "reach the goal")

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert max(server.server.stats.batches) > 1
        for i in range(6):  # batching does not change anyone's answer
            assert np.allclose(results[i], expected(policy, [image(i)], states[i]), atol=1e-5)
        for c in clients:
            c.close()
    finally:
        server.stop()


def test_chunk_executor_requeries_when_the_chunk_is_used(running):
    with PolicyClient(running.url) as client:
        executor = ChunkExecutor(client, execute=3)
        before = running.server.stats.requests
        actions = [executor.act([image()], np.zeros(8), "reach") for _ in range(7)]
        assert running.server.stats.requests - before == 3  # ticks 0, 3 and 6
        assert np.array_equal(actions[0], actions[3]) and actions[0].shape == (4,)


def test_a_timed_out_request_closes_the_session_so_its_late_reply_is_never_taken(policy):
    from evo1cli.deploy.fakes import Delayed
    from evo1cli.runtime.policy import LocalPolicy

    class SlowOnRequest:  # 1.5 s for the prompt "slow", at once otherwise
        model = policy

        def __init__(self):
            self.local, self.slow = LocalPolicy(policy), Delayed(LocalPolicy(policy), 1.5)

        def infer(self, queries):
            return (self.slow if queries[0].prompt == "slow" else self.local).infer(queries)

    server = Running(SlowOnRequest())
    try:
        client = PolicyClient(server.url, timeout_s=0.3)
        with pytest.raises(RequestError, match=r"^timeout: no reply from .* within 0\.3 s"):
            client.infer([image(1)], np.zeros(8), "slow")
        client.timeout_s = 30
        state = np.full(8, 0.5, np.float32)
        answer = client.infer([image(2)], state, "reach the goal")  # a new connection; the late reply is lost
        assert np.allclose(answer, expected(policy, [image(2)], state), atol=1e-5)
        assert np.allclose(client.infer([image(2)], state, "reach the goal"), answer)  # and it stays in step
        client.close()
    finally:
        server.stop()


def test_a_query_seed_gives_the_same_chunk_remotely_and_locally(running, policy):
    from evo1cli.client.chunks import Query
    from evo1cli.client.remote import RemotePolicy
    from evo1cli.runtime.policy import LocalPolicy

    queries = [Query([image(3)], np.full(8, 0.1, np.float32), "reach", seed=4042, index=i) for i in (0, 1)]
    with PolicyClient(running.url) as client:
        remote = RemotePolicy(client).infer(queries)
    local = LocalPolicy(policy).infer(queries)
    for r, loc in zip(remote, local, strict=True):
        np.testing.assert_allclose(r, loc, atol=1e-5)
    assert not np.allclose(remote[0], remote[1])  # (seed, index) keys the noise
    with connect(running.url, max_size=None) as ws:
        assert _ask(ws, wire.pack({**GOOD, "seed": [1, "x"]}))["error"]["field"] == "seed"


@pytest.mark.slow
def test_load_many_clients_many_requests(running, policy):
    failures: list[BaseException] = []
    reference = expected(policy, [image(5)], np.zeros(8, np.float32))

    def work() -> None:
        try:
            with PolicyClient(running.url) as client:
                for _ in range(8):
                    assert np.allclose(client.infer([image(5)], np.zeros(8), "reach the goal"), reference, atol=1e-5)
        except BaseException as err:  # collected and reported below
            failures.append(err)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]


def _fuzz_frames(rng: np.random.Generator, n: int) -> list[bytes | str]:
    atoms = [None, True, 3, -1.5, "x", b"\xff", [], {}, [1, "a"], {"a": 1}, np.zeros(3, np.uint8), 2**70]
    frames: list[bytes | str] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            frames.append(rng.bytes(int(rng.integers(0, 200))))
        elif kind == 1:
            frames.append(rng.bytes(int(rng.integers(1, 100))).decode("latin-1"))
        else:
            base = dict(GOOD) if kind == 2 else {"image": [[[[1, 2, 3]]]], "state": [0] * 8, "prompt": "p"}
            for _ in range(int(rng.integers(1, 3))):
                key = rng.choice([*base, "id", "embodiment", "arm_key", "image_mask", "action_mask"])
                base[str(key)] = atoms[int(rng.integers(len(atoms)))]
            try:
                frames.append(wire.pack(base) if kind == 2 else json.dumps(base))
            except (TypeError, OverflowError, ValueError):
                frames.append(b"\x93")
    return frames


@pytest.mark.slow
def test_fuzz_thousands_of_malformed_frames(running, policy):
    psutil = pytest.importorskip("psutil")
    process = psutil.Process(os.getpid())
    frames = _fuzz_frames(np.random.default_rng(0), 3000)
    with connect(running.url, max_size=None) as ws:
        _ask(ws, frames[0])
        rss = process.memory_info().rss
        answered = 0
        for frame in frames:
            reply = _ask(ws, frame)
            answered += 1
            assert "error" in reply or "actions" in reply or isinstance(reply, list)
        grown = process.memory_info().rss - rss
        good = _ask(ws, wire.pack({**GOOD, "images": [image(4)]}))
    assert answered == len(frames)
    assert np.allclose(good["actions"], expected(policy, [image(4)], np.zeros(8, np.float32), "reach"), atol=1e-5)
    assert grown < 200 * 2**20, f"RSS grew {grown / 2**20:.0f} MB over {len(frames)} bad frames"


def test_client_needs_no_torch():
    code = "import sys, evo1cli.client.remote; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_cli_serve(tmp_path):
    checkpoint = tmp_path / "tiny"
    subprocess.run([sys.executable, "-m", "evo1cli", "model", "init", "--preset", "tiny", "--out", str(checkpoint),
                    "--state-dim", "8", "--action-dim", "4"], check=True, capture_output=True)  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "evo1cli", "serve", "--checkpoint", str(checkpoint), "--port",
                                "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("serving "), line + process.stderr.read()
        url = line.split(" on ")[1].split(" ")[0]
        with PolicyClient(url) as client:
            assert client.infer([image()], np.zeros(8), "reach").shape == (50, 4)
    finally:
        process.send_signal(2)
        process.wait(30)
    bad = subprocess.run([sys.executable, "-m", "evo1cli", "serve", "--checkpoint", str(tmp_path / "none")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_every_reply_echoes_its_requests_id_errors_included(running):
    with connect(running.url, max_size=None) as ws:
        assert _ask(ws, wire.pack({**GOOD, "id": "a-7"}))["id"] == "a-7"
        refused = _ask(ws, wire.pack({**GOOD, "prompt": 3, "id": 12}))  # refused after the id was readable
        assert refused["error"]["field"] == "prompt" and refused["id"] == 12
        assert "id" not in _ask(ws, wire.pack(GOOD))  # no id asked, none echoed


@pytest.mark.parametrize("answer", ["missing", "wrong"])
def test_the_client_refuses_a_reply_without_its_id_or_with_another(answer):
    """A stand-in server that sends the metadata, then one reply whose id is missing or not the request's."""
    from websockets.sync.server import serve

    def handle(ws) -> None:
        ws.send(wire.pack({"type": "metadata"}))
        request = wire.unpack(ws.recv())
        reply = {"actions": np.zeros((2, 4), np.float32), "server_timing": {}}
        if answer == "wrong":
            reply["id"] = request["id"] + 1
        ws.send(wire.pack(reply))
        with contextlib.suppress(Exception):
            ws.recv()  # until the client hangs up

    with serve(handle, "127.0.0.1", 0, subprotocols=[wire.SUBPROTOCOL]) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        client = PolicyClient(url, retries=0)
        message = r"sent a reply without the id of request 1" if answer == "missing" else r"answers request 2, not 1"
        with pytest.raises(RequestError, match=rf"^id: .*{message}"):
            client.infer([image()], np.zeros(8), "reach")
        client.close()
        server.shutdown()
