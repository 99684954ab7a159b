"""high_resolution_pose_estimation: the seed's active high-resolution pipeline around the pose estimator.

Looks at a small average-pooled copy of the frame (``base_height_1`` rows) for where people are,
crops that region from the full-resolution frame, resizes it to ``base_height_2`` rows and estimates
poses there, then projects the keypoints back. Same topics as pose_estimation; the annotated
image also shows the region of interest.
"""
from opendr_perception.models.high_resolution_pose import HighResolutionPoseEstimator
from opendr_perception.models.pose_estimation import MultiPersonPoseEstimator
from opendr_perception.nodes.pose_estimation import PoseEstimationNode
from opendr_perception.ros.node_base import run_node


class HighResolutionPoseNode(PoseEstimationNode):
    # The region of interest is magnified before the pose model sees it; with a 0.3 gate the people-free
    # sample photos gave 8 false people in 12 frames (0.5: 1), so this node gates the detector higher.
    default_detector_threshold = 0.5

    def __init__(self):
        super().__init__("high_resolution_pose_estimation")
        self.base_height_1 = self.param("base_height_1", 360, "Rows of the pooled frame searched for people")
        self.base_height_2 = self.param("base_height_2", 540, "Rows the person region is resized to (0: no resize)")
        self.heatmap_threshold = self.param("heatmap_threshold", 0.5, "Heatmap value from which a pixel is a person")
        self.roi_source = self.param("roi_source", "segmentation",
                                     "Cheap people map: segmentation (person mask) or detector (person candidates)")

    def load_model(self):
        backend = MultiPersonPoseEstimator(self.detector_threshold, self.max_people, self.pose_threshold)
        return HighResolutionPoseEstimator(backend, self.base_height_1, self.base_height_2 or None,
                                           self.heatmap_threshold, self.roi_source)

    def roi_of_last_frame(self):
        return self.model.last_roi


def main(args=None):
    run_node(HighResolutionPoseNode, args)


if __name__ == "__main__":
    main()
