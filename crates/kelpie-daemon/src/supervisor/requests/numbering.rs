//! The ids a start gives the apps it creates, in the order PM2 gives them.
//!
//! PM2 starts a file's apps two at a time (its `CONCURRENT_ACTIONS`), in the file's order,
//! and each app's instances one after the other; an instance takes the next id as it starts.
//! So a multi-instance app's later instances get ids after the next app's first one (a file
//! with `app1` of 4 instances and `app2`: app1 0, 2, 3, 4 and app2 1), and runbooks, scripts
//! and log file names written against PM2 (`pm2 logs 1`, `app1-out-2.log`) name the same
//! process under Kelpie. PM2's own order depends on which instance comes up first, and varies
//! from run to run; this is the order it gives when the instances come up at the same pace
//! (seed 001's file gets it every time), and Kelpie gives it every time (measured with PM2
//! 7.0.4, docs/differences-from-pm2.md).

/// How many apps PM2 starts at the same time.
const IN_FLIGHT: usize = 2;

/// For apps of `counts` instances each (in the order they are started), the offset of each
/// instance's id from the first id given; an app of 0 instances gets none and takes no turn.
pub(super) fn in_pm2_order(counts: &[u32]) -> Vec<Vec<u32>> {
    let mut offsets: Vec<Vec<u32>> = counts.iter().map(|_| Vec::new()).collect();
    let mut waiting = counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(app, _)| app)
        .fuse();
    let mut slots = [None; IN_FLIGHT];
    let mut next = 0;
    loop {
        let mut gave = false;
        // Each app in flight starts its next instance; one that has started them all makes
        // room for the next app waiting, which starts its first in that turn.
        for slot in &mut slots {
            let done = |app: usize| offsets[app].len() >= counts[app] as usize;
            if slot.is_none_or(done) {
                *slot = waiting.next();
            }
            if let Some(app) = *slot {
                offsets[app].push(next);
                next += 1;
                gave = true;
            }
        }
        if !gave {
            return offsets;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::in_pm2_order;

    // Every expected order is one PM2 7.0.4 gave for a file of these instance counts
    // (`pm2 start ecosystem.config.js`, ids read from `pm2 jlist`).
    #[test]
    fn a_multi_instance_app_shares_turns_with_the_next_app() {
        assert_eq!(in_pm2_order(&[4, 1]), [vec![0, 2, 3, 4], vec![1]]);
        assert_eq!(
            in_pm2_order(&[2, 2, 1, 1]),
            [vec![0, 2], vec![1, 3], vec![4], vec![5]]
        );
        assert_eq!(in_pm2_order(&[3, 3]), [vec![0, 2, 4], vec![1, 3, 5]]);
        assert_eq!(
            in_pm2_order(&[3, 3, 1]),
            [vec![0, 2, 4], vec![1, 3, 5], vec![6]]
        );
        assert_eq!(
            in_pm2_order(&[2, 3, 2, 1]),
            [vec![0, 2], vec![1, 3, 5], vec![4, 6], vec![7]]
        );
    }

    #[test]
    fn single_instances_and_a_single_app_are_numbered_in_order() {
        assert_eq!(in_pm2_order(&[1, 1, 1]), [vec![0], vec![1], vec![2]]);
        assert_eq!(in_pm2_order(&[3]), [vec![0, 1, 2]]);
        assert_eq!(in_pm2_order(&[]), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn an_app_that_creates_nothing_takes_no_turn() {
        assert_eq!(in_pm2_order(&[2, 0, 2]), [vec![0, 2], vec![], vec![1, 3]]);
    }
}
