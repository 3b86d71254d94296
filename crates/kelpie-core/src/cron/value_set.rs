//! The set of values a field matches ([`ValueSet`]), one bit each.

/// A set of small numbers (0 to 63), one bit each: every field fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ValueSet(u64);

impl ValueSet {
    pub(super) const EMPTY: ValueSet = ValueSet(0);

    pub(super) fn single(value: u8) -> ValueSet {
        ValueSet(1 << value)
    }

    /// `low`, `low + step`, ... up to `high` included.
    pub(super) fn range(low: u8, high: u8, step: u8) -> ValueSet {
        let mut bits = 0;
        let mut value = low;
        while value <= high {
            bits |= 1 << value;
            match value.checked_add(step) {
                Some(next) => value = next,
                None => break,
            }
        }
        ValueSet(bits)
    }

    pub(super) fn union(self, other: ValueSet) -> ValueSet {
        ValueSet(self.0 | other.0)
    }

    pub(super) fn without(self, value: u8) -> ValueSet {
        ValueSet(self.0 & !(1 << value))
    }

    pub(super) fn contains(self, value: u8) -> bool {
        value < 64 && self.0 & (1 << value) != 0
    }

    /// The smallest value in the set that is at least `value`.
    pub(super) fn first_at_or_after(self, value: u8) -> Option<u8> {
        if value >= 64 {
            return None;
        }
        let remaining = self.0 & (u64::MAX << value);
        // trailing_zeros of a non-zero u64 is below 64.
        (remaining != 0).then(|| remaining.trailing_zeros() as u8)
    }
}
