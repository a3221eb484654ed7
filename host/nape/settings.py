"""Analysis settings: every clinical or ergonomic threshold, its default and its source.

Users override any field from the CLI (``nape analyse --set neck_flexion_deg=25``) or a
JSON file. Angles are degrees, times seconds, accelerations g (9.80665 m/s^2).

Sources cited by key:
- [ISO11226] ISO 11226:2000 Ergonomics — Evaluation of static working postures (head
  inclination 0–25° acceptable; trunk inclination 0–20° acceptable, 20–60° acceptable only
  for limited holding times; neck flexion = head inclination − trunk inclination).
- [NORASI22] Norasi H, et al. (2022) Exposure to neck flexion and risk of neck pain: a
  systematic review. Appl Ergon — 20° neck flexion was the best-supported risk cut-off.
- [BRAKE] Naturalistic-driving figures on the vehicle's acceleration: routine braking
  ~0.25 g; harsh braking flagged from 0.3–0.45 g (UDRIVE: 3.0 m/s² initial threshold, Jansen &
  Wesseling 2018; Bagdadi & Várhelyi 2011, Accid Anal Prev 43, and Bagdadi 2013, Transp Res F
  16:117, on the 100-Car data); emergency braking 0.64–0.97 g (Fambro et al. 1997, NCHRP
  Report 400); the 100-Car and SHRP2 studies search for crashes and near-crashes from a
  longitudinal acceleration of 0.6–0.65 g and a lateral one of 0.7–0.75 g (Dingus et al. 2006,
  DOT HS 810 593; SHRP2 kinematic triggers). Accelerating and cornering use the same
  boundaries (a Nape choice: drivers rarely exceed 0.4–0.5 g in either).
- [POTHOLE] Vertical seat shocks. Ordinary potholes and speed bumps give a passenger car
  0.3–1 g peak vertical acceleration (vehicle-fixed phone recordings of real roads: ≈ 0.5 g
  for real potholes in the independent evaluation of issue 15; the 0.3–1 g range is Nape's
  reading of smartphone road-survey work and is to be checked against a named survey before
  clinical use); the NATO Reference Mobility
  Model takes a 2.5 g peak vertical acceleration at the driver's seat as the limit of
  tolerable shock over an obstacle (Ahlvin & Haley 1992, NRMM II, US Army WES TR GL-92-19).
  In ISO 2631-1:1997 terms, a 60 ms half-sine of 2.5 g alone has a vibration dose value of
  ~9 m/s^1.75, the EU daily action value (Directive 2002/44/EC: 9.1 m/s^1.75).
- [WHIPLASH] Low-speed rear impacts (Δv ≈ 6 km/h) gave head accelerations up to ~2 g above
  the chest (volunteer sled tests; e.g. Siegmund et al. 1997, SAE 973341).
- [NIC] Neck Injury Criterion NIC = 0.2·a_rel + v_rel² (head relative to T1, from the
  impact's onset): 15 m²/s² proposed as the tolerance for lasting (AIS 1) neck injury
  (Boström et al. 1996, IRCOBI); 8 m²/s² is the higher performance limit of Euro NCAP's
  whiplash seat tests (Euro NCAP whiplash assessment protocol, 2008–2014: at or below it a
  seat scores full marks).
- [DELTAV] Real-world rear impacts with crash-pulse recorders (Krafft et al. 2002, Traffic
  Inj Prev 3:141; Kullgren et al. 2003, ESV 18-344): symptoms lasting under a month at an
  average Δv of 10 km/h (mean acceleration 3.9 g); 20 % risk of symptoms over a month at Δv
  ≈ 8 km/h; most occupants with symptoms over a month had Δv above 15 km/h. These are the
  car's Δv over the crash pulse: the upper back's velocity is read once the seat back has let
  go (nape.analysis.jolts ``DV_SETTLE_S``), not at its peak, which overshoots the car's Δv as
  the seat back springs the trunk forward (1.20 × on simulator family A; 1.07 × read settled).
  The trunk-only grade is less certain than NIC: bench.trunk_only_rear measures how often it
  matches the neck-loading grade.
- [GRADE] Each cause is graded on the quantity that loads the neck in it, the same
  definition in the analysis (nape.analysis.jolts, estimated from the body-worn sensors) and
  in the simulator's labels (nape.sim.labels, computed from the simulated physics):
  manoeuvres (braking, accelerating, cornering) on the vehicle's sustained (≤ 2 Hz,
  ``vehicle_lowpass_hz``) horizontal acceleration, which a belted upper back follows at these
  frequencies [BRAKE]; bumps on the seat's peak vertical acceleration [POTHOLE], estimated from
  the upper back's; rear impacts on NIC when a head sensor is worn [NIC], else on the upper
  back's forward velocity change (less certain, said so in the report) [DELTAV]; knocks (a fall,
  a blow) on the upper back's peak acceleration. Gravity is removed with the inclination
  averaged over the minute before the event and carried through it by the gyroscope, so a
  sustained manoeuvre is not taken for tilt.
- [VEHICLECUE] A vehicle without road vibration: the car's own accelerations (speed changes,
  corners: 0.05–1 g held for seconds, horizontal, in the world frame) while the wearer sits
  upright, does not walk (no 1.5–2.5 Hz steps) and does not change posture; a vehicle from
  either this cue or road vibration (6–30 Hz), so neither a smooth road nor a rough one is
  needed. Sources at each setting.
- [FULLSCALE] Full-scale ranges of body-worn MEMS IMUs: ±2/4/8/16 g and ±250–2000 °/s
  (InvenSense MPU-6050 product specification rev. 3.4; TDK ICM-42688-P datasheet): a
  reading beyond the largest is a sensor or transfer fault, not motion.
- [HEADSPEED] Voluntary head movements follow a main sequence: peak angular velocity grows
  with amplitude up to ~800 °/s, durations 100 ms and more (Zangemeister, Jones & Stark 1981,
  Exp Neurol 71:76–91). So the rate of a head or trunk cannot jump by hundreds of °/s and
  come back within one sample; a single sample that does is a sensor or bus fault.
- [WALKHEAD] While walking the head is stabilised in space: its pitch oscillates by a few
  degrees about a steady mean (Pozzo, Berthoz & Lefort 1990, Exp Brain Res 82:97–106), the
  mean near horizontal gaze in the light and tilted down in darkness (Pozzo et al. 1991, Acta
  Otolaryngol Suppl 481:322–7). So the average direction of gravity in a head sensor while
  walking is its upright reference, whatever angle the sensor is worn at.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NapeError

SETTINGS_FILE_MAX_BYTES = 1 << 20  # a settings file is a small JSON object; more is not one


@dataclass(frozen=True)
class AnalysisSettings:
    """Thresholds and filter settings of the analysis (units in the names)."""

    # --- orientation and calibration ---
    fuse_on_host: float = 1.0
    """1: fuse the raw acc/gyr again on the host with the vqf package (reference quality,
    Laidig & Seel 2023); 0: use the firmware's quaternions as sent."""
    neutral_window_s: float = 5.0
    """Length of the still, upright stretch taken as the neutral posture when no calibration
    was captured (Nape default; the wearer is asked to start upright)."""
    calib_search_s: float = 300.0
    """How far into the recording to look for that stretch (Nape default)."""
    calib_settle_s: float = 2.0
    """Skip this long at the start while the orientation filter converges (Nape default)."""
    still_dps: float = 3.0
    """Gyro variation (standard deviation over the window, each axis) below which the wearer
    counts as still for calibration; variation rather than magnitude, so a gyro's zero-rate
    offset (up to ±20 °/s on an MPU-6050) does not hide stillness (Nape default)."""
    upright_tilt_deg: float = 35.0
    """Upper back within this of vertical counts as upright for calibration (Nape default)."""
    neutral_head_tilt_deg: float = 25.0
    """With a head IMU, the head sensor within this of vertical counts as upright for
    calibration: a head held still but flexed (reading, writing: 30–45°) is not neutral;
    ±15° of mounting plus ±10° of natural head carriage (Nape default)."""
    calib_check_walk_deg: float = 10.0
    """People walk with the upper back nearly upright: when the median upper-back angle while
    walking is further than this from 0°, the report says the neutral posture was probably
    off by about that much (Nape default)."""
    calib_walk_search_s: float = 1800.0
    """How far into the recording to look for walking, the upright reference of a sensor mounted
    at any angle (the search stops once ``calib_walk_enough_s`` of walking is found; Nape default)."""
    calib_walk_enough_s: float = 120.0
    """Walking time after which the walking reference is taken as settled (Nape default)."""
    calib_walk_bout_s: float = 20.0
    """A walking bout must last this long to serve as the upright reference: a seat ringing after
    a bump lasts a few seconds (``walk_in_vehicle_max_s``; Nape default)."""
    calib_walk_head_deg: float = 5.0
    """How close to its neutral the head is carried, on average, while walking: head pitch
    stays within a few degrees of its mean (head stabilised in space) and the mean head
    orientation is near horizontal gaze in the light. [WALKHEAD]"""
    calib_walk_disagree_deg: float = 15.0
    """Walking bouts whose directions lie further apart than this (one spent looking at a phone,
    25–45° bowed) are no reference: walking is not used. A still neutral further than this from
    a sensor's walking reference is flagged in the report (the head may have been bent then, or bowed while walking): three times
    ``calib_walk_head_deg`` (Nape default). (The upright tests for the still start pass within
    ``upright_tilt_deg`` / ``neutral_head_tilt_deg`` of each sensor's z axis or of its walking
    direction: sensors worn at an angle still find an upright start.)"""
    heading_tau_s: float = 120.0
    """Time constant tracking the heading offset between head and trunk IMUs (6D fusion has
    no common heading); axial neck rotation held longer than this fades (Nape default)."""

    # --- posture ---
    neck_flexion_deg: float = 20.0
    """Neck flexion (head minus trunk inclination) above which posture is poor. [NORASI22]"""
    trunk_inclination_deg: float = 20.0
    """Trunk (upper back) forward inclination above which the back counts as hunched. [ISO11226]"""
    hold_s: float = 60.0
    """Minimum time a poor posture must last to be an episode. ISO 11226 limits holding
    times for 20–60° trunk inclination; Nape reports anything held for a minute. [ISO11226]"""
    hysteresis_deg: float = 5.0
    """An episode ends only when the angle falls this far below the threshold (Nape default,
    stops noise from splitting one episode into many)."""
    end_grace_s: float = 5.0
    """Short returns to upright shorter than this do not end an episode (Nape default)."""
    posture_lowpass_hz: float = 0.5
    """Low-pass on posture angles: postures are held for seconds, not fractions (Nape default)."""

    iso_neck_flexion_deg: float = 25.0
    """ISO 11226: neck flexion (head minus trunk inclination) above 25° is not acceptable
    for static postures. [ISO11226]"""
    iso_head_hold_25_min: float = 8.0
    """Maximum acceptable holding time at 25° head inclination, min (ISO 11226 Fig. 3 as
    read by Nape; check against the standard before clinical use). [ISO11226]"""
    iso_head_hold_85_min: float = 1.0
    """Maximum acceptable holding time at 85° head inclination, min (as above). [ISO11226]"""
    iso_trunk_hold_20_min: float = 4.0
    """Maximum acceptable holding time at 20° trunk inclination, min (ISO 11226 Fig. 2 as
    read by Nape; check against the standard before clinical use). [ISO11226]"""
    iso_trunk_hold_60_min: float = 1.0
    """Maximum acceptable holding time at 60° trunk inclination, min (as above). [ISO11226]"""
    rula_extension_deg: float = 5.0
    """Neck extension beyond this counts as "in extension" (RULA score 4); the margin keeps
    sensor noise around neutral out (McAtamney & Corlett 1993; margin Nape default)."""
    rula_side_bend_deg: float = 10.0
    """Lateral bend beyond this adds RULA's +1 for a side-bent neck (ISO 11226 uses 10° for
    lateral bending; RULA gives no angle)."""
    rula_twist_deg: float = 10.0
    """Axial rotation beyond this adds RULA's +1 for a twisted neck (Nape default)."""
    keyboard_trunk_deg: float = 12.0
    """A neck episode with the upper back forward at least this much is the keyboard
    pattern (Nape default)."""
    phone_neck_deg: float = 33.0
    """Neck flexion from which an episode with an upright back is phone / looking down:
    smartphone users' median head flexion is 33–45° (e.g. Lee et al. 2015)."""
    phone_trunk_max_deg: float = 25.0
    """A deep neck-flexion episode (``phone_neck_deg``) with the upper back forward less than
    this is phone / looking down, not keyboard: seated phone users lean the trunk 15–20°
    forward (Nape default, with a 5° margin)."""
    bed_lateral_deg: float = 10.0
    """Lying on the side, neck lateral bend beyond this means the pillow height does not
    keep the neck in line with the trunk (side-lying pillow ~9–11 cm keeps it straight)."""
    bed_flexion_deg: float = 15.0
    """Lying on the back, neck flexion/extension beyond this means a pillow too high / too
    low (supine pillow ~10 cm; Nape default angle)."""
    bed_hold_s: float = 60.0
    """A bed posture held at least this long is reported, with its duration (Nape default)."""

    # --- activity context ---
    walk_rms_g: float = 0.06
    """RMS of 0.8–3 Hz acceleration magnitude above which the wearer is walking (Nape default)."""
    walk_min_s: float = 4.0
    """Step-band motion must last this long to be walking, so one shock is not (Nape default)."""
    vehicle_vib_rms_g: float = 0.01
    """RMS of 6–30 Hz road vibration above which an upright, not walking wearer is in a
    vehicle (Nape default)."""
    vehicle_window_s: float = 30.0
    """Vibration must be present most of this window to count as a vehicle (Nape default)."""
    walk_in_vehicle_max_s: float = 20.0
    """Inside a drive, step-like motion shorter than this is the seat ringing after a bump, not
    walking (nobody walks for a few seconds in the middle of a drive; Nape default)."""
    vehicle_gap_s: float = 120.0
    """Breaks in the vehicle context up to this long, with no walking or lying in them, stay
    in the vehicle: waiting at lights or in a queue quietens the road (Nape default)."""
    vehicle_manoeuvre_min_g: float = 0.05
    """The car's own cue, which needs no road vibration (a smooth road, an electric car):
    horizontal acceleration of the trunk in the world frame, averaged over each second, from
    this level up to ``vehicle_manoeuvre_max_g``, while the trunk is upright, not walking and
    not changing posture, counts as the car speeding up, slowing or cornering. Everyday driving
    is mostly such small accelerations: 0.05–0.3 g in naturalistic-driving acceleration
    distributions, which fall off like a Pareto tail above that (SHRP2 NDS acceleration epochs,
    Ali 2023, Virginia Tech dissertation; Xu et al. 2021, Proc IMechE D 235,
    doi:10.1177/09544070211018039). 0.05 g stays above the error of a fused inclination
    (≈ 1° gives 0.017 g). [VEHICLECUE]"""
    vehicle_manoeuvre_max_g: float = 1.0
    """Above this a sustained horizontal acceleration is not a car's: emergency braking reaches
    0.64–0.97 g, the tyres' grip (NCHRP Report 400, Fambro et al. 1997). [BRAKE] [VEHICLECUE]"""
    vehicle_manoeuvre_min_s: float = 2.0
    """The cue must hold this many consecutive seconds: a car's speed changes and corners last
    seconds (naturalistic braking and cornering epochs 1–10 s), a reach or a shift on a chair
    well under one (Nape default). [VEHICLECUE]"""
    vehicle_cue_s: float = 4.0
    """Seconds of the cue within ``vehicle_cue_window_s`` that make a vehicle without road
    vibration, in at least ``vehicle_cue_runs`` separate stretches (Nape default). [VEHICLECUE]"""
    vehicle_cue_runs: float = 2.0
    """Separate speed changes or corners within ``vehicle_cue_window_s`` that make a vehicle:
    one push, however strong, does not make a drive; city and motorway driving change speed or
    direction every 10–60 s (Nape default). [VEHICLECUE]"""
    vehicle_cue_window_s: float = 60.0
    """Window over which the car's cue is counted (Nape default). [VEHICLECUE]"""
    vehicle_cue_swing_g: float = 0.03
    """Within each second of the car's cue the horizontal acceleration may swing about its mean
    by at most this RMS: a car's speed changes and corners are smooth at the trunk (road
    vibration at a car seat is a few hundredths of a g horizontally, Griffin 1990, Handbook of
    Human Vibration), while clapping, a phone call or opening a door move the chest back and
    forth. [VEHICLECUE]"""
    vehicle_cue_swing_ratio: float = 0.25
    """... plus this fraction of the second's mean: a hard manoeuvre rings the belted trunk at the
    belt and seat back's 2.5–3 Hz resonance in proportion to its level (Nape default; on the two
    simulator families the ring stays under a quarter of the level once the onset is past).
    [VEHICLECUE]"""
    vehicle_cue_settle_s: float = 10.0
    """The car's cue is not read in the first seconds of full-rate data: the fused inclination
    converges with a time constant of ~3 s (VQF's accelerometer correction, Laidig & Seel 2023,
    Inf Fusion 91:187) and its error reads as horizontal acceleration until then. [VEHICLECUE]"""
    gait_step_lo_hz: float = 1.5
    gait_step_hi_hz: float = 2.5
    """Step frequencies of walking: cadence 90–150 steps/min, 100–120 at ordinary pace
    (Tudor-Locke et al. 2018, Br J Sports Med 52:776; BenAbdelkader et al. 2002). Step-band
    motion above ``walk_rms_g`` around a second keeps it out of the car's cue. [VEHICLECUE]"""
    transition_deg: float = 12.0
    """A change of trunk inclination of more than this within ``transition_s`` is a body
    transition (sitting down, standing up, bending, lying down: sit-to-stand flexes the trunk
    30–50°, Schenkman et al. 1990, Phys Ther 70:638); a belted driver leans 4–14° even in
    emergency braking (10–14°/g; family A and B seat models). Its seconds are not the car's
    cue. [VEHICLECUE]"""
    transition_s: float = 4.0
    """Window of ``transition_deg`` (a sit-to-stand takes 1.5–3 s, Schenkman et al. 1990)."""

    # --- jolts ---
    jolt_trigger_g: float = 0.35
    """Linear acceleration of trunk or head that marks a jolt: the lower bound of harsh
    braking. [BRAKE]"""
    jolt_moderate_g: float = 0.35
    """The vehicle's sustained (≤ 2 Hz) acceleration from which braking, accelerating or
    cornering is moderate: harsh braking 0.3–0.45 g. [BRAKE] [GRADE]"""
    jolt_severe_g: float = 0.65
    """... from which it is severe: emergency braking 0.64–0.97 g, the 0.6–0.65 g crash /
    near-crash trigger of the 100-Car and SHRP2 studies. [BRAKE] [GRADE]"""
    shock_moderate_g: float = 1.5
    """Peak acceleration of the upper back from which a knock (a fall, a blow) is moderate: a
    fall onto a mattress reaches 2–3 g at the chest in UMAFall, everyday movements stay under
    1 g (Nape default). [GRADE]"""
    shock_severe_g: float = 3.0
    """... from which a knock is severe (Nape choice: twice the moderate level). [GRADE]"""
    pothole_moderate_g: float = 1.0
    """Peak vertical acceleration of the seat from which a bump is moderate: above the
    0.3–1 g of ordinary potholes and speed bumps at a car seat (the seat then pushes with
    twice the body's weight). [POTHOLE] [GRADE]"""
    pothole_severe_g: float = 2.5
    """... from which it is severe: the NATO Reference Mobility Model's 2.5 g shock limit at
    the driver's seat (one such shock alone is about the EU daily VDV action value).
    [POTHOLE] [GRADE]"""
    seat_body_hz: float = 4.5
    """A bump's seat acceleration is estimated from the upper back's by inverting a seated body
    of this vertical resonance (apparent-mass resonance 4–6 Hz, Fairley & Griffin 1989, J
    Biomech 22:81; the body passes a 40–100 ms seat shock to the back at 0.4–1.2 × its peak).
    Within that band, 4.5 Hz reads the seat best on both simulator families (0.92 and 1.07 ×
    the seat's peak, bench.detection). [GRADE]"""
    seat_body_damping: float = 0.4
    """... and this damping ratio (Nape default: a single-mode fit of a seated body's apparent
    mass peak is broad, about 0.3–0.5; family A simulates 0.4, family B 0.35). [GRADE]"""
    nic_moderate_m2s2: float = 8.0
    """NIC from which a rear impact is moderate (with a head sensor): Euro NCAP's higher
    performance limit for whiplash seat tests. [NIC] [GRADE]"""
    nic_severe_m2s2: float = 15.0
    """NIC from which a rear impact is severe: the proposed tolerance for lasting neck injury
    (Boström et al. 1996). [NIC] [GRADE]"""
    impact_dv_moderate_kmh: float = 8.0
    """Without a head sensor: the upper back's forward velocity change in a rear impact from
    which it is moderate: 20 % risk of symptoms lasting over a month (Kullgren et al. 2003).
    [DELTAV] [GRADE]"""
    impact_dv_severe_kmh: float = 15.0
    """... from which it is severe: most occupants with symptoms over a month had more
    (Krafft et al. 2002). [DELTAV] [GRADE]"""
    vehicle_lowpass_hz: float = 2.0
    """Low-pass giving the vehicle-level (sustained) acceleration: braking and cornering
    last 0.5–3 s, shocks 50–150 ms (Nape default)."""
    bump_vertical_ratio: float = 1.2
    """A jolt whose vertical peak exceeds this times its horizontal peak is a bump (Nape default)."""
    impulsive_max_s: float = 0.3
    """A horizontal jolt narrower than this at half its peak is an impact or knock, not a
    vehicle manoeuvre: impacts last 50–150 ms, braking pulses 0.5–3 s (Nape default)."""
    nic_reference_m2s2: float = 15.0
    """Proposed NIC injury threshold (Boström et al. 1996); reported beside each jolt."""
    jolt_merge_s: float = 1.0
    """Manoeuvre runs of the same cause and direction closer than this are one event (a
    braking whose level dips for a moment counts once); runs of different causes, opposite
    corners and shocks are never merged this way. Two corners the same way a couple of seconds
    apart are two manoeuvres (family B's chains: gaps of 0.5–5 s; 3 s merged them; Nape
    default)."""
    jolt_max_s: float = 15.0
    """Longest manoeuvre the detection's gravity reference allows for: the reference ends
    this long before each sample, so a braking or corner of up to this length cannot lean
    it (Nape default; braking and corners last up to ~10 s). Longer spans are not dropped:
    they are split into their manoeuvres."""
    manoeuvre_merge_s: float = 1.0
    """Sustained-acceleration crossings closer than this are one manoeuvre (a braking whose
    level dips under the trigger for a moment; Nape default)."""
    shock_merge_s: float = 0.4
    """Shock crossings closer than this are one shock (an impact and the body's rebound at
    its 4–6 Hz resonance; Fairley & Griffin 1989; Nape default)."""
    shock_trigger_g: float = 0.35
    """Lowest high-band (above ``vehicle_lowpass_hz``) acceleration of the upper back that
    marks a shock (same level as ``jolt_trigger_g``; Nape default)."""
    vibration_floor_ratio: float = 5.0
    """A shock must exceed this many times the road-vibration floor (median per-second RMS of
    the high band): Gaussian vibration exceeds 5 × its RMS in under 1 of 10⁶ samples, so a
    rough road raises no jolts while a real shock above it still counts (Nape default)."""
    vibration_floor_s: float = 10.0
    """Seconds of past high-band RMS whose median is the vibration floor (Nape default)."""
    vehicle_margin_s: float = 30.0
    """An event counts as in a vehicle when the vehicle context holds within this many
    seconds of it: a stop at a junction or a crash brings the car to rest, and the context
    itself needs ``vehicle_window_s`` of vibration to switch on (Nape default)."""
    body_turn_deg: float = 35.0
    """A manoeuvre during which the trunk turns more than this is the wearer's own movement
    (sitting down, reaching, lying down: 30–90°); a belted trunk pitches or rolls by up to
    ~10°/g in braking and cornering, with overshoot and gyro drift up to ~25° in a hard
    corner (Nape default)."""
    knock_min_g: float = 1.5
    """Outside a vehicle, a shock must reach this to be reported as a knock (a fall onto a
    mattress reaches 2–3 g at the chest in UMAFall; sitting down hard, clapping or a door
    stay under 1 g). Same value as ``shock_moderate_g`` [POTHOLE]."""
    series_rate_hz: float = 0.5
    """Outside a vehicle, shocks at this rate or more (counted over ``series_s``, the shock
    itself included) are rhythmic activity — hopping, jogging, stairs at 1–3 Hz — not knocks
    (Nape default)."""
    series_s: float = 6.0
    """Window for ``series_rate_hz`` (Nape default)."""
    jolt_lowpass_hz: float = 20.0
    """Low-pass on linear acceleration before peak picking: keeps 50–150 ms shocks and
    drops sensor noise and vibration above it (Nape default)."""
    head_turn_dps: float = 150.0
    """Head motion with angular velocity above this (or linear acceleration above
    ``jolt_trigger_g``) while the trunk stays under half the trigger is counted as the
    wearer's own head movement, never a jolt; the head never triggers a jolt (Nape default:
    quick looks reach 200–400 °/s)."""

    # --- plausibility (host/nape/analysis/quality.py) ---
    glitch_acc_max_g: float = 16.0
    """Specific force above this on any one axis is a sensor glitch, never a jolt: the largest
    full scale of body-worn MEMS accelerometers (±16 g per axis, MPU-6050 / ICM-42688
    datasheets; a real shock railing one axis may reach √3 × that in all). [FULLSCALE]"""
    glitch_gyr_max_dps: float = 2000.0
    """Angular velocity above this on any one axis is a sensor glitch: the largest gyroscope
    full scale of the same parts (±2000 °/s per axis). [FULLSCALE]"""
    glitch_spike_g: float = 4.0
    """A single sample differing from both neighbours by more than this, while they agree, is a
    glitch: shocks at the back and head last 50–150 ms, several samples (Nape default)."""
    glitch_spike_dps: float = 400.0
    """A single gyroscope sample differing from both neighbours by more than this (°/s), while
    they agree within a quarter of it, is a glitch: the fastest head movements reach 500–800 °/s
    over 100 ms or more, so a 50 Hz stream's neighbouring samples differ by at most ~150 °/s
    (one glitched rate sample turns a fused orientation by up to 40° at 50 Hz and leaks gravity
    into every linear acceleration after it). [HEADSPEED]"""

    # --- context ---
    lying_trunk_deg: float = 60.0
    """Trunk tilted more than this from vertical (any direction) counts as lying (Nape default)."""
    lying_recline_deg: float = 50.0
    """Trunk reclined backwards (back facing down) more than this counts as lying too: lying on
    a bed with the upper back on pillows reads 52–59° in UMAFall's lying-down trials, while
    reading against a headboard or a reclined car seat stays under 40° (Nape default)."""
    lying_prone_min_s: float = 10.0
    """Face down (trunk tilted forward past ``lying_trunk_deg``) counts as lying prone only when
    held this long: bending forward to pick something up tilts the trunk as far for a few
    seconds (UMAFall bending trials: 1–3 s; Nape default)."""

    # --- neck range of motion (nape rom; host/nape/analysis/rom.py) ---
    # Typical active cervical range in healthy adults, per direction (low..high end of the band).
    # The AMA Guides (5th ed.) give 50° flexion, 60° extension, 45° lateral bending and 80°
    # rotation as normal; the bands below are Nape's, around those values. Range of motion
    # shrinks with age and depends on the measuring device [CROM].
    rom_flexion_low_deg: float = 50.0
    """Low end of typical neck flexion (chin to chest) range, deg. [CROM]"""
    rom_flexion_high_deg: float = 60.0
    """High end of typical neck flexion range, deg. [CROM]"""
    rom_extension_low_deg: float = 60.0
    """Low end of typical neck extension (looking up) range, deg. [CROM]"""
    rom_extension_high_deg: float = 75.0
    """High end of typical neck extension range, deg. [CROM]"""
    rom_lateral_low_deg: float = 40.0
    """Low end of typical lateral bending (ear to shoulder) range per side, deg. [CROM]"""
    rom_lateral_high_deg: float = 45.0
    """High end of typical lateral bending range per side, deg. [CROM]"""
    rom_rotation_low_deg: float = 70.0
    """Low end of typical axial rotation (looking over the shoulder) range per side, deg. [CROM]"""
    rom_rotation_high_deg: float = 80.0
    """High end of typical axial rotation range per side, deg. [CROM]"""
    rom_hold_s: float = 1.0
    """An end range counts only if held this long: the maximum of the angle's rolling median
    over this window, so one noisy sample or a bounce does not count (Nape default; the test
    asks for a 3 s hold)."""
    rom_asymmetry_deg: float = 10.0
    """A left–right difference above this is pointed out (Nape default, about twice the
    5° measurement error usually reported for cervical ROM devices)."""
    rom_min_motion_deg: float = 5.0
    """A direction whose end range is below this was not performed: reported as not measured
    (Nape default)."""
    rom_change_deg: float = 5.0
    """Trends: a change of end range between tests larger than this is called stiffer or freer
    (Nape default, about the 5° measurement error usually reported for cervical ROM devices)."""
    rom_functional_axis: float = 1.0
    """1: find the head–trunk flexion axis from the forward/backward bending of the test and
    turn the joint frame onto it (functional calibration: removes the flexion/side-bend
    cross-talk a sensor mounted turned about the vertical causes); 0: off."""

    sources: dict = field(default_factory=lambda: dict(_SOURCES), compare=False)

    def with_overrides(self, pairs: list[str]) -> "AnalysisSettings":
        """A copy with ``name=value`` overrides applied.

        Raises:
            NapeError: no ``=``, an unknown name, a value that is not a finite number, or one
                outside the setting's allowed range (:data:`LIMITS`); the message shows the form.
        """
        changes = {}
        names = {f.name for f in dataclasses.fields(self) if f.name != "sources"}
        for pair in pairs:
            name, sep, value = (x.strip() for x in str(pair).partition("="))
            if not sep:
                hint = (f" (e.g. --set {name}={getattr(self, name):g})" if name in names
                        else " (e.g. --set neck_flexion_deg=25)")
                raise NapeError(f"setting {name!r} has no value: the form is --set NAME=VALUE{hint}")
            if name not in names:
                near = difflib.get_close_matches(name, sorted(names), n=3)
                also = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(sorted(names))}"
                raise NapeError(f"unknown setting {name!r}{also}")
            try:
                changes[name] = float(value)
            except ValueError:
                raise NapeError(f"setting {name} needs a number, got {value!r} (the form is --set {name}=VALUE)") from None
            if not math.isfinite(changes[name]):
                raise NapeError(f"setting {name} needs a finite number, got {value!r}")
            check_range(name, changes[name])
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, path: Path) -> "AnalysisSettings":
        """Settings from a JSON object of overrides.

        Raises:
            NapeError: unreadable file, not JSON, or unknown names.
        """
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):  # a FIFO would block read_text() until a writer comes
                raise NapeError(f"cannot read settings file {path}: "
                                f"{'a folder' if stat.S_ISDIR(st.st_mode) else 'not a regular file'}, not JSON")
            if st.st_size > SETTINGS_FILE_MAX_BYTES:
                raise NapeError(f"settings file {path} is {st.st_size} bytes: too large for a JSON object of "
                                f"settings (at most {SETTINGS_FILE_MAX_BYTES} bytes)")
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise NapeError(f"cannot read settings file {path}: {e}") from None
        if not isinstance(data, dict):
            raise NapeError(f"settings file {path} must hold a JSON object")
        return cls().with_overrides([f"{k}={v}" for k, v in data.items()])

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        return d


