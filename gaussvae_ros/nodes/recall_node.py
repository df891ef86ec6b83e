"""``gaussvae_recall``: decodes memories back into images.

A separate node from the memory node, on purpose: decoding and rendering is CPU (or GPU) heavy
and scales with the requested image size, while the memory node must keep storing records and
answering cheap queries. In its own process, a burst of large recalls neither delays an insert
nor holds the memory node's executor, can use its own threads or a GPU (``device``), and can run
on another machine sharing the database file. Both nodes open the same SQLite file; the store's
WAL mode lets this reader work beside the writer. The recall node never creates the database:
until the memory node has created it, requests fail with a message saying so.

Payloads are decoded by :func:`gaussvae_ros.codecs.registry.decode_payload`, keyed by each memory's
codec id (and model id); unknown codecs and mismatched model ids are refused with a clear message.
Modules named in ``codec_modules`` are imported at start-up so they can register more codecs.

Service:
    ``recall``                gaussvae_ros_interfaces/Recall: by ids, or by an embedded time or pose
                              query; images at the requested size (0 x 0 = original, one side 0 =
                              keep aspect), rgb8 for colour memories, mono8 for gray ones.
Action:
    ``recall_memories``       gaussvae_ros_interfaces/RecallMemories: the same selection, each image
                              sent as feedback as soon as it is decoded, cancelable, with a total
                              byte limit (:mod:`.recall_action`); for recalls too large for one response
Publications (only for requests with ``publish``; reliable, depth ``publish_depth``):
    ``recalled/image``        sensor_msgs/Image, header = the memory's stamp and camera frame id
    ``recalled/image/compressed``  sensor_msgs/CompressedImage of the same image, JPEG or PNG by
                              ``compressed_format`` (image_transport naming; :mod:`.recall_outputs`)
    ``recalled/camera_info``  sensor_msgs/CameraInfo matching each image: intrinsics scaled to
                              the image size when stored (else size and header only)

Parameters: see :data:`PARAMETERS` (and ``config/gaussvae.yaml``).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from std_msgs.msg import Header

from gaussvae_ros_interfaces.srv import Recall

from gaussvae_ros.store import Store, StoreError

from gaussvae_ros.codecs import known_codecs, render_memory
from gaussvae_ros.codecs.latent import model_files, register_latent_model
from .convert import (camera_info_from_intrinsics, device_for, guarded_service, image_message, ns_to_time,
                      output_size)
from .params import (ParamSpec, check_choice, check_range, declare_parameters, install_validator, nonempty,
                     real_list)
from .queries import RequestError, check_ids, pose_query, time_query
from .recall_action import ACTION_PARAMETERS, RecallAction, check_action_parameters
from .recall_outputs import COMPRESSED_PARAMETERS, RecallOutputs, check_compressed_parameters
from .runner import run_node

PARAMETERS = (
    ParamSpec("database", "memories.db", "memory store file written by gaussvae_memory (opened read-only)", True),
    ParamSpec("max_images", 100, "most images one recall returns (caps limit = 0; a larger k is an error)"),
    ParamSpec("max_side", 8192, "largest requested width or height, px"),
    ParamSpec("max_response_bytes", 256 * 1024 * 1024, "largest total size of the images of one response, bytes"),
    ParamSpec("render_threads", 0, "CPU threads of the renderer (0 = torch default)"),
    ParamSpec("device", "cpu", "renderer device: auto | cpu | cuda (cuda falls back to cpu with a warning)", True),
    ParamSpec("codec_modules", [""], "Python modules imported at start-up to register more payload codecs", True),
    ParamSpec("latent_models", [""], "vae-latent model files (or folders of *.pt) loaded at start-up, besides the "
              "shipped model and $GAUSSVAE_LATENT_MODELS: list the encoder's latent_model here", True),
    ParamSpec("publish_depth", 10, "history depth of recalled/image (+ /compressed) and recalled/camera_info", True),
) + COMPRESSED_PARAMETERS + ACTION_PARAMETERS


def check_parameters(values: dict) -> list[str]:
    problems: list[str] = []
    nonempty(problems, values, "database")
    check_range(problems, values, "max_images", 1, 100_000)
    check_range(problems, values, "max_side", 1, 1 << 16)
    check_range(problems, values, "max_response_bytes", 1)
    check_range(problems, values, "render_threads", 0, 1024)
    check_choice(problems, values, "device", ("auto", "cpu", "cuda"))
    check_range(problems, values, "publish_depth", 1, 10_000)
    check_compressed_parameters(problems, values)
    check_action_parameters(problems, values)
    return problems


class RecallNode(Node):
    """Recall service node (see module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("gaussvae_recall", **kwargs)
        self._values = declare_parameters(self, PARAMETERS, check_parameters)
        for module in real_list(self._values["codec_modules"]):
            importlib.import_module(module)  # an ImportError stops the node: a configured codec is missing
        models = [register_model_files(entry) for entry in real_list(self._values["latent_models"])]
        self._device = device_for(self._values["device"], self.get_logger())
        self._path = Path(self._values["database"]).expanduser()
        self._store = None
        self._store_lock = threading.Lock()
        depth = int(self._values["publish_depth"])
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = RecallOutputs(self, qos, self._values)
        # One recall at a time: rendering uses every core it is given, parallel recalls would only
        # contend for them.
        self._service = self.create_service(Recall, "recall", self._recall,
                                            callback_group=MutuallyExclusiveCallbackGroup())
        self._action = RecallAction(self, self._open_store, self._select, self._render, self._outputs, self._values)
        install_validator(self, PARAMETERS, self._values, check_parameters, lambda values: None)
        ids = sorted(i for found in models for i in found)
        self.get_logger().info(f"recalling from {self._path} on {self._device}; codecs: {', '.join(known_codecs())}"
                               + (f"; latent models {', '.join(ids)}" if ids else ""))

    def _open_store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                if not self._path.exists():
                    raise StoreError(f"no memory store at {self._path} yet (the memory node creates it)")
                self._store = Store(self._path, create=False)
            return self._store

    def _select(self, store: Store, request: Recall.Request, max_images: int | None = None) -> tuple[list, str]:
        """The memories (with payloads) a request selects (a Recall request or a RecallMemories goal)."""
        max_images = int(self._values["max_images"]) if max_images is None else max_images
        if request.select == Recall.Request.SELECT_IDS:
            ids = check_ids(request.ids, max_images)
            unique = list(dict.fromkeys(ids))
            try:
                records = {r.id: r for r in store.get(unique, with_payload=True)}
            except ValueError as exc:  # unknown ids
                raise RequestError(f"cannot recall: {exc}") from None
            return [records[i] for i in ids], ""
        if request.select == Recall.Request.SELECT_TIME:
            records, note = time_query(store, request.time_query, max_images)
        elif request.select == Recall.Request.SELECT_POSE:
            records, note = pose_query(store, request.pose_query, max_images)
        else:
            raise RequestError(f"unknown select value {request.select} (0 = ids, 1 = time query, 2 = pose query)")
        if not records:
            return [], note
        loaded = {r.id: r for r in store.get([r.id for r in records], with_payload=True)}
        return [loaded[r.id] for r in records], note

    @guarded_service
    def _recall(self, request: Recall.Request, response: Recall.Response):
        started = time.perf_counter()
        try:
            max_side = int(self._values["max_side"])
            if request.width > max_side or request.height > max_side:
                raise RequestError(f"requested size {request.width}x{request.height} exceeds max_side={max_side} px")
            store = self._open_store()
            records, note = self._select(store, request)
            sizes = [output_size(r.width, r.height, request.width, request.height) for r in records]
            too_big = [(r.id, w, h) for r, (w, h) in zip(records, sizes) if w > max_side or h > max_side]
            if too_big:
                raise RequestError(f"memory {too_big[0][0]} would be recalled at {too_big[0][1]}x{too_big[0][2]} px, "
                                   f"over max_side={max_side}; ask for a smaller size")
            total = sum(w * h * 3 for w, h in sizes)
            if total > int(self._values["max_response_bytes"]):
                raise RequestError(f"the {len(records)} images would take up to {total} bytes, over "
                                   f"max_response_bytes={self._values['max_response_bytes']}; ask for fewer or smaller")
            recalled, images, infos, failed, failures = [], [], [], [], []
            for record, (w, h) in zip(records, sizes):
                try:
                    pixels = self._render(record, w, h)
                except ValueError as exc:  # this memory only: the others are still recalled
                    model = f", model {record.model_id!r}" if record.model_id else ""
                    failed.append(record.id)
                    failures.append(f"cannot decode memory {record.id} (codec {record.codec!r}{model}): {exc}")
                    self.get_logger().warning(failures[-1])
                    continue
                header = _header(record)
                recalled.append(record.id)
                images.append(image_message(pixels, header))
                infos.append(camera_info_from_intrinsics(record.intrinsics, record.width, record.height, header, w, h))
            response.failed_ids, response.failures = failed, failures
            if failed and not images:
                raise RequestError(failures[0] if len(failures) == 1 else
                                   f"none of the {len(failed)} memories could be decoded: {failures[0]}; ...")
            response.ids = recalled
            response.images, response.camera_infos = images, infos
            if request.publish:
                for image, info in zip(images, infos):
                    self._outputs.publish(image, info)
            response.success = True
            seconds = time.perf_counter() - started
            plural = "s" if len(images) != 1 else ""
            response.message = (f"recalled {len(images)} image{plural} in {seconds * 1e3:.1f} ms"
                                + (f" ({note})" if note else "") + ("; published" if request.publish and images else "")
                                + (f"; {len(failed)} could not be decoded (failed_ids, failures)" if failed else ""))
        except (RequestError, ValueError, StoreError) as exc:
            response.success, response.message = False, str(exc)
            response.ids, response.images, response.camera_infos = [], [], []
        return response

    def _render(self, record, width: int, height: int):
        """uint8 pixels of a memory at ``width x height``; ValueError when it cannot be decoded."""
        threads = int(self._values["render_threads"]) or None
        return render_memory(record.payload, record.codec, record.model_id, width, height, threads=threads,
                             device=self._device)

    def destroy_node(self) -> None:
        if getattr(self, "_action", None) is not None:
            self._action.destroy()
        super().destroy_node()
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def register_model_files(entry: str) -> list[str]:
    """Load the ``vae-latent`` model file ``entry`` (or every ``*.pt`` in a folder) for recall; their
    model ids. ValueError naming the file when one cannot be loaded (the node does not start)."""
    files = model_files(entry)
    if not files:
        raise ValueError(f"latent_models: folder {entry} holds no *.pt model files")
    try:
        return [register_latent_model(f).model_id for f in files]
    except (ValueError, OSError) as exc:
        raise ValueError(f"latent_models: cannot load {exc}") from exc


def _header(record):
    return Header(stamp=ns_to_time(record.stamp_ns), frame_id=record.camera_frame_id)


def main(args=None) -> int:
    """Console script ``gaussvae_recall``."""
    return run_node(RecallNode, args)


if __name__ == "__main__":
    sys.exit(main())
