"""The face simulator core (no ROS): real MuJoCo renders, real BlazeFace and dlib models, no mocks."""
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("mujoco")

from opendr_perception.sim import Camera, Occluder, Person, Robot, Scene, load_scene  # noqa: E402
from opendr_perception.sim.face_world import FaceWorld, RobotPose, load_image  # noqa: E402

SCENES = Path(__file__).resolve().parents[2] / "opendr_bringup" / "config" / "scenes"
THRESHOLD = 0.6  # dlib descriptor: same person below this L2 distance


@pytest.fixture(scope="module")
def detector():
    from opendr_perception.models.face_detection import FaceDetector
    return FaceDetector("full_range")


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("dlib")
    from opendr_perception.models.face_recognition import DlibResNetEmbedder
    return DlibResNetEmbedder()


@pytest.fixture(scope="module")
def reference(detector, embedder):
    """The dlib descriptor of the original astronaut photo."""
    photo = load_image("astronaut")
    return embedder.embed(photo, detector.detect(photo)[0].box)


@pytest.fixture(scope="module")
def world():
    scene = Scene(room_size=8.0, people=[Person("eileen", "astronaut", 0.0, 0.0, yaw_deg=180.0)],
                  robot=Robot(kind="drone", x=-2.0, y=0.0, z=1.55))
    with FaceWorld(scene) as w:
        yield w


def _drone(**kwargs):
    return FaceWorld(Scene(room_size=6.0, robot=Robot(kind="drone", x=0.0, y=0.0, z=1.5, **kwargs)))


def _wheeled(**kwargs):
    return FaceWorld(Scene(room_size=6.0, robot=Robot(kind="wheeled", x=0.0, y=0.0, z=1.2, **kwargs)))


# ------------------------------------------------------------------ rendering and recognition
def test_frontal_face_at_1_5_m_is_detected_and_recognised(world, detector, embedder, reference):
    world.reset(world.pose_facing("eileen", 1.5))
    image = world.render()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    truth = world.person_in_view("eileen")
    assert truth["distance"] == pytest.approx(1.5, abs=1e-6)
    assert truth["facing_angle_deg"] == pytest.approx(0.0, abs=1e-6)
    assert truth["bearing_deg"] == pytest.approx(0.0, abs=1e-6)
    assert truth["in_image"] and truth["visible"] and truth["occluded_fraction"] == 0.0
    faces = detector.detect(image)
    assert len(faces) == 1
    assert faces[0].box.iou(truth["face_box"]) > 0.3
    distance = np.linalg.norm(embedder.embed(image, faces[0].box) - reference)
    assert distance < THRESHOLD, f"rendered face at 1.5 m is {distance:.3f} from the photo"


def test_person_facing_away_shows_no_face(world, detector):
    world.reset(world.pose_facing("eileen", 1.5, math.pi))
    truth = world.person_in_view("eileen")
    assert truth["facing_angle_deg"] == pytest.approx(180.0, abs=1e-6)
    assert not truth["visible"]
    assert detector.detect(world.render()) == []


def test_render_is_deterministic_and_bgr(world):
    world.reset(world.pose_facing("eileen", 1.0))
    first, second = world.render(), world.render()
    assert np.array_equal(first, second)
    box = world.person_in_view("eileen")["face_box"]
    face = first[int(box.y_min):int(box.y_max), int(box.x_min):int(box.x_max)].reshape(-1, 3).mean(axis=0)
    assert face[2] > face[0]  # skin: more red than blue in BGR order


def test_renders_from_another_thread(world):
    """A ROS node may create the world in one thread and render from an executor thread."""
    import threading
    world.reset(world.pose_facing("eileen", 2.0))
    here, there = world.render(), []
    thread = threading.Thread(target=lambda: there.append(world.render()))
    thread.start()
    thread.join()
    assert there and np.array_equal(here, there[0])