_SOURCES = {
    "neck_flexion_deg": "Norasi et al. 2022 (systematic review): 20° neck flexion best-supported risk cut-off",
    "trunk_inclination_deg": "ISO 11226:2000: trunk inclination 0–20° acceptable",
    "hold_s": "ISO 11226:2000 limits holding time above 20° trunk inclination; Nape reports ≥ 1 min",
    "jolt_trigger_g": "harsh braking starts at 0.35 g (naturalistic driving studies)",
    "jolt_moderate_g": "harsh braking 0.3–0.45 g (naturalistic driving studies: UDRIVE, 100-Car); applied to the vehicle's sustained (≤ 2 Hz) acceleration",
    "jolt_severe_g": "emergency braking 0.64–0.97 g (NCHRP 400); 100-Car / SHRP2 crash triggers 0.6–0.65 g",
    "shock_moderate_g": "knocks: a fall onto a mattress gives 2–3 g at the chest (UMAFall); Nape default",
    "shock_severe_g": "knocks: twice the moderate level; Nape choice",
    "pothole_moderate_g": "ordinary potholes and speed bumps give a car 0.3–1 g (real road recordings: ≈ 0.5 g)",
    "pothole_severe_g": "2.5 g peak at the driver's seat: NATO Reference Mobility Model shock limit (Ahlvin & Haley 1992)",
    "seat_body_hz": "seated-body vertical apparent-mass resonance 4–6 Hz (Fairley & Griffin 1989)",
    "seat_body_damping": "Nape default: single-mode fits of the seated body's apparent mass, ~0.3–0.5",
    "nic_moderate_m2s2": "Euro NCAP whiplash seat tests: higher performance limit NIC 8 m²/s²",
    "nic_severe_m2s2": "Boström et al. 1996: NIC 15 m²/s² proposed tolerance for lasting neck injury",
    "impact_dv_moderate_kmh": "Kullgren et al. 2003: 20 % risk of symptoms over a month at Δv ≈ 8 km/h",
    "impact_dv_severe_kmh": "Krafft et al. 2002: symptoms over a month mostly above Δv 15 km/h",
    "iso_neck_flexion_deg": "ISO 11226:2000 neck flexion 0–25° acceptable",
    "iso_head_hold_25_min": "ISO 11226:2000 Fig. 3 holding-time curve (as read by Nape)",
    "iso_trunk_hold_20_min": "ISO 11226:2000 Fig. 2 holding-time curve (as read by Nape)",
    "phone_neck_deg": "smartphone use: median head flexion 33–45°",
    "bed_lateral_deg": "side-lying pillow ~9–11 cm keeps the neck in line with the trunk",
    "nic_reference_m2s2": "Boström et al. 1996: NIC 15 m²/s² proposed threshold",
    "fuse_on_host": "VQF (Laidig & Seel 2023) as the reference orientation filter",
    "vehicle_manoeuvre_min_g": "everyday driving accelerations 0.05–0.3 g (SHRP2 NDS acceleration epochs, Ali 2023; "
                               "Xu et al. 2021, Proc IMechE D)",
    "vehicle_manoeuvre_max_g": "emergency braking 0.64–0.97 g, the tyres' grip (NCHRP Report 400)",
    "gait_step_lo_hz": "walking cadence 90–150 steps/min (Tudor-Locke et al. 2018)",
    "gait_step_hi_hz": "walking cadence 90–150 steps/min (Tudor-Locke et al. 2018)",
    "calib_walk_head_deg": "head pitch while walking oscillates a few degrees about a stable mean (head stabilised "
                           "in space; Pozzo, Berthoz & Lefort 1990, Exp Brain Res 82:97–106); the mean head "
                           "position is near horizontal in the light, tilted down in darkness (Pozzo et al. 1991, "
                           "Acta Otolaryngol Suppl 481:322–7)",
    "transition_deg": "sit-to-stand flexes the trunk 30–50° in 1.5–3 s (Schenkman et al. 1990)",
    "glitch_acc_max_g": "largest accelerometer full scale of body-worn MEMS IMUs: ±16 g (InvenSense MPU-6050, "
                        "TDK ICM-42688-P datasheets)",
    "glitch_gyr_max_dps": "largest gyroscope full scale of the same parts: ±2000 °/s (MPU-6050, ICM-42688-P datasheets)",
    "glitch_spike_dps": "head movements' main sequence: peak velocity up to ~800 °/s, durations >= 100 ms "
                        "(Zangemeister, Jones & Stark 1981, Exp Neurol 71:76–91)",
}


