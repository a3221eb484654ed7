import numpy as np

from nape import quat


def _axis_angle(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    h = np.deg2rad(deg) / 2
    return np.concatenate([[np.cos(h)], np.sin(h) * axis])


def test_rotate_about_y_tilts_forward_axis_down():
    q = _axis_angle([0, 1, 0], 30)
    v = quat.rotate(q, np.array([1.0, 0, 0]))
    np.testing.assert_allclose(v, [np.cos(np.deg2rad(30)), 0, -np.sin(np.deg2rad(30))], atol=1e-12)


def test_axis_in_world_matches_rotate_and_mul_composes():
    rng = np.random.default_rng(1)
    q = quat.normalize(rng.normal(size=(50, 4)))
    p = quat.normalize(rng.normal(size=(50, 4)))
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1
        np.testing.assert_allclose(quat.axis_in_world(q, k), quat.rotate(q, np.broadcast_to(e, (50, 3))), atol=1e-12)
    v = rng.normal(size=(50, 3))
    np.testing.assert_allclose(quat.rotate(quat.mul(q, p), v), quat.rotate(q, quat.rotate(p, v)), atol=1e-12)
    np.testing.assert_allclose(quat.mul(q, quat.conj(q))[:, 0], 1.0, atol=1e-12)