def test_camera_matrix_matches_the_render():
    """A small red panel renders where K and the camera pose project its centre."""
    point = (2.0, 0.5, 1.8)
    scene = Scene(room_size=8.0, occluders=[Occluder(*point, 0.03, 0.03, yaw_deg=180.0, color=(1.0, 0.0, 0.0))],
                  robot=Robot(kind="drone", x=0.0, y=0.0, z=1.5), camera=Camera(width=320, height=240, pitch_deg=-5))
    with FaceWorld(scene) as w:
        image = w.render()
        K = w.camera_matrix()
        assert K[0, 0] == pytest.approx(120.0 / math.tan(math.radians(30.0)))
        assert (K[0, 2], K[1, 2]) == (159.5, 119.5)
        ys, xs = np.nonzero((image[:, :, 2] > 150) & (image[:, :, 1] < 80) & (image[:, :, 0] < 80))
        assert len(xs) > 4
        pixel, depth = w.project(np.array([[point[0] - 0.016, point[1], point[2]]]))
        assert depth[0] > 0
        assert np.allclose((xs.mean(), ys.mean()), pixel[0], atol=1.0)


def test_ground_truth_geometry(world):
    world.reset(world.pose_facing("eileen", 2.0, math.radians(30.0)))
    truth = world.person_in_view("eileen")
    assert truth["distance"] == pytest.approx(2.0, abs=1e-6)
    assert truth["facing_angle_deg"] == pytest.approx(30.0, abs=1e-6)
    assert truth["camera_azimuth_deg"] == pytest.approx(30.0, abs=1e-6)  # + = on the person's left
    assert truth["bearing_deg"] == pytest.approx(0.0, abs=1e-6)
    # turn the robot 90 degrees left: the person is now on its right, out of the image
    pose = world.robot_pose
    world.set_robot_pose(pose.x, pose.y, pose.z, pose.yaw + math.pi / 2)
    truth = world.person_in_view("eileen")
    assert truth["bearing_deg"] == pytest.approx(-90.0, abs=1e-6)
    assert not truth["in_image"]
    # turn 180 degrees: the face is behind the camera
    world.set_robot_pose(pose.x, pose.y, pose.z, pose.yaw + math.pi)
    assert world.person_in_view("eileen")["face_box"] is None
    with pytest.raises(ValueError, match="no person named 'nobody'"):
        world.person_in_view("nobody")


def test_random_start_around_a_person_facing_a_random_direction(world):
    """What a gymnasium reset does: turn the person, put the robot at a random angle around them."""
    rng = np.random.default_rng(0)
    for _ in range(3):
        world.reset()
        world.set_person_pose("eileen", yaw=rng.uniform(-math.pi, math.pi))
        angle = rng.uniform(-math.pi, math.pi)
        world.set_robot_pose(world.pose_facing("eileen", 2.0, angle))
        truth = world.person_in_view("eileen")
        assert truth["facing_angle_deg"] == pytest.approx(abs(math.degrees(angle)), abs=1e-6)
        assert truth["bearing_deg"] == pytest.approx(0.0, abs=1e-6)
    world.reset()
    assert world.person_pose("eileen") == pytest.approx((0.0, 0.0, math.pi))


# ------------------------------------------------------------------ occlusion
def test_occluder_covers_the_face_and_degrades_recognition(detector, embedder, reference):
    scene = Scene(room_size=8.0, people=[Person("eileen", "astronaut", 0.0, 0.0, yaw_deg=180.0)],
                  occluders=[Occluder(-0.8, 0.06, 1.57, 0.1, 0.3, yaw_deg=180.0, name="panel")],
                  robot=Robot(kind="drone", x=-2.0, y=0.0, z=1.5))

    def look(w, panel_y):
        w.set_occluder_pose("panel", -0.8, panel_y, 1.57, math.pi)
        image, truth = w.render(), w.person_in_view("eileen")
        faces = [f for f in detector.detect(image) if f.box.iou(truth["face_box"]) > 0.3]
        distances = [np.linalg.norm(embedder.embed(image, f.box) - reference) for f in faces]
        return truth, min(distances, default=math.inf)

    with FaceWorld(scene) as w:
        w.reset(w.pose_facing("eileen", 1.5))
        clear, clear_distance = look(w, 0.5)          # panel aside
        partial, partial_distance = look(w, 0.06)      # panel over part of the face
        full, full_distance = look(w, 0.0)             # panel over the whole face
    assert clear["occluded_fraction"] == 0.0 and clear["occluders"] == {}
    assert 0.2 < partial["occluded_fraction"] < 0.7
    assert partial["occluders"] == {"panel": partial["occluded_fraction"]}
    assert full["occluded_fraction"] == 1.0
    assert clear_distance < THRESHOLD
    assert partial_distance > clear_distance + 0.1  # worse, or no face at all (inf)
    assert full_distance == math.inf                # no face found where the face is


