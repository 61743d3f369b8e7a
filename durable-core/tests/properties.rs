//! Property tests where the input space is large: frames and their corruption, and
//! retry schedules.

use std::time::Duration;

use durable_core::{decode_value, Codec, FrameReader, FrameWriter, RetryPolicy};
use proptest::prelude::*;

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Bincode), Just(Codec::Json)]
}

proptest! {
    /// Any frame of strings and numbers reads back exactly, with either codec.
    #[test]
    fn frames_round_trip(
        codec in codec(),
        point in any::<u32>(),
        texts in proptest::collection::vec(".*", 0..8),
        numbers in proptest::collection::vec(any::<i64>(), 0..8),
    ) {
        let mut w = FrameWriter::new(codec, point, u64::from(point) << 32 | 0xfeed);
        for t in &texts {
            w.push_checked(t).unwrap();
        }
        w.push_checked(&numbers).unwrap();
        let bytes = w.finish();
        let mut r = FrameReader::new(&bytes).unwrap();
        prop_assert_eq!(r.point(), point);
        prop_assert_eq!(r.codec(), codec);
        for t in &texts {
            prop_assert_eq!(&r.read::<String>().unwrap(), t);
        }
        prop_assert_eq!(r.read::<Vec<i64>>().unwrap(), numbers);
        r.finish().unwrap();
    }

    /// Arbitrary bytes, and any frame with one byte flipped or cut short, never panic the
    /// reader: they decode to something or fail with a typed error.
    #[test]
    fn corrupt_frames_never_panic(
        codec in codec(),
        texts in proptest::collection::vec(".{0,20}", 1..5),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut w = FrameWriter::new(codec, 3, 5);
        for t in &texts {
            w.push(t).unwrap();
        }
        let good = w.finish();
        let mut flipped = good.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let cut_short = good[..cut.index(good.len())].to_vec();
        for bytes in [flipped, cut_short, noise] {
            if let Ok(mut r) = FrameReader::new(&bytes) {
                for _ in 0..r.len() {
                    if r.read::<String>().is_err() {
                        break;
                    }
                }
            }
            let _ = decode_value::<Vec<String>>(&bytes);
        }
    }

    /// Delays never exceed the cap, never shrink from one attempt to the next before
    /// jitter, and jitter only ever shortens them.
    #[test]
    fn retry_delays_are_monotonic_and_capped(
        initial_ms in 0u64..100_000,
        factor in 1.0f64..10.0,
        max_ms in 0u64..10_000_000,
        jitter in 0.0f64..=1.0,
        attempts in 1u32..200,
    ) {
        let policy = RetryPolicy::exponential()
            .initial_delay(Duration::from_millis(initial_ms))
            .factor(factor)
            .max_delay(Duration::from_millis(max_ms))
            .jitter(jitter)
            .max_attempts(attempts);
        let cap = Duration::from_millis(max_ms.max(initial_ms)) + Duration::from_millis(1);
        let mut previous = Duration::ZERO;
        for attempt in 1..=attempts.min(64) {
            let base = policy.delay_after(attempt);
            prop_assert!(base <= cap, "attempt {attempt}: {base:?} over {cap:?}");
            prop_assert!(base >= previous, "attempt {attempt}: {base:?} < {previous:?}");
            previous = base;
            let jittered = policy.jittered_delay_after(attempt);
            prop_assert!(jittered <= base);
            prop_assert!(jittered >= base.mul_f64(1.0 - jitter) - Duration::from_micros(1));
        }
        prop_assert!(!policy.allows_another(attempts));
        prop_assert!(attempts == 1 || policy.allows_another(attempts - 1));
    }
}
