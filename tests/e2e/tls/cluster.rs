//! ACME with several nodes over one PostgreSQL database, behind a load
//! balancer in front of Pebble's validation ports: one account and one
//! certificate for all, ordered and renewed only by the node that runs the
//! jobs, served by every node; the challenges answered by whichever node
//! the CA reaches; and when that node stops, another renews.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::MINUTE;
use crate::harness::tls::{Balancer, Pebble, TlsServer, init_logging, presented};
use crate::harness::{eventually, free_port, postgres};
use mychat::config::{AcmeChallenge, StoreBackend};
use mychat::tls::CertInfo;

struct Cluster {
    pebble: Pebble,
    balancer: Balancer,
    nodes: Vec<TlsServer>,
    root: CertificateDer<'static>,
}

/// Two nodes ordering for `domain` with `challenge`, from a Pebble whose
/// certificates last `validity_secs`, behind one balancer.
async fn cluster(validity_secs: u64, domain: &str, challenge: AcmeChallenge) -> Cluster {
    init_logging();
    let pebble = Pebble::start(Some(validity_secs)).await;
    let balancer = Balancer::start(&pebble, 2).await;
    let url = postgres::fresh_database().await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let dir = Arc::new(crate::harness::scratch::temp_dir());
        let mut config = pebble.server_config(dir.path(), &[domain]);
        config.http.listen = ([127, 0, 0, 1], free_port()).into();
        config.tls.listen = ([127, 0, 0, 1], free_port()).into();
        config.tls.acme_challenges = vec![challenge];
        config.store.backend = StoreBackend::Postgres;
        config.store.url = url.clone();
        let node = TlsServer::start(dir, config).await;
        balancer.add(&node);
        nodes.push(node);
    }
    let root = pebble.issuing_root().await;
    Cluster {
        pebble,
        balancer,
        nodes,
        root,
    }
}

impl Cluster {
    /// The node that runs the jobs, once there is one.
    async fn leader(&self) -> usize {
        let nodes = &self.nodes;
        eventually(MINUTE, "one node to run the jobs", || {
            let found = nodes.iter().position(|n| n.state.store.leads());
            async move { found }
        })
        .await
    }

    /// Waits until every node presents one certificate for `domain` that
    /// `fresh` accepts; that certificate.
    async fn served(&self, domain: &str, fresh: impl Fn(&CertInfo) -> bool) -> CertInfo {
        let addrs: Vec<_> = self.nodes.iter().map(TlsServer::https_addr).collect();
        let fresh = &fresh;
        eventually(MINUTE, "one certificate on every node", || {
            let (addrs, root) = (addrs.clone(), self.root.clone());
            async move {
                let mut seen = Vec::new();
                for addr in addrs {
                    seen.push(presented(addr, domain, &root).await.ok()?);
                }
                let first = seen[0].clone();
                (fresh(&first) && seen.iter().all(|c| *c == first)).then_some(first)
            }
        })
        .await
    }

    /// No node keeps ACME files of its own.
    fn assert_no_acme_files(&self) {
        for node in &self.nodes {
            let acme = node.dir.path().join("acme");
            assert!(!acme.exists(), "{} exists", acme.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_node_running_the_jobs_orders_and_renews_and_every_node_serves_it() {
    // Renewal is due with a third of the 21 s left: 14 s after issuance.
    let domain = "cluster.mychat.test";
    let c = cluster(21, domain, AcmeChallenge::Http01).await;
    let first = c.served(domain, |_| true).await;
    assert_eq!(first.names, [domain]);
    assert_eq!(c.pebble.orders(), 1, "{}", c.pebble.log());
    assert_eq!(c.pebble.accounts(), 1, "one account for the cluster");
    // The CA reached only the node that did not order, which answered
    // from the database.
    let leader = c.leader().await;
    let other = 1 - leader;
    assert!(c.balancer.passed_to(&c.nodes[other]) >= 1);
    assert_eq!(c.balancer.passed_to(&c.nodes[leader]), 0);
    c.assert_no_acme_files();

    // The leader renews; the other node serves the renewed certificate.
    let renewed = c.served(domain, |now| now.serial != first.serial).await;
    assert!(renewed.not_after > first.not_after);
    assert_eq!(c.pebble.orders(), 2, "{}", c.pebble.log());
    assert_eq!(c.pebble.accounts(), 1);
    c.assert_no_acme_files();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_order_answers_tls_alpn01() {
    let domain = "alpn.cluster.mychat.test";
    let c = cluster(3600, domain, AcmeChallenge::TlsAlpn01).await;
    c.served(domain, |_| true).await;
    let leader = c.leader().await;
    assert!(c.balancer.passed_to(&c.nodes[1 - leader]) >= 1);
    assert_eq!(c.balancer.passed_to(&c.nodes[leader]), 0);
    assert_eq!(c.pebble.orders(), 1, "{}", c.pebble.log());
    assert_eq!(c.pebble.accounts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_node_that_orders_stops_another_renews() {
    let domain = "failover.mychat.test";
    let mut c = cluster(21, domain, AcmeChallenge::Http01).await;
    let first = c.served(domain, |_| true).await;
    let leader = c.leader().await;
    let mut stopped = c.nodes.remove(leader);
    c.balancer.remove(&stopped);
    stopped.stop().await;
    drop(stopped);

    let survivor = c.served(domain, |now| now.serial != first.serial).await;
    assert!(survivor.not_after > first.not_after);
    assert!(c.nodes[0].state.store.leads());
    assert_eq!(c.pebble.orders(), 2, "{}", c.pebble.log());
    // With the account the first node made.
    assert_eq!(c.pebble.accounts(), 1);
    c.assert_no_acme_files();
}