# ------------------------------------------------------------------ kinematics
def test_wheeled_forward_one_metre():
    w = _wheeled(yaw_deg=30.0)
    for _ in range(20):
        pose = w.step(linear=(0.5, 0.3, 0.2), angular_z=0.0, dt=0.1)  # vy, vz ignored by a wheeled robot
    yaw = math.radians(30.0)
    assert (pose.x, pose.y) == pytest.approx((math.cos(yaw), math.sin(yaw)), abs=1e-6)
    assert pose.z == 1.2 and pose.yaw == pytest.approx(yaw, abs=1e-12)
    assert w.time == pytest.approx(2.0)
    assert w.robot_pose == pose


def test_turning_in_place_changes_yaw_only():
    w = _wheeled()
    pose = w.step(angular_z=0.5, dt=1.0)
    assert (pose.x, pose.y, pose.z) == (0.0, 0.0, 1.2)
    assert pose.yaw == pytest.approx(0.5)
    for _ in range(10):
        pose = w.step(angular_z=1.0, dt=0.5)
    assert pose.yaw == pytest.approx(math.atan2(math.sin(5.5), math.cos(5.5)))  # wrapped to (-pi, pi]


def test_arc_is_integrated_exactly():
    w = _wheeled()
    period = 2 * math.pi / 0.5
    for _ in range(100):
        pose = w.step(linear=(0.5, 0, 0), angular_z=0.5, dt=period / 100)
    assert (pose.x, pose.y, pose.yaw) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)  # a full circle of radius 1
    w.reset()
    pose = w.step(linear=(0.5, 0, 0), angular_z=0.5, dt=period / 4)  # quarter circle: (1, 1), facing +y
    assert (pose.x, pose.y, pose.yaw) == pytest.approx((1.0, 1.0, math.pi / 2), abs=1e-9)


def test_drone_is_holonomic():
    w = _drone(yaw_deg=90.0)
    for _ in range(4):
        pose = w.step(linear=(0.0, 0.5, 0.1), dt=0.5)  # left of a robot facing +y is -x
    assert (pose.x, pose.y, pose.z, pose.yaw) == pytest.approx((-1.0, 0.0, 1.7, math.pi / 2), abs=1e-9)
    assert w.twist == pytest.approx((0.0, 0.5, 0.1, 0.0))
    # constant body-frame twist with yaw rate: deterministic, identical in two worlds
    other = _drone(yaw_deg=90.0)
    for world in (w, other):
        world.reset()
        for _ in range(7):
            world.step(linear=(0.3, -0.2, 0.05), angular_z=0.4, dt=0.13)
    assert w.robot_pose == other.robot_pose


def test_walls_and_people_stop_the_robot():
    w = _drone()
    pose = w.step(linear=(2.0, 0.0, 0.0), dt=10.0)
    assert pose.x == pytest.approx(3.0 - 0.2) and pose.y == 0.0  # room half-side minus the robot radius
    assert w.twist[0] == pytest.approx((2.8 - 0.0) / 10.0)
    pose = w.step(linear=(0.0, 0.0, -1.0), dt=10.0)
    assert pose.z == pytest.approx(0.2)  # floor margin
    pose = w.step(linear=(0.0, 0.0, 1.0), dt=10.0)
    assert pose.z == pytest.approx(2.5 - 0.15)  # below the ceiling
    pose = w.step(linear=(1.0, 1.0, 0.0), dt=10.0)  # slides along the wall into the corner
    assert (pose.x, pose.y) == pytest.approx((2.8, 2.8))
    w.set_robot_pose(RobotPose(-10.0, 0.0, 1.5, 0.0))  # teleports are clamped too
    assert w.robot_pose.x == pytest.approx(-2.8)

    scene = Scene(room_size=6.0, people=[Person("eileen", "astronaut", 1.0, 0.0)],
                  robot=Robot(kind="wheeled", x=-1.0, y=0.0, z=1.5))
    with FaceWorld(scene) as walled:
        pose = walled.step(linear=(1.0, 0, 0), dt=3.0)
        assert pose.x == pytest.approx(1.0 - 0.25 - 0.2)  # stopped at the person's body


