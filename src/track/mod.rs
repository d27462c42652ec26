//! Faces followed across the frames of a video: detections are linked into tracks (SORT /
//! ByteTrack style: a constant-velocity [`Kalman`] filter per track predicts its box, and
//! detections join the track whose prediction they overlap most, greedily by IoU), and
//! [`Playback`] gives each frame the box of every track alive around it: detections where
//! there are some, linearly interpolated between them (frames the detector missed or
//! skipped), and held for a margin of frames before a track's first detection and after its
//! last. Every detection belongs to a track: none is dropped for being short or weak.

mod kalman;

pub use kalman::Kalman;

use crate::detect::{Detection, FaceBox};

/// One detection of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub frame: u64,
    pub bbox: FaceBox,
    pub score: f32,
}

/// A face followed over frames: its detections in frame order.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// From 0, in order of first appearance.
    pub id: u32,
    pub observations: Vec<Observation>,
}

impl Track {
    pub fn first_frame(&self) -> u64 {
        self.observations.first().map_or(0, |o| o.frame)
    }
    pub fn last_frame(&self) -> u64 {
        self.observations.last().map_or(0, |o| o.frame)
    }

    /// The box at `frame` when it lies from `before` frames ahead of the track's first
    /// detection to `after` frames past its last (a live stream asks out of order).
    pub fn box_near(&self, frame: u64, before: u64, after: u64) -> Option<FaceBox> {
        if self.observations.is_empty() || frame + before < self.first_frame() || frame > self.last_frame() + after {
            return None;
        }
        let mut cursor = self.observations.partition_point(|o| o.frame <= frame).saturating_sub(1);
        Some(self.box_at(frame, &mut cursor))
    }

    /// The box at `frame`: the detection there, interpolated between the two around it, or
    /// the nearest end's outside them. `cursor` remembers where the last call looked (frames
    /// asked in increasing order cost nothing to find).
    fn box_at(&self, frame: u64, cursor: &mut usize) -> FaceBox {
        let obs = &self.observations;
        while *cursor + 1 < obs.len() && obs[*cursor + 1].frame <= frame {
            *cursor += 1;
        }
        let a = &obs[*cursor];
        match obs.get(*cursor + 1) {
            Some(b) if frame > a.frame => {
                let t = (frame - a.frame) as f32 / (b.frame - a.frame) as f32;
                let mix = |p: f32, q: f32| p + (q - p) * t;
                FaceBox {
                    x1: mix(a.bbox.x1, b.bbox.x1),
                    y1: mix(a.bbox.y1, b.bbox.y1),
                    x2: mix(a.bbox.x2, b.bbox.x2),
                    y2: mix(a.bbox.y2, b.bbox.y2),
                }
            }
            _ => a.bbox,
        }
    }
}

/// How detections are linked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerOptions {
    /// Least overlap between a track's predicted box and a detection for them to be linked.
    pub min_iou: f32,
    /// Frames a track may go undetected and still be continued (then its gap is interpolated).
    pub max_gap: u64,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions { min_iou: 0.2, max_gap: 30 }
    }
}

impl TrackerOptions {
    pub fn with_max_gap(self, max_gap: u64) -> Self {
        TrackerOptions { max_gap, ..self }
    }
}

struct Active {
    track: Track,
    filter: Kalman,
}

/// Links detections frame by frame into tracks. Holds boxes only (a few dozen bytes per
/// detection), never pixels.
pub struct Tracker {
    options: TrackerOptions,
    active: Vec<Active>,
    finished: Vec<Track>,
    next_id: u32,
}

impl Tracker {
    pub fn new(options: TrackerOptions) -> Tracker {
        Tracker { options, active: Vec::new(), finished: Vec::new(), next_id: 0 }
    }

