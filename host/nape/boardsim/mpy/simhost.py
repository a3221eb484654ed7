"""Simulated board (host only, MicroPython): runs the firmware pipeline on raw samples piped through stdin.

Used by the host's simulated device (nape.device_sim) under the unix MicroPython; on a
real board ``main.py`` feeds the same ``Pipeline`` from the IMU drivers instead.

stdin:  header  b"NSIM" u8 imu_mask, u16 max_value_len, f32 rate_hz, u32 n_samples
        then n_samples records of float32: per IMU present (trunk first) acc x,y,z (m/s^2),
        gyr x,y,z (rad/s).
stdout: records  u8 channel (1 = stream notification, 0 = end), u16 length, value.
"""

import struct
import sys

import pipeline

_BLOCK = 100  # samples read per stdin call


def _read_exact(stream, n):
    buf = b""
    while len(buf) < n:
        part = stream.read(n - len(buf))
        if not part:
            raise EOFError("stdin ended after %d of %d bytes" % (len(buf), n))
        buf += part
    return buf


def run(stdin, stdout):
    hdr = _read_exact(stdin, 15)
    if hdr[:4] != b"NSIM":
        raise ValueError("bad simhost header")
    mask, max_value_len, rate_hz, n = struct.unpack_from("<BHfI", hdr, 4)
    p = pipeline.Pipeline(mask, rate_hz, max_value_len)
    n_imu = (mask & 1) + ((mask >> 1) & 1)
    rec = 24 * n_imu
    fmt = "<" + "f" * (6 * n_imu)
    acc0 = [0.0, 0.0, 0.0]
    gyr0 = [0.0, 0.0, 0.0]
    acc1 = [0.0, 0.0, 0.0]
    gyr1 = [0.0, 0.0, 0.0]
    done = 0
    out = stdout
    while done < n:
        k = min(_BLOCK, n - done)
        block = _read_exact(stdin, k * rec)
        for i in range(k):
            v = struct.unpack_from(fmt, block, i * rec)
            acc0[0], acc0[1], acc0[2], gyr0[0], gyr0[1], gyr0[2] = v[0], v[1], v[2], v[3], v[4], v[5]
            if n_imu == 2:
                acc1[0], acc1[1], acc1[2], gyr1[0], gyr1[1], gyr1[2] = v[6], v[7], v[8], v[9], v[10], v[11]
            t_ms = ((done + i) * p.period_us) // 1000
            p.step(t_ms, acc0, gyr0, acc1, gyr1)
        done += k
        for value in p.outbox:
            out.write(struct.pack("<BH", 1, len(value)))
            out.write(value)
        p.outbox.clear()
    p.flush()
    for value in p.outbox:
        out.write(struct.pack("<BH", 1, len(value)))
        out.write(value)
    out.write(struct.pack("<BH", 0, 0))
    out.flush()


if __name__ == "__main__":
    run(sys.stdin.buffer, sys.stdout.buffer)