def test_step_rejects_bad_input():
    w = _drone()
    with pytest.raises(ValueError, match="dt"):
        w.step(dt=0.0)
    with pytest.raises(ValueError, match="linear"):
        w.step(linear=(1.0, 0.0))
    with pytest.raises(ValueError, match="finite"):
        w.step(linear=(math.nan, 0.0, 0.0))


# ------------------------------------------------------------------ scenes
@pytest.mark.parametrize("name", ["one_person", "two_people_occluder"])
def test_shipped_scenes_load_and_build(name):
    scene = load_scene(SCENES / f"{name}.yaml")
    assert scene.people and scene.camera.width == 640
    assert Scene.from_dict(scene.to_dict()) == scene
    with FaceWorld(scene) as w:
        for person in scene.people:
            assert w.person_in_view(person.name)["in_image"]
        if name == "two_people_occluder":
            assert 0.2 < w.person_in_view("eileen_collins")["occluded_fraction"] < 0.8


BAD_SCENES = [
    ("people: [{name: a, photo: astronaut, x: 0, y: 0, yaw: 3}]", r"scene\.people\[0\]\.yaw: unknown key"),
    ("robot: {kind: boat}", r"scene\.robot\.kind: must be one of"),
    ("people: [{photo: astronaut, x: 0, y: 0}]", r"scene\.people\[0\]\.name: missing required key"),
    ("people: [{name: a, photo: nobody.png, x: 0, y: 0}]", r"scene\.people\[0\]\.photo: 'nobody\.png'"),
    ("people: [{name: a, photo: astronaut, x: 9, y: 0}]", r"scene\.people\[0\]\.x: .*outside the room"),
    ("people: [{name: a, photo: astronaut, x: 0, y: 0}, {name: a, photo: astronaut, x: 1, y: 0}]",
     r"scene\.people\[1\]\.name: duplicate"),
    ("room_size: -3", r"scene\.room_size: must be >= 1"),
    ("room_size: big", r"scene\.room_size: expected a finite number"),
    ("camera: {width: 640.5}", r"scene\.camera\.width: expected an integer"),
    ("occluders: [{x: 0, y: 0, z: 1, width: 0, height: 1}]", r"scene\.occluders\[0\]\.width: must be > 0"),
    ("occluders: [{x: 0, y: 0, z: 1, width: 1, height: 1, color: red}]", r"scene\.occluders\[0\]\.color"),
    ("scenery: 1", r"scene\.scenery: unknown key"),
    ("- 1\n- 2", r"scene: expected a mapping"),
    ("people: {name: a}", r"scene\.people: expected a list"),
    ("robot: {x: [1", r"not valid YAML"),
]


@pytest.mark.parametrize("text,message", BAD_SCENES)
def test_bad_scene_files_raise_clear_errors(tmp_path, text, message):
    path = tmp_path / "scene.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_scene(path)


def test_photo_files_and_photos_without_a_face(tmp_path):
    from opendr_perception.core.samples import astronaut, no_people_photos
    cv2.imwrite(str(tmp_path / "eileen.png"), astronaut())
    cv2.imwrite(str(tmp_path / "cup.png"), no_people_photos()["coffee"])
    (tmp_path / "ok.yaml").write_text("people: [{name: e, photo: eileen.png, x: 0, y: 0}]")
    scene = load_scene(tmp_path / "ok.yaml")  # relative to the YAML file
    assert Path(scene.people[0].photo) == tmp_path / "eileen.png"
    (tmp_path / "cup.yaml").write_text("people: [{name: c, photo: cup.png, x: 0, y: 0}]")
    with pytest.raises(ValueError, match="no face found in photo"):
        FaceWorld(load_scene(tmp_path / "cup.yaml"))
    with pytest.raises(ValueError, match="scene file not found"):
        load_scene(tmp_path / "missing.yaml")
