//! Which of several servers of the same model gets a request.
//!
//! A conversation (an episode) stays on the server its first request went to, so that
//! server's prefix cache serves every later step; a new conversation goes to the server
//! with the fewest requests in flight. A server failing `eject_after` attempts in a row is
//! taken out of rotation for a cool-down (doubling while it keeps failing); afterwards one
//! real request probes it, and a success puts it back. The policy is synchronous and takes
//! the time as an argument, so it is tested without servers or clocks.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use trajforge_chat::ServerStats;

/// How the router reacts to failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterPolicy {
    /// Failed attempts in a row that take a server out of rotation.
    pub eject_after: u32,
    /// First time out of rotation; doubles on each failed probe.
    pub cooldown: Duration,
    /// Longest time out of rotation.
    pub max_cooldown: Duration,
    /// Conversations remembered; the oldest pin is forgotten beyond this (its episode is
    /// long over, or it is re-pinned at no cost but a cold cache).
    pub max_pins: usize,
}

impl Default for RouterPolicy {
    /// Out after 3 failures in a row, for 5 s doubling up to 5 minutes; 65,536 pins.
    fn default() -> Self {
        Self {
            eject_after: 3,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
            max_pins: 65_536,
        }
    }
}

/// How one routed attempt ended, as far as the server's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// A usable answer, after `latency`.
    Answered {
        /// Time from sending to the last byte.
        latency: Duration,
    },
    /// The server did not answer usefully (connection, timeout, 5xx, malformed body).
    ServerFault,
    /// The server answered but refused this request (4xx, context overflow): it is healthy.
    Refused,
    /// The caller gave up before an answer (dropped future): counts nothing.
    Abandoned,
}

#[derive(Debug, Default)]
struct Server {
    in_flight: usize,
    failures_in_a_row: u32,
    /// Out of rotation until then (a probe may go once it has passed).
    ejected_until: Option<Instant>,
    cooldown: Duration,
    probing: bool,
    stats: ServerStats,
}

/// The routing state of a set of servers.
#[derive(Debug)]
pub struct Router {
    servers: Vec<Server>,
    pins: HashMap<u64, usize>,
    pin_order: VecDeque<u64>,
    policy: RouterPolicy,
}

/// Where [`Router::route`] sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Index of the server.
    pub server: usize,
    /// Whether this request probes a server that was out of rotation.
    pub probe: bool,
}