#: the settings holding each grade basis' (moderate, severe) boundaries ([GRADE] above); the analysis (nape.analysis.jolts), the labels
#: (nape.sim.labels) and the words (nape.plainwords) all read them from here
GRADE_BOUNDS = {
    "vehicle": ("jolt_moderate_g", "jolt_severe_g"),
    "seat": ("pothole_moderate_g", "pothole_severe_g"),
    "nic": ("nic_moderate_m2s2", "nic_severe_m2s2"),
    "delta_v": ("impact_dv_moderate_kmh", "impact_dv_severe_kmh"),
    "back": ("shock_moderate_g", "shock_severe_g"),
}


# --- when to see a clinician: only published guidance, quoted in plain words ---
CLINICAL_SOURCES = {
    "neck_pain": "NHS, Neck pain and stiff neck (https://www.nhs.uk/conditions/neck-pain-and-stiff-neck/): "
                 "see a GP if neck pain or stiffness does not go away after a few weeks, painkillers have not "
                 "helped, you are worried about it, or you have other symptoms such as pins and needles.",
}
#: What the reports say about seeing a clinician (and only this), from CLINICAL_SOURCES.
CLINICAL_GUIDANCE = {
    "neck_pain": "If your neck hurts or is stiff afterwards and it has not gone away after a few weeks, "
                 "painkillers do not help, or you get pins and needles in an arm, see a GP (NHS advice on "
                 "neck pain).",
}