    /// Adds the detections of `frame` (frames in increasing order, not necessarily every one);
    /// returns the id of the track each detection joined or started.
    pub fn update(&mut self, frame: u64, detections: &[Detection]) -> Vec<u32> {
        let max_gap = self.options.max_gap;
        let (stale, alive): (Vec<Active>, Vec<Active>) =
            std::mem::take(&mut self.active).into_iter().partition(|a| frame - a.track.last_frame() > max_gap);
        self.finished.extend(stale.into_iter().map(|a| a.track));
        self.active = alive;
        let predicted: Vec<FaceBox> = self
            .active
            .iter()
            .map(|a| {
                let mut f = a.filter.clone();
                f.predict((frame - a.track.last_frame()) as f32);
                f.state()
            })
            .collect();
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, p) in predicted.iter().enumerate() {
            for (d, det) in detections.iter().enumerate() {
                let iou = p.iou(&det.bbox);
                if iou >= self.options.min_iou {
                    pairs.push((iou, t, d));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of = vec![None; detections.len()];
        let mut taken = vec![false; self.active.len()];
        for (_, t, d) in pairs {
            if !taken[t] && track_of[d].is_none() {
                taken[t] = true;
                track_of[d] = Some(t);
            }
        }
        let mut ids = Vec::with_capacity(detections.len());
        for (d, det) in detections.iter().enumerate() {
            let observation = Observation { frame, bbox: det.bbox, score: det.score };
            let id = match track_of[d] {
                Some(t) => {
                    let a = &mut self.active[t];
                    a.filter.predict((frame - a.track.last_frame()) as f32);
                    a.filter.update(&det.bbox);
                    a.track.observations.push(observation);
                    a.track.id
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let track = Track { id, observations: vec![observation] };
                    self.active.push(Active { track, filter: Kalman::new(&det.bbox) });
                    id
                }
            };
            ids.push(id);
        }
        ids
    }

    /// Where the live tracks' faces are expected at `frame` (their filters' predictions):
    /// where a frame between whole-frame searches is searched.
    pub fn expected(&self, frame: u64) -> Vec<FaceBox> {
        self.active
            .iter()
            .filter(|a| frame - a.track.last_frame() <= self.options.max_gap)
            .map(|a| {
                let mut f = a.filter.clone();
                f.predict((frame - a.track.last_frame()) as f32);
                f.state()
            })
            .collect()
    }

    /// Adds a detection of track `id` in `frame`, before its first (a face followed backwards
    /// from where it was first found); the filter, which looks forwards, is left as it is.
    pub fn prepend(&mut self, id: u32, frame: u64, detection: &Detection) {
        if let Some(a) = self.active.iter_mut().find(|a| a.track.id == id) {
            let observation = Observation { frame, bbox: detection.bbox, score: detection.score };
            let at = a.track.observations.partition_point(|o| o.frame < frame);
            a.track.observations.insert(at, observation);
        }
    }

    /// The tracks ended so far (undetected for longer than the gap), handed over: a live
    /// stream keeps its own copies, so the tracker need not hold them for hours.
    pub fn take_finished(&mut self) -> Vec<Track> {
        std::mem::take(&mut self.finished)
    }

    /// Every track, by id.
    pub fn finish(mut self) -> Vec<Track> {
        self.finished.extend(self.active.into_iter().map(|a| a.track));
        self.finished.sort_by_key(|t| t.id);
        self.finished
    }
}

/// The boxes to draw frame by frame, for frames asked in increasing order.
pub struct Playback<'a> {
    tracks: &'a [Track],
    /// Track indices by first frame.
    order: Vec<usize>,
    next: usize,
    /// Tracks around the current frame, with their observation cursors.
    live: Vec<(usize, usize)>,
    margin: u64,
}

impl<'a> Playback<'a> {
    /// Each track is drawn from `margin` frames before its first detection to `margin` after
    /// its last.
    pub fn new(tracks: &'a [Track], margin: u64) -> Playback<'a> {
        let mut order: Vec<usize> = (0..tracks.len()).filter(|&i| !tracks[i].observations.is_empty()).collect();
        order.sort_by_key(|&i| tracks[i].first_frame());
        Playback { tracks, order, next: 0, live: Vec::new(), margin }
    }

    /// `(track index, box)` for every track drawn at `frame`.
    pub fn boxes_at(&mut self, frame: u64) -> Vec<(usize, FaceBox)> {
        while let Some(&i) = self.order.get(self.next) {
            if self.tracks[i].first_frame() > frame + self.margin {
                break;
            }
            self.live.push((i, 0));
            self.next += 1;
        }
        let (tracks, margin) = (self.tracks, self.margin);
        self.live.retain(|&(i, _)| tracks[i].last_frame() + margin >= frame);
        self.live.iter_mut().map(|(i, cursor)| (*i, tracks[*i].box_at(frame, cursor))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Landmarks;

    fn face(x: f32, y: f32, size: f32) -> Detection {
        Detection {
            bbox: FaceBox { x1: x, y1: y, x2: x + size, y2: y + size },
            score: 0.9,
            landmarks: Landmarks([[0.0; 2]; 5]),
        }
    }

    #[test]
    fn two_crossing_paths_keep_their_ids() {
        let mut tracker = Tracker::new(TrackerOptions::default());
        for f in 0..40u64 {
            let t = f as f32;
            // Two faces moving towards each other on different rows, then one is missed for
            // five frames.
            let mut dets = vec![face(10.0 + 5.0 * t, 100.0, 60.0)];
            if !(20..25).contains(&f) {
                dets.push(face(400.0 - 5.0 * t, 300.0, 50.0));
            }
            let ids = tracker.update(f, &dets);
            assert_eq!(ids[0], 0, "frame {f}");
            if dets.len() == 2 {
                assert_eq!(ids[1], 1, "frame {f}");
            }
        }
        let tracks = tracker.finish();
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[1].first_frame(), tracks[1].last_frame(), tracks[1].observations.len()), (0, 39, 35));
    }

    #[test]
    fn a_new_face_far_away_starts_a_track_and_old_ones_end_after_the_gap() {
        let mut tracker = Tracker::new(TrackerOptions::default().with_max_gap(3));
        assert_eq!(tracker.update(0, &[face(0.0, 0.0, 40.0)]), vec![0]);
        assert_eq!(tracker.update(1, &[face(500.0, 0.0, 40.0)]), vec![1]);
        // Five frames later the first face reappears where it was: past the gap, a new track.
        assert_eq!(tracker.update(6, &[face(0.0, 0.0, 40.0)]), vec![2]);
        assert_eq!(tracker.finish().len(), 3);
    }

    #[test]
    fn playback_interpolates_and_holds_the_margin() {
        let b = |x: f32| FaceBox { x1: x, y1: 0.0, x2: x + 10.0, y2: 10.0 };
        let obs = |frame, x| Observation { frame, bbox: b(x), score: 0.5 };
        let tracks = vec![
            Track { id: 0, observations: vec![obs(10, 0.0), obs(14, 40.0), obs(15, 50.0)] },
            Track { id: 1, observations: vec![obs(30, 7.0)] },
        ];
        let mut playback = Playback::new(&tracks, 2);
        let drawn: Vec<(u64, Vec<(usize, f32)>)> = (0..40)
            .map(|f| (f, playback.boxes_at(f).into_iter().map(|(i, b)| (i, b.x1)).collect()))
            .filter(|(_, v): &(u64, Vec<_>)| !v.is_empty())
            .collect();
        let expect: Vec<(u64, Vec<(usize, f32)>)> = vec![
            (8, vec![(0, 0.0)]),
            (9, vec![(0, 0.0)]),
            (10, vec![(0, 0.0)]),
            (11, vec![(0, 10.0)]),
            (12, vec![(0, 20.0)]),
            (13, vec![(0, 30.0)]),
            (14, vec![(0, 40.0)]),
            (15, vec![(0, 50.0)]),
            (16, vec![(0, 50.0)]),
            (17, vec![(0, 50.0)]),
            (28, vec![(1, 7.0)]),
            (29, vec![(1, 7.0)]),
            (30, vec![(1, 7.0)]),
            (31, vec![(1, 7.0)]),
            (32, vec![(1, 7.0)]),
        ];
        assert_eq!(drawn, expect);
    }
}
