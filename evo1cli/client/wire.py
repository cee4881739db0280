"""What travels over the websocket: msgpack with raw numpy arrays (default), or the authors' JSON.

Needs only numpy and msgpack, so the light client shares it without importing torch.

msgpack (binary frames). Arrays are maps {b"__ndarray__": True, b"data", b"dtype", b"shape"}, the
convention of openpi's msgpack_numpy, so its clients' encoders work too.
    request  {"images": [HxWx3 uint8 RGB | None, ...], "state": float array, "prompt": str,
              "embodiment"?: str, "dataset"?: str, "seed"?: int or [seed, index], "id"?: str or int}
    reply    {"actions": (H, A) float32, "server_timing": {"infer_ms", "total_ms", "batch_size"}, "id"}
    error    {"error": {"field": str, "message": str}, "id"}

The id: a request may carry one (a string or an integer); the reply to it, an error included, carries the
same id (omitted only when the request had none, or the frame could not be read as a map). The client
(remote.py) gives every request an id and refuses a reply whose id is missing or different (field "id").

The authors' JSON (text frames), unchanged: {"image": [3 nested-list HxWx3 uint8, BGR], "image_mask":
[3 x 0/1], "state": [...], "prompt": str, "action_mask": [24] or [[24]], "arm_key"?, "dataset_key"?};
the reply is a JSON list of H lists of 24 floats (an error is {"error": {...}} instead of a dropped
connection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 9000  # where `evo1 serve` listens unless told otherwise
DEFAULT_URL = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}"  # where clients look for it
MSGPACK, AUTHORS = "msgpack", "authors"
SUBPROTOCOL = "evo1.msgpack"  # clients that offer it get the metadata message on connect
MAX_VIEWS = 3
MAX_SIDE = 4096
_ND = b"__ndarray__"
_NUMERIC_KINDS = "biuf"


class RequestError(Exception):
    """A request that was refused, naming the field: the server raises it for bad input and sends it as
    an error reply; the client raises it again from that reply, and for a server it cannot reach or that
    refuses the connection (field "connection") or does not answer in time (field "timeout")."""

    def __init__(self, field: str, message: str, request_id: Any = None):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.request_id = request_id  # the refused request's id, when it could be read: the error reply echoes it


# ---------------------------------------------------------------------------------------------- msgpack
def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"cannot send arrays of dtype {obj.dtype}")
        obj = np.ascontiguousarray(obj)
        return {_ND: True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send {type(obj).__name__}")


def _decode(obj: dict) -> Any:
    if _ND not in obj and "__ndarray__" not in obj:
        return obj

    def get(key: str) -> Any:
        return obj.get(key.encode(), obj.get(key))

    try:
        dtype = np.dtype(get("dtype") if isinstance(get("dtype"), str) else get("dtype").decode())
        shape = tuple(int(n) for n in get("shape"))
        if dtype.kind not in _NUMERIC_KINDS or any(n < 0 for n in shape):
            raise ValueError
        return np.frombuffer(get("data"), dtype=dtype).reshape(shape).copy()  # writable, owns its memory
    except Exception:  # any malformed array map: dtype, shape and buffer must agree
        return _BadArray()


class _BadArray:
    """Stands for an array map that did not decode; the field that holds it gets the error."""


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)


# ---------------------------------------------------------------------------------------------- requests
@dataclass
class Request:
    images: list[np.ndarray | None]  # RGB uint8 (H, W, 3) per view slot
    state: np.ndarray  # float32, native dims (the authors' clients may pad it: see `crop_padded_state`)
    prompt: str
    embodiment: str | None = None
    dataset: str | None = None
    protocol: str = MSGPACK
    id: Any = None
    seed: tuple[int, int] | None = None  # (seed, query index) of the chunk's initial noise
    extra: dict[str, Any] = field(default_factory=dict)


def parse(frame: bytes | str) -> Request:
    """A request from one websocket frame: binary is msgpack, text is the authors' JSON. A refused request's
    error carries its id when the frame was a map with one."""
    if isinstance(frame, bytes):
        try:
            data = unpack(frame)
        except Exception as err:
            raise RequestError("message", f"not valid msgpack ({type(err).__name__})") from None
    else:
        try:
            data = json.loads(frame)
        except (json.JSONDecodeError, RecursionError) as err:
            raise RequestError("message", f"not valid JSON ({err})") from None
    try:
        return _from_msgpack(data) if isinstance(frame, bytes) else _from_authors(data)
    except RequestError as err:
        err.request_id = _id(data.get("id")) if isinstance(data, dict) else None
        raise


def _from_msgpack(data: Any) -> Request:
    if not isinstance(data, dict):
        raise RequestError("message", "expected a map with images, state and prompt")
    images = data.get("images")
    if not isinstance(images, list) or not 1 <= len(images) <= MAX_VIEWS:
        raise RequestError("images", f"expected a list of 1 to {MAX_VIEWS} images (None for an absent view)")
    checked = [None if img is None else _image(img, f"images[{i}]") for i, img in enumerate(images)]
    if all(img is None for img in checked):
        raise RequestError("images", "every view is absent")
    return _request(data, checked, MSGPACK, "embodiment", "dataset")


def _from_authors(data: Any) -> Request:
    if not isinstance(data, dict):
        raise RequestError("message", "expected a JSON object with image, image_mask, state and prompt")
    raw = data.get("image")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_VIEWS:
        raise RequestError("image", f"expected a list of up to {MAX_VIEWS} images")
    mask = data.get("image_mask", [1] * len(raw))
    if not isinstance(mask, list) or len(mask) != len(raw) or not all(m in (0, 1, True, False) for m in mask):
        raise RequestError("image_mask", f"expected {len(raw)} values of 0 or 1")
    images: list[np.ndarray | None] = []
    for i, (img, present) in enumerate(zip(raw, mask, strict=True)):
        if not present:
            images.append(None)
            continue
        try:
            array = np.array(img, dtype=np.uint8)  # numpy refuses integers outside 0-255
        except (ValueError, TypeError, OverflowError):
            raise RequestError(f"image[{i}]", "expected a nested list H x W x 3 of integers 0-255") from None
        if array.ndim != 3 or array.shape[2] != 3:
            raise RequestError(f"image[{i}]", f"expected H x W x 3 values in 0-255, got shape {array.shape}")
        images.append(_image(array[:, :, ::-1].copy(), f"image[{i}]"))  # BGR -> RGB
    if all(img is None for img in images):
        raise RequestError("image_mask", "every view is masked out")
    action_mask = data.get("action_mask")
    if action_mask is not None:
        flat = np.asarray(action_mask, dtype=object).reshape(-1) if isinstance(action_mask, list) else None
        if flat is None or not all(v in (0, 1, True, False) for v in flat):
            raise RequestError("action_mask", "expected a flat or nested list of 0/1")
    return _request(data, images, AUTHORS, "arm_key", "dataset_key")


def _request(
    data: dict, images: list[np.ndarray | None], protocol: str, embodiment_key: str, dataset_key: str
) -> Request:
    """The fields both formats share (under their own names for the stats keys)."""
    return Request(
        images=images,
        state=_vector(data.get("state"), "state"),
        prompt=_text(data.get("prompt"), "prompt"),
        embodiment=_key(data.get(embodiment_key), embodiment_key),
        dataset=_key(data.get(dataset_key), dataset_key),
        protocol=protocol,
        id=_id(data.get("id")),
        seed=_seed(data.get("seed")),
    )


def _id(value: Any) -> str | int | None:
    return value if isinstance(value, str | int) else None


def _image(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise RequestError(where, "expected an H x W x 3 uint8 array")
    if value.dtype != np.uint8:
        raise RequestError(where, f"expected dtype uint8, got {value.dtype}")
    if value.ndim != 3 or value.shape[2] != 3 or not 1 <= min(value.shape[:2]) <= max(value.shape[:2]) <= MAX_SIDE:
        raise RequestError(where, f"expected shape (H, W, 3) with sides up to {MAX_SIDE}, got {value.shape}")
    return value


def _vector(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise RequestError(where, "expected a vector of numbers") from None
    if array.ndim != 1 or not 1 <= array.shape[0] <= 64:
        raise RequestError(where, f"expected a vector of 1 to 64 numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise RequestError(where, "contains NaN or inf")
    return array


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise RequestError(where, "expected a string of at most 4096 characters")
    return value


def _key(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and 0 < len(value) <= 256):
        return value
    raise RequestError(where, "expected a non-empty string")


def _seed(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = [value, 0] if isinstance(value, int) else value
    if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) and 0 <= v < 2**40 for v in pair)):
        raise RequestError("seed", "expected an integer or [seed, query index], each 0 to 2**40")
    return pair[0], pair[1]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def crop_padded_state(state: np.ndarray, dim: int) -> np.ndarray:
    """The authors' clients send state pre-padded with zeros to 24; keep the native dims."""
    if state.shape[0] > dim and not state[dim:].any():
        return state[:dim]
    if state.shape[0] != dim:
        raise RequestError("state", f"expected {dim} values (the stats' state dims), got {state.shape[0]}")
    return state


# ---------------------------------------------------------------------------------------------- replies
def reply(request: Request, actions: np.ndarray, timing: dict[str, float], pad_to: int) -> bytes | str:
    """The reply to a request; the authors' JSON protocol gets the chunk zero-padded to `pad_to` dims (the
    model's action_dim, 24 for the authors' checkpoints)."""
    if request.protocol == AUTHORS:
        padded = np.zeros((actions.shape[0], max(pad_to, actions.shape[1])), dtype=np.float64)
        padded[:, : actions.shape[1]] = actions
        return json.dumps(padded.tolist())
    out: dict[str, Any] = {"actions": np.asarray(actions, dtype=np.float32), "server_timing": timing}
    if request.id is not None:
        out["id"] = request.id
    return pack(out)


def error_reply(protocol: str, field: str, message: str, request_id: Any = None) -> bytes | str:
    body: dict[str, Any] = {"error": {"field": field, "message": message}}
    if request_id is not None:
        body["id"] = request_id
    return json.dumps(body) if protocol == AUTHORS else pack(body)
