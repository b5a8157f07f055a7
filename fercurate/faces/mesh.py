"""MediaPipe face mesh run directly on face crops: the landmark network only, no detector, no tracking.

``mp.solutions.face_mesh.FaceMesh`` runs a face detector on every image and only then the landmark
network; when the face box is already known (a dataset's bbox, or our own detector) that detector is
wasted time and fails on tiny faces. :class:`MeshLandmarker` builds a small MediaPipe graph around the
landmark model that ships inside the mediapipe 0.10.21 wheel (``face_landmark.tflite``, 468 points,
or ``face_landmark_with_attention.tflite``, 478 points with refined eyes, lips and irises), feeds it
192x192 RGB crops and returns the points plus the model's own face-presence probability. Crops are
pipelined through the graph, so a batch costs one Python round trip.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache

import numpy as np

INPUT_SIZE = 192
NUM_POINTS = {False: 468, True: 478}

_GRAPH = """
num_threads: %(threads)d
input_stream: "IMAGE:image"
output_stream: "LANDMARKS:landmarks"
output_stream: "SCORE:score"
input_side_packet: "WITH_ATTENTION:with_attention"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensors"
  options { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: 192 output_tensor_height: 192
    output_tensor_float_range { min: 0.0 max: 1.0 } } }
}
node {
  calculator: "FaceLandmarksModelLoader"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_side_packet: "MODEL:model"
}
node { calculator: "TfLiteCustomOpResolverCalculator" output_side_packet: "OP_RESOLVER:op_resolver" }
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors"
  input_side_packet: "MODEL:model"
  input_side_packet: "OP_RESOLVER:op_resolver"
  output_stream: "TENSORS:output_tensors"
  options { [mediapipe.InferenceCalculatorOptions.ext] { delegate { xnnpack { num_threads: %(threads)d } } } }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "output_tensors"
  output_stream: "landmark_tensors"
  output_stream: "face_flag_tensor"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] {
    ranges { begin: 0 end: %(split)d } ranges { begin: %(split)d end: %(end)d } } }
}
node {
  calculator: "%(decoder)s"
  input_stream: "TENSORS:landmark_tensors"
  output_stream: "LANDMARKS:landmarks"
}
node {
  calculator: "TensorsToFloatsCalculator"
  input_stream: "TENSORS:face_flag_tensor"
  output_stream: "FLOAT:score"
  options { [mediapipe.TensorsToFloatsCalculatorOptions.ext] { activation: SIGMOID } }
}
"""

# A serialized NormalizedLandmark with only x, y, z set: tag 0x0a, length 15, then three
# (tag, float32) pairs. 17 bytes per point; anything else falls back to the protobuf parser.
_LANDMARK_RECORD = np.dtype(
    [("tag", "u1"), ("len", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"), ("tz", "u1"), ("z", "<f4")]
)


def _parse_landmarks(data: bytes, proto_factory) -> np.ndarray:  # noqa: ANN001 - protobuf class
    """Serialized NormalizedLandmarkList -> (N,3) float32 (normalized x, y, z)."""
    if len(data) % _LANDMARK_RECORD.itemsize == 0:
        rec = np.frombuffer(data, dtype=_LANDMARK_RECORD)
        if (
            (rec["tag"] == 0x0A).all()
            and (rec["len"] == 15).all()
            and (rec["tx"] == 0x0D).all()
            and (rec["ty"] == 0x15).all()
            and (rec["tz"] == 0x1D).all()
        ):
            return np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)
    msg = proto_factory()
    msg.ParseFromString(data)
    return np.array([[p.x, p.y, p.z] for p in msg.landmark], dtype=np.float32)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what C++ code (TFLite, absl) prints on file descriptor 2 while models start up.

    MediaPipe writes INFO/WARNING lines such as "Created TensorFlow Lite XNNPACK delegate" straight to
    the process's stderr, which would break progress bars; set FERCURATE_NATIVE_LOGS=1 to see them.
    """
    if os.environ.get("FERCURATE_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MeshLandmarker:
    """The face-mesh landmark network on 192x192 RGB crops; one instance per process (not thread-safe).

    ``run(crops)`` returns ``points`` (B, N, 3) in crop pixels (x right, y down, z = depth in the same
    pixel scale, smaller = nearer the camera) and ``scores`` (B,), the face-presence probability.
    """

    def __init__(self, attention: bool = False, threads: int = 1) -> None:
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.framework.formats import landmark_pb2
        from mediapipe.python import packet_creator, packet_getter
        from mediapipe.python._framework_bindings import calculator_graph, image_frame, resource_util

        # Importing the solution registers the calculator option extensions used by the graph.
        import mediapipe.python.solutions.face_mesh  # noqa: F401

        import mediapipe

        resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mediapipe.__file__)))
        self.attention = attention
        self.num_points = NUM_POINTS[attention]
        text = _GRAPH % {
            "threads": threads,
            "split": 6 if attention else 1,
            "end": 7 if attention else 2,
            "decoder": "TensorsToFaceLandmarksWithAttention" if attention else "TensorsToFaceLandmarks",
        }
        config = text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
        self._proto = landmark_pb2.NormalizedLandmarkList
        self._packet_creator = packet_creator
        self._srgb = image_frame.ImageFormat.SRGB
        self._graph = calculator_graph.CalculatorGraph(graph_config=config)
        self._landmarks: dict[int, bytes] = {}
        self._scores: dict[int, float] = {}
        self._lock = threading.Lock()

        def on_landmarks(_stream: str, packet) -> None:  # noqa: ANN001 - mediapipe packet
            self._landmarks[packet.timestamp.value] = packet_getter.get_proto(packet).SerializeToString()

        def on_score(_stream: str, packet) -> None:  # noqa: ANN001
            self._scores[packet.timestamp.value] = packet_getter.get_float(packet)

        self._graph.observe_output_stream("landmarks", on_landmarks)
        self._graph.observe_output_stream("score", on_score)
        self._ts = 0
        with quiet_native_stderr():
            self._graph.start_run(input_side_packets={"with_attention": packet_creator.create_bool(attention)})
            self.run([np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)])  # warm-up: loads the model now

    def run(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks and presence scores for a batch of 192x192x3 uint8 RGB crops."""
        n = len(crops)
        points = np.zeros((n, self.num_points, 3), dtype=np.float32)
        scores = np.zeros(n, dtype=np.float32)
        if n == 0:
            return points, scores
        with self._lock:
            first = self._ts
            for crop in crops:
                if crop.shape != (INPUT_SIZE, INPUT_SIZE, 3) or crop.dtype != np.uint8:
                    raise ValueError(f"mesh input must be {INPUT_SIZE}x{INPUT_SIZE}x3 uint8, got {crop.shape} {crop.dtype}")
                packet = self._packet_creator.create_image_frame(
                    image_format=self._srgb, data=np.ascontiguousarray(crop)
                )
                self._graph.add_packet_to_input_stream("image", packet.at(self._ts))
                self._ts += 1
            self._graph.wait_until_idle()
            for i in range(n):
                ts = first + i
                data = self._landmarks.pop(ts, None)
                scores[i] = self._scores.pop(ts, 0.0)
                if data is not None:
                    points[i] = _parse_landmarks(data, self._proto)
        points *= INPUT_SIZE  # normalized -> crop pixels (z shares x's scale)
        return points, scores

    def close(self) -> None:
        self._graph.close()


@lru_cache(maxsize=None)
def get_landmarker(attention: bool = False) -> MeshLandmarker:
    """The process-wide landmarker (building one loads the model: ~0.1 s)."""
    return MeshLandmarker(attention=attention)
