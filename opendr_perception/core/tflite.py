"""One place where TFLite interpreters are created and run.

The MediaPipe models of this suite are plain ``.tflite`` files run with
``ai-edge-litert`` (the successor of ``tflite-runtime``; CPU, XNNPACK delegate).

Output order
------------
:meth:`TFLiteModel.run` returns the outputs in the order the model file declares
them (the subgraph's ``outputs`` list, which is what
``Interpreter.get_output_details()`` reports). That order is stored in the
flatbuffer, so it is stable across runtimes, and it is the order MediaPipe's own
calculators consume. It is NOT the order of tensor indices nor of names; checked
on the files of the registry (mediapipe 0.10.14 wheel):

=========================  =====================================================
model                      declared outputs
=========================  =====================================================
blazeface_short_range      regressors (1,896,16), classificators (1,896,1)
                           (tensor indices 175, 174: index order would swap them)
blazeface_full_range       Identity (1,2304,16), Identity_1 (1,2304,1)
blazepose_detector         Identity (1,2254,12), Identity_1 (1,2254,1)
blazepose_landmark_full    Identity (1,195) landmarks, Identity_1 (1,1) pose flag,
                           Identity_2 (1,256,256,1) segmentation,
                           Identity_3 (1,64,64,39) heatmap, Identity_4 (1,117) world
selfie_segmentation        activation_10 (1,256,256,1) mask probability
=========================  =====================================================

``output_names`` lists the names in the same order, for code that prefers to
look outputs up by name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "running .tflite models needs the 'ai-edge-litert' package (pip install ai-edge-litert)") from e
    return Interpreter


class TFLiteModel:
    """A loaded ``.tflite`` model with fixed input shapes.

    Args:
        path: the model file (usually from :func:`opendr_perception.core.registry.resolve`).
        num_threads: CPU threads the interpreter may use (>= 1).
    """

    def __init__(self, path: Union[str, Path], num_threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TFLite model file not found: {path}")
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.path = path
        self.num_threads = int(num_threads)
        self._interpreter = _interpreter_class()(model_path=str(path), num_threads=self.num_threads)
        self._interpreter.allocate_tensors()
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()

    # -- description -----------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the first (usually only) input, e.g. ``(1, 128, 128, 3)``."""
        return tuple(int(v) for v in self._inputs[0]["shape"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._inputs[0]["dtype"])

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self._inputs]

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of an NHWC image input."""
        shape = self.input_shape
        if len(shape) != 4:
            raise ValueError(f"{self.path.name}: input shape {shape} is not NHWC")
        return shape[2], shape[1]

    @property
    def output_names(self) -> list[str]:
        """Output tensor names, in the order :meth:`run` returns them."""
        return [d["name"] for d in self._outputs]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self._outputs]

    # -- inference -------------------------------------------------------------------
    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run the model once; returns copies of all outputs in declared order.

        Each input must have exactly the model's input shape (batch included) and
        is cast to the model's input dtype.
        """
        if len(inputs) != len(self._inputs):
            raise ValueError(f"{self.path.name} takes {len(self._inputs)} input(s), got {len(inputs)}")
        for detail, array in zip(self._inputs, inputs):
            array = np.asarray(array)
            expected = tuple(int(v) for v in detail["shape"])
            if array.shape != expected:
                raise ValueError(f"{self.path.name}: input '{detail['name']}' must have shape {expected}, "
                                 f"got {array.shape}")
            self._interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=detail["dtype"]))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(d["index"]).copy() for d in self._outputs]

    def __repr__(self) -> str:
        return (f"TFLiteModel({self.path.name}, input={self.input_shape}, "
                f"outputs={list(zip(self.output_names, self.output_shapes))})")
