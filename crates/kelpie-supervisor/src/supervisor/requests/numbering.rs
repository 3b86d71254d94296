//! The ids a start gives the apps it creates, in the order PM2 gives them.
//!
//! PM2 starts a file's apps two at a time (its `CONCURRENT_ACTIONS`), in the file's order,
//! and each app's instances one after the other; an instance takes the next id as it starts.
//! So a multi-instance app's later instances get ids after the next apps' first ones, and
//! runbooks, scripts and log file names written against PM2 (`pm2 logs 2`, `app1-out-3.log`)
//! name the same process under Kelpie. PM2's order comes from a race between the two apps in
//! flight, which this replays with the timing that reproduces every order measured with PM2
//! 7.0.4 (docs/differences-from-pm2.md): an instance takes two ticks to start before its app's
//! next one starts, and when an app has started its last instance the next app waiting starts
//! its first one tick later (the daemon answers an app's start before its last instance has
//! come up, so the next app's start overtakes the other app's next instance). At the same tick
//! the app started first goes first. So for `app1` of 4 instances, `app2` and `app3` of 2: app1
//! 0, 3, 5, 6, app2 1, app3 2, 4, as PM2 gives them.

/// How many apps PM2 starts at the same time.
const IN_FLIGHT: usize = 2;
/// Ticks between an app's instances.
const NEXT_INSTANCE: u32 = 2;
/// Ticks between an app's last instance and the next app's first.
const NEXT_APP: u32 = 1;

/// For apps of `counts` instances each (in the order they are started), the offset of each
/// instance's id from the first id given; an app of 0 instances gets none and takes no turn.
pub(super) fn in_pm2_order(counts: &[u32]) -> Vec<Vec<u32>> {
    let mut offsets: Vec<Vec<u32>> = counts.iter().map(|_| Vec::new()).collect();
    let mut waiting = counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(app, _)| app);
    // Each slot's app and the tick its next instance starts at.
    let mut slots: [Option<(usize, u32)>; IN_FLIGHT] = [None; IN_FLIGHT];
    for slot in &mut slots {
        *slot = waiting.next().map(|app| (app, 0));
    }
    let mut next = 0;
    // The earliest start (the first slot at a tie) takes the next id, then moves on.
    while let Some(index) = (0..IN_FLIGHT)
        .filter(|i| slots[*i].is_some())
        .min_by_key(|i| slots[*i].map(|(_, at)| at))
    {
        let Some((app, at)) = slots[index] else {
            break;
        };
        offsets[app].push(next);
        next += 1;
        slots[index] = if offsets[app].len() < counts[app] as usize {
            Some((app, at + NEXT_INSTANCE))
        } else {
            waiting
                .next()
                .map(|waiting_app| (waiting_app, at + NEXT_APP))
        };
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::in_pm2_order;

    // Every expected order is one PM2 7.0.4 gave for a file of these instance counts
    // (`pm2 start ecosystem.config.js`, ids read from `pm2 jlist`).
    #[test]
    fn a_multi_instance_app_shares_turns_with_the_next_app() {
        assert_eq!(in_pm2_order(&[4, 1]), [vec![0, 2, 3, 4], vec![1]]);
        // Issue 72's file, measured again with PM2 7.0.4: each app's first instance in the
        // file's order.
        assert_eq!(
            in_pm2_order(&[4, 1, 2]),
            [vec![0, 3, 5, 6], vec![1], vec![2, 4]]
        );
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