impl Router {
    /// A router over servers named by `urls` (at least one).
    pub fn new(urls: &[String], policy: RouterPolicy) -> Self {
        let servers = urls
            .iter()
            .map(|url| Server {
                cooldown: policy.cooldown,
                stats: ServerStats {
                    url: url.clone(),
                    ..ServerStats::default()
                },
                ..Server::default()
            })
            .collect();
        Self {
            servers,
            pins: HashMap::new(),
            pin_order: VecDeque::new(),
            policy,
        }
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there is no server at all.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Whether a new request may go to `server` now (in rotation, or due for a probe).
    pub fn is_available(&self, server: usize, now: Instant) -> bool {
        self.servers
            .get(server)
            .is_some_and(|s| match s.ejected_until {
                None => true,
                Some(until) => now >= until && !s.probing,
            })
    }

    /// Whether `server` is in rotation (not ejected).
    pub fn in_rotation(&self, server: usize) -> bool {
        self.servers
            .get(server)
            .is_some_and(|s| s.ejected_until.is_none())
    }

    /// Requests in flight on `server`.
    pub fn in_flight(&self, server: usize) -> usize {
        self.servers.get(server).map_or(0, |s| s.in_flight)
    }

    /// The server conversation `key` is pinned to, if any.
    pub fn pinned(&self, key: u64) -> Option<usize> {
        self.pins.get(&key).copied()
    }

    /// Pick the server for the next request of conversation `key` and count it in flight.
    /// Every call must be followed by one [`Router::finish`] of the same server.
    pub fn route(&mut self, key: u64, now: Instant) -> Route {
        let server = match self.pins.get(&key) {
            Some(&s) if self.is_available(s, now) => s,
            _ => {
                let s = self.least_busy(now);
                self.pin(key, s);
                s
            }
        };
        let state = &mut self.servers[server];
        let probe = state.ejected_until.is_some();
        if probe {
            state.probing = true;
        }
        state.in_flight += 1;
        state.stats.requests += 1;
        Route { server, probe }
    }

    /// Record how the request routed to `server` ended.
    pub fn finish(&mut self, server: usize, end: AttemptEnd, now: Instant) {
        let policy = self.policy;
        let Some(state) = self.servers.get_mut(server) else {
            return;
        };
        state.in_flight = state.in_flight.saturating_sub(1);
        match end {
            AttemptEnd::Answered { latency } => {
                let secs = latency.as_secs_f64();
                state.stats.latency_seconds += secs;
                state.stats.max_latency_seconds = state.stats.max_latency_seconds.max(secs);
                state.readmit(policy);
            }
            AttemptEnd::Refused => {
                state.stats.errors += 1;
                state.readmit(policy);
            }
            AttemptEnd::ServerFault => {
                state.stats.errors += 1;
                state.failures_in_a_row += 1;
                if state.probing {
                    // The probe failed: out again, for longer.
                    state.probing = false;
                    state.cooldown = (state.cooldown * 2).min(policy.max_cooldown);
                    state.ejected_until = Some(now + state.cooldown);
                } else if state.ejected_until.is_none()
                    && state.failures_in_a_row >= policy.eject_after.max(1)
                {
                    state.ejected_until = Some(now + state.cooldown);
                    state.stats.ejections += 1;
                }
            }
            AttemptEnd::Abandoned => {
                // The request was not answered either way; a probe may go again.
                state.stats.requests = state.stats.requests.saturating_sub(1);
                state.probing = false;
            }
        }
    }

    /// Per-server figures so far.
    pub fn stats(&self) -> Vec<ServerStats> {
        self.servers.iter().map(|s| s.stats.clone()).collect()
    }

    /// The available server with the fewest requests in flight (ties: one due for a probe,
    /// so capacity comes back soon; then fewest requests so far; then the first); when none
    /// is available, the one back soonest.
    fn least_busy(&self, now: Instant) -> usize {
        let available = (0..self.servers.len())
            .filter(|&i| self.is_available(i, now))
            .min_by_key(|&i| {
                let s = &self.servers[i];
                (s.in_flight, s.ejected_until.is_none(), s.stats.requests)
            });
        available.unwrap_or_else(|| {
            (0..self.servers.len())
                .min_by_key(|&i| self.servers[i].ejected_until.unwrap_or(now))
                .unwrap_or(0)
        })
    }

    fn pin(&mut self, key: u64, server: usize) {
        if self.pins.insert(key, server).is_none() {
            self.pin_order.push_back(key);
            while self.pin_order.len() > self.policy.max_pins.max(1) {
                if let Some(old) = self.pin_order.pop_front() {
                    self.pins.remove(&old);
                }
            }
        }
    }
}

impl Server {
    /// The server answered: back in rotation, failure count and cool-down reset.
    fn readmit(&mut self, policy: RouterPolicy) {
        self.failures_in_a_row = 0;
        self.ejected_until = None;
        self.probing = false;
        self.cooldown = policy.cooldown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://s{i}/v1")).collect()
    }

    #[test]
    fn a_new_conversation_goes_to_the_least_busy_server_and_stays_there() {
        let now = Instant::now();
        let mut r = Router::new(&urls(2), RouterPolicy::default());
        assert_eq!(r.route(1, now).server, 0);
        // Server 0 has one in flight: the next conversation goes to server 1.
        assert_eq!(r.route(2, now).server, 1);
        assert_eq!(r.route(3, now).server, 0);
        // Conversation 2 stays on server 1 although server 0 is no busier.
        r.finish(
            0,
            AttemptEnd::Answered {
                latency: Duration::from_millis(5),
            },
            now,
        );
        assert_eq!(r.route(2, now).server, 1);
    }

    #[test]
    fn a_failing_server_is_ejected_probed_and_readmitted() {
        let t0 = Instant::now();
        let policy = RouterPolicy {
            eject_after: 2,
            cooldown: Duration::from_secs(10),
            ..RouterPolicy::default()
        };
        let mut r = Router::new(&urls(2), policy);
        assert_eq!(r.route(7, t0).server, 0);
        r.finish(0, AttemptEnd::ServerFault, t0);
        assert_eq!(r.route(7, t0).server, 0, "one failure keeps the pin");
        r.finish(0, AttemptEnd::ServerFault, t0);
        assert!(!r.in_rotation(0));
        // The episode moves to the other server and stays there.
        assert_eq!(r.route(7, t0).server, 1);
        r.finish(
            1,
            AttemptEnd::Answered {
                latency: Duration::ZERO,
            },
            t0,
        );
        assert_eq!(r.pinned(7), Some(1));
        // After the cool-down one request probes server 0; a second waits for its answer.
        let t1 = t0 + Duration::from_secs(10);
        let probe = r.route(8, t1);
        assert_eq!(
            probe,
            Route {
                server: 0,
                probe: true
            }
        );
        assert_eq!(r.route(9, t1).server, 1);
        // The probe fails: out for twice as long.
        r.finish(0, AttemptEnd::ServerFault, t1);
        assert!(!r.is_available(0, t1 + Duration::from_secs(19)));
        let t2 = t1 + Duration::from_secs(20);
        assert!(r.route(10, t2).probe);
        r.finish(
            0,
            AttemptEnd::Answered {
                latency: Duration::from_millis(3),
            },
            t2,
        );
        assert!(r.in_rotation(0));
        let stats = r.stats();
        assert_eq!(stats[0].ejections, 1);
        assert_eq!(stats[0].errors, 3);
        assert_eq!(stats[0].requests, 4);
    }

