//! One request budget per AWS account. Route 53 allows a number of API calls a second per
//! account, not per zone, and every tool in the account (external-dns, Terraform, the console)
//! draws from the same allowance: every zone stabledns keeps in one account, forward and
//! reverse, takes its calls from one [`Budget`], so two zones together never exceed
//! `requests_per_second`.
//!
//! An account is known by the credentials a `[[publish]]` entry uses: its `assume_role` (none:
//! the process's own) and its endpoint. Calls are spaced evenly (a bucket of one token), as a
//! burst would only meet Route 53's throttling sooner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::settings::PublishConfig;

/// The calls of one account, spaced at its pace.
#[derive(Debug)]
pub struct Budget {
    /// (the spacing between calls, when the next call may go).
    turn: Mutex<(Duration, Instant)>,
}

impl Budget {
    fn new(interval: Duration) -> Self {
        Self {
            turn: Mutex::new((interval, Instant::now())),
        }
    }

    /// Waits for the next call's turn; the turn is taken even if the caller gives up waiting.
    pub async fn take(&self) {
        let at = match self.turn.lock() {
            Ok(mut turn) => {
                let at = turn.1.max(Instant::now());
                turn.1 = at + turn.0;
                at
            }
            // A panic while the lock was held left no turn to keep: go now.
            Err(_) => Instant::now(),
        };
        tokio::time::sleep_until(at).await;
    }

    /// The spacing between calls.
    pub fn interval(&self) -> Duration {
        self.turn.lock().map_or(Duration::ZERO, |t| t.0)
    }
}

/// An account as a `[[publish]]` entry reaches it: (`assume_role`, `endpoint_url`).
type Account = (Option<String>, Option<String>);

/// The budgets of every account this process publishes to.
#[derive(Debug, Clone, Default)]
pub struct Budgets(Arc<Mutex<HashMap<Account, Arc<Budget>>>>);

impl Budgets {
    /// The budget of the account `config` publishes to. Entries of one account that ask for
    /// different paces share the slowest: the limit is the account's.
    pub fn of(&self, config: &PublishConfig) -> Arc<Budget> {
        let interval = Duration::from_secs_f64(1.0 / config.requests_per_second);
        let key = (config.assume_role.clone(), config.endpoint_url.clone());
        let Ok(mut map) = self.0.lock() else {
            return Arc::new(Budget::new(interval));
        };
        let budget = map
            .entry(key)
            .or_insert_with(|| Arc::new(Budget::new(interval)));
        if let Ok(mut turn) = budget.turn.lock()
            && turn.0 < interval
        {
            turn.0 = interval;
        }
        budget.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(role: Option<&str>, rps: f64) -> PublishConfig {
        PublishConfig {
            kind: super::super::settings::Kind::Route53,
            view: "inside".into(),
            hosted_zone_id: "Z1".into(),
            reverse_hosted_zone_id: None,
            owner_id: "tests".into(),
            policy: super::super::settings::Policy::Sync,
            max_changes_per_batch: 1000,
            requests_per_second: rps,
            max_delete_fraction: 0.5,
            reconcile_interval: Duration::from_secs(3600),
            assume_role: role.map(str::to_owned),
            endpoint_url: None,
        }
    }

    #[test]
    fn zones_of_one_account_share_its_slowest_pace() {
        let budgets = Budgets::default();
        let a = budgets.of(&config(None, 5.0));
        let b = budgets.of(&config(None, 2.0));
        let other = budgets.of(&config(Some("arn:aws:iam::2:role/r"), 5.0));
        assert!(Arc::ptr_eq(&a, &b), "one account, one budget");
        assert!(!Arc::ptr_eq(&a, &other), "another account, its own");
        assert_eq!(a.interval(), Duration::from_millis(500));
        assert_eq!(other.interval(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn two_zones_drawing_at_once_get_the_account_s_pace_together() {
        let budgets = Budgets::default();
        let (a, b) = (
            budgets.of(&config(None, 50.0)),
            budgets.of(&config(None, 50.0)),
        );
        let start = Instant::now();
        let draw = |budget: Arc<Budget>| async move {
            for _ in 0..5 {
                budget.take().await;
            }
        };
        tokio::join!(draw(a), draw(b));
        // Ten calls at 50 a second: the last goes no sooner than nine spacings after the
        // first. Two zones pacing alone would be done after four.
        assert!(
            start.elapsed() >= Duration::from_millis(180),
            "{:?}",
            start.elapsed()
        );
    }
}
