"""MediaPipe's 468-point face mesh (real-face pretrained) as a head-pose estimator.

* :mod:`~hpe_core.facemesh.model_files`: where the bundled tflite models are.
* :mod:`~hpe_core.facemesh.runtime`: runs the mesh (and iris) networks with ai-edge-litert.
* :mod:`~hpe_core.facemesh.topology`: landmark groups of the mesh and their robust weights.
* :mod:`~hpe_core.facemesh.fit`: weighted, robust rigid / similarity fits (Kabsch-Umeyama).
* :mod:`~hpe_core.facemesh.canonical`: the canonical face shape derived from our rendered heads.
* :mod:`~hpe_core.facemesh.lifting`: 2-D landmarks plus mesh depth to 3-D points in the
  crop's virtual camera (perspective and depth scale handled).
* :mod:`~hpe_core.facemesh.estimator`: :class:`FaceMeshEstimator`, the
  :class:`~hpe_core.estimator.interface.PoseEstimator` the pipeline uses.
"""