# --- neck range of motion sources (nape rom) ---
ROM_SOURCES = {
    "CROM": "AMA Guides to the Evaluation of Permanent Impairment, 5th ed. (Cocchiarella & Andersson 2001), "
            "ch. 15: normal active cervical motion flexion 50°, extension 60°, lateral bending 45°, rotation 80°. "
            "Age: Youdas et al. 1992, Phys Ther 72:770 (337 healthy people aged 11–97) and the meta-analysis of "
            "Pan et al. 2018, J Biomech 75:13–27 — cervical range of motion decreases with age and differs "
            "between measuring devices, so values somewhat below the band can be normal for older adults.",
}
_SOURCES.update({
    "rom_flexion_low_deg": ROM_SOURCES["CROM"],
    "rom_extension_low_deg": ROM_SOURCES["CROM"],
    "rom_lateral_low_deg": ROM_SOURCES["CROM"],
    "rom_rotation_low_deg": ROM_SOURCES["CROM"],
    "rom_hold_s": "Nape default: the end range must be held, not touched by one noisy sample",
})


# --- allowed ranges (validated on every override: --set, --settings) ---
# (low, high, unit). Physical limits (an angle within 0–90°, a filter below the lowest stream's
# Nyquist frequency of 7.6 Hz, accelerations within what the wire format carries) and
# sense limits (a hold of at most 2 h); defaults lie inside. A setting without an entry must
# be a finite number ≥ 0.
FLAGS = ("fuse_on_host", "rom_functional_axis")  # 0 or 1
LIMITS: dict[str, tuple[float, float, str]] = {
    "fuse_on_host": (0, 1, ""), "rom_functional_axis": (0, 1, ""),
    "neutral_window_s": (0.5, 120, "s"), "calib_search_s": (1, 86400, "s"),
    "calib_walk_search_s": (0, 86400, "s"), "calib_walk_enough_s": (1, 86400, "s"), "calib_walk_bout_s": (1, 3600, "s"),
    "calib_walk_head_deg": (0, 45, "°"), "calib_walk_disagree_deg": (1, 180, "°"), "calib_settle_s": (0, 600, "s"),
    "still_dps": (0.1, 50, "°/s"), "upright_tilt_deg": (1, 90, "°"), "heading_tau_s": (1, 3600, "s"),
    "neck_flexion_deg": (0, 90, "°"), "trunk_inclination_deg": (0, 90, "°"), "hold_s": (1, 7200, "s"),
    "hysteresis_deg": (0, 30, "°"), "end_grace_s": (0, 600, "s"), "posture_lowpass_hz": (0.01, 5, "Hz"),
    "iso_neck_flexion_deg": (0, 90, "°"), "iso_head_hold_25_min": (0.1, 480, "min"),
    "iso_head_hold_85_min": (0.1, 480, "min"), "iso_trunk_hold_20_min": (0.1, 480, "min"),
    "iso_trunk_hold_60_min": (0.1, 480, "min"), "rula_extension_deg": (0, 45, "°"),
    "rula_side_bend_deg": (0, 90, "°"), "rula_twist_deg": (0, 90, "°"), "keyboard_trunk_deg": (0, 90, "°"),
    "phone_neck_deg": (0, 90, "°"), "bed_lateral_deg": (0, 90, "°"), "bed_flexion_deg": (0, 90, "°"),
    "bed_hold_s": (1, 7200, "s"), "walk_rms_g": (0.001, 2, "g"), "walk_min_s": (0.5, 600, "s"),
    "vehicle_vib_rms_g": (0.0001, 2, "g"), "vehicle_window_s": (1, 3600, "s"),
    "vehicle_manoeuvre_min_g": (0.005, 2, "g"), "vehicle_manoeuvre_max_g": (0.05, 16, "g"),
    "vehicle_manoeuvre_min_s": (1, 60, "s"), "vehicle_cue_s": (1, 3600, "s"), "vehicle_cue_runs": (1, 100, ""), "vehicle_cue_window_s": (2, 3600, "s"),
    "vehicle_cue_settle_s": (0, 600, "s"), "vehicle_cue_swing_g": (0.001, 2, "g"),
    "vehicle_cue_swing_ratio": (0, 2, ""),
    "gait_step_lo_hz": (0.3, 5, "Hz"), "gait_step_hi_hz": (0.5, 8, "Hz"), "transition_deg": (1, 90, "°"),
    "transition_s": (1, 60, "s"),
    "jolt_trigger_g": (0.05, 16, "g"), "jolt_moderate_g": (0.05, 16, "g"), "jolt_severe_g": (0.05, 16, "g"),
    "shock_moderate_g": (0.1, 32, "g"), "shock_severe_g": (0.1, 32, "g"), "vehicle_lowpass_hz": (0.1, 5, "Hz"),
    "bump_vertical_ratio": (0.1, 10, ""), "impulsive_max_s": (0.01, 10, "s"), "nic_reference_m2s2": (1, 100, "m²/s²"),
    "pothole_moderate_g": (0.05, 32, "g"), "pothole_severe_g": (0.05, 32, "g"), "seat_body_hz": (1, 20, "Hz"), "seat_body_damping": (0.05, 2, ""),
    "nic_moderate_m2s2": (0.1, 200, "m²/s²"), "nic_severe_m2s2": (0.1, 200, "m²/s²"),
    "impact_dv_moderate_kmh": (0.1, 200, "km/h"), "impact_dv_severe_kmh": (0.1, 200, "km/h"),
    "jolt_merge_s": (0, 60, "s"), "jolt_max_s": (0.1, 600, "s"), "jolt_lowpass_hz": (1, 200, "Hz"),
    "head_turn_dps": (10, 2000, "°/s"), "glitch_acc_max_g": (2, 32.7, "g"), "glitch_gyr_max_dps": (100, 3276, "°/s"),
    "glitch_spike_g": (0.5, 32, "g"), "glitch_spike_dps": (50, 4000, "°/s"), "lying_trunk_deg": (10, 90, "°"),
    "rom_hold_s": (0, 30, "s"), "rom_asymmetry_deg": (0, 90, "°"), "rom_min_motion_deg": (0, 90, "°"),
    "rom_change_deg": (0, 90, "°"),
    **{f"rom_{d}_{e}_deg": (0, 180, "°") for d in ("flexion", "extension", "lateral", "rotation")
       for e in ("low", "high")},
}


def check_range(name: str, value: float) -> None:
    """Raises NapeError when ``value`` is outside the allowed range of setting ``name``."""
    lo, hi, unit = LIMITS.get(name, (0.0, math.inf, ""))
    if name in FLAGS and value not in (0.0, 1.0):
        raise NapeError(f"setting {name} is 0 (off) or 1 (on), got {value:g}")
    if not lo <= value <= hi:
        u = f" {unit}" if unit and unit not in ("°",) else unit
        span = f"{lo:g}{u} to {hi:g}{u}" if math.isfinite(hi) else f"at least {lo:g}{u}"
        raise NapeError(f"setting {name}={value:g} is out of range: allowed {span} (the form is --set {name}=VALUE)")