    #[test]
    fn refusals_do_not_eject_and_pins_are_bounded() {
        let now = Instant::now();
        let policy = RouterPolicy {
            eject_after: 1,
            max_pins: 3,
            ..RouterPolicy::default()
        };
        let mut r = Router::new(&urls(1), policy);
        for key in 0..10 {
            let route = r.route(key, now);
            r.finish(route.server, AttemptEnd::Refused, now);
        }
        assert!(r.in_rotation(0));
        assert_eq!(r.pins.len(), 3);
        assert_eq!(r.pinned(0), None);
        assert_eq!(r.pinned(9), Some(0));
    }

    /// One step of a random workload.
    #[derive(Debug, Clone)]
    enum Op {
        /// Conversation `key` sends a request.
        Send(u64),
        /// The oldest open request ends (fault or answer).
        End(bool),
        /// Time passes (seconds).
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..12).prop_map(Op::Send),
            4 => any::<bool>().prop_map(Op::End),
            1 => (0u64..30).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Over any workload: a conversation changes server only when its server is
        /// unavailable; a new conversation goes to an available server with the fewest in
        /// flight; a server failing `eject_after` times in a row leaves rotation; and an
        /// ejected server comes back once a probe after its cool-down is answered.
        #[test]
        fn routing_invariants(
            servers in 1usize..5,
            faulty in proptest::collection::vec(any::<bool>(), 5),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let policy = RouterPolicy {
                eject_after: 2,
                cooldown: Duration::from_secs(10),
                max_cooldown: Duration::from_secs(40),
                max_pins: 1000,
            };
            let mut r = Router::new(&urls(servers), policy);
            let mut now = Instant::now();
            let mut open: VecDeque<(u64, usize)> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Send(key) => {
                        let before = r.pinned(key);
                        let available: Vec<usize> =
                            (0..servers).filter(|&i| r.is_available(i, now)).collect();
                        let least = available.iter().map(|&i| r.in_flight(i)).min();
                        let route = r.route(key, now);
                        match before {
                            Some(s) if available.contains(&s) => {
                                prop_assert_eq!(route.server, s, "pinned conversation moved");
                            }
                            _ => {
                                if let Some(least) = least {
                                    prop_assert!(available.contains(&route.server));
                                    prop_assert_eq!(r.in_flight(route.server) - 1, least);
                                }
                            }
                        }
                        prop_assert_eq!(r.pinned(key), Some(route.server));
                        open.push_back((key, route.server));
                    }
                    Op::End(fault_if_faulty) => {
                        if let Some((_, s)) = open.pop_front() {
                            let fails = faulty[s] && fault_if_faulty;
                            let end = if fails {
                                AttemptEnd::ServerFault
                            } else {
                                AttemptEnd::Answered { latency: Duration::from_millis(1) }
                            };
                            let in_a_row = r.servers[s].failures_in_a_row;
                            let (was_in, was_probe) = (r.in_rotation(s), r.servers[s].probing);
                            r.finish(s, end, now);
                            if fails && in_a_row + 1 >= policy.eject_after {
                                prop_assert!(!r.in_rotation(s), "failing server kept");
                                if was_in || was_probe {
                                    prop_assert!(!r.is_available(s, now), "ejected server used");
                                }
                            }
                            if !fails {
                                prop_assert!(r.in_rotation(s), "answering server not readmitted");
                            }
                        }
                    }
                    Op::Wait(secs) => now += Duration::from_secs(secs),
                }
                let total: usize = (0..servers).map(|i| r.in_flight(i)).sum();
                prop_assert_eq!(total, open.len());
            }
            // Every ejected server is available for a probe once the longest cool-down passed.
            let later = now + policy.max_cooldown;
            for s in 0..servers {
                if !r.servers[s].probing {
                    prop_assert!(r.is_available(s, later));
                }
            }
        }
    }
}
