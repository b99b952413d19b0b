//! A two-region world for end-to-end tests: an Irish custodian (`ie/dublin`) with a 2-of-3
//! approver set, Irish and US client CAs, gateways in both regions, an Irish admin and an
//! Irish auditor, and helpers to seal objects to it and unwrap them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test support"
)]

use std::collections::BTreeMap;

use custodia_custodian::api::Denial;
use custodia_custodian::approval::{Action, Approval, ApproverKey, SignedApproval};
use custodia_custodian::client::{CustodianClient, Item};
use custodia_custodian::manifest::ManifestPin;
use custodia_envelope::{
    Binding, Context, Header, Metadata, Profile, RecipientPublicKey, Region, SealOptions, Share,
    SystemRandomness, seal,
};

use crate::{CallerEntry, CustodianProc, CustodianSpec, Leaf, TestCa};

pub const MAILBOX_A: &str = "aoife@example.ie";
pub const MAILBOX_B: &str = "brian@example.ie";

pub struct World {
    pub _tmp: tempfile::TempDir,
    pub server_ca: TestCa,
    pub cas: BTreeMap<String, TestCa>,
    pub gw_ie: Leaf,
    pub gw_us: Leaf,
    pub us_claims_ie: Leaf,
    pub admin_ie: Leaf,
    pub auditor_ie: Leaf,
    pub approvers: Vec<ApproverKey>,
    pub custodian: CustodianProc,
}

pub fn caller(region: &str, identity: &str, roles: &[&str]) -> CallerEntry {
    CallerEntry {
        region: region.into(),
        identity: identity.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// A custodian server CA and one client CA per region (`ie`: the Irish key holder's, `us`: the
/// provider's), as every multi-region test world uses.
pub fn two_region_pki() -> (TestCa, BTreeMap<String, TestCa>) {
    let server_ca = TestCa::new("custodian server CA");
    let mut cas = BTreeMap::new();
    cas.insert("ie".to_owned(), TestCa::new("ie operator CA"));
    cas.insert("us".to_owned(), TestCa::new("us provider CA"));
    (server_ca, cas)
}

pub fn world_with(limits: &[&str], revoked_ie: &[u64]) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let (server_ca, cas) = two_region_pki();
    let gw_ie = cas["ie"].leaf("gateway-ie", &["gateway-ie"]);
    let gw_us = cas["us"].leaf("gateway-us", &["gateway-us"]);
    // A US certificate that claims the Irish gateway's identity in its subject.
    let us_claims_ie = cas["us"].leaf("gateway-ie", &["gateway-ie"]);
    let admin_ie = cas["ie"].leaf("admin-ie", &["admin-ie"]);
    let auditor_ie = cas["ie"].leaf("auditor-ie", &["auditor-ie"]);
    let mut rng = SystemRandomness::new();
    let approvers: Vec<ApproverKey> = (0..3)
        .map(|_| ApproverKey::generate(&mut rng).unwrap())
        .collect();
    let spec = CustodianSpec {
        region: "ie".into(),
        custodian: "dublin".into(),
        callers: vec![
            caller("ie", "gateway-ie", &["unwrap", "rewrap"]),
            caller("us", "gateway-us", &["unwrap"]),
            caller("us", "gateway-ie", &["unwrap"]),
            caller("ie", "admin-ie", &["admin"]),
            caller("ie", "auditor-ie", &["auditor"]),
        ],
        approvers: approvers
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("approver-{i}"), hex::encode(k.public_key())))
            .collect(),
        threshold: 2,
        limits: limits.iter().map(|l| (*l).to_owned()).collect(),
        revoked: BTreeMap::from([("ie".to_owned(), revoked_ie.to_vec())]),
    };
    let custodian = CustodianProc::start(&tmp.path().join("ie-dublin"), &server_ca, &cas, &spec);
    World {
        _tmp: tmp,
        server_ca,
        cas,
        gw_ie,
        gw_us,
        us_claims_ie,
        admin_ie,
        auditor_ie,
        approvers,
        custodian,
    }
}

pub fn world() -> World {
    world_with(&[], &[])
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A sealed object and what a reader supplies.
pub struct Object {
    pub stored: Vec<u8>,
    pub header: Header,
    pub binding: Binding,
}

impl World {
    pub fn client(&self, leaf: &Leaf) -> CustodianClient {
        self.custodian.client(&self.server_ca, leaf)
    }

    /// An SDK directory listing this world's custodian (`ie/dublin`), connecting as `leaf`
    /// (no manifest fetched yet).
    pub fn sdk_directory(&self, leaf: &Leaf) -> std::sync::Arc<custodia::Directory> {
        std::sync::Arc::new(
            custodia::Directory::builder()
                .custodian(
                    &Region::new("ie").unwrap(),
                    &custodia_envelope::CustodianName::new("dublin").unwrap(),
                    self.custodian.sdk_endpoint(&self.server_ca, leaf),
                )
                .unwrap()
                .build(),
        )
    }

    /// The custodian's sealable key, from its manifest verified against the pinned key.
    pub fn recipient(&self) -> RecipientPublicKey {
        let manifest = rt().block_on(self.client(&self.gw_ie).manifest()).unwrap();
        let mut pin = ManifestPin::new(self.custodian.manifest_key);
        let mut keys = pin
            .accept(&manifest, custodia_custodian::service::unix_now())
            .unwrap();
        assert_eq!(keys.len(), 1);
        keys.remove(0)
    }

    pub fn seal(&self, mailbox: &str, key: &str, body: &[u8]) -> Object {
        let ie = Region::new("ie").unwrap();
        let context = Context::new(mailbox, &ie).unwrap();
        let binding = Binding::new("mail-ie", key).unwrap();
        let recipient = self.recipient();
        let stored = seal(
            &SealOptions {
                profile: Profile::DEFAULT,
                context: &context,
                binding: &binding,
                recipients: &[recipient],
                metadata: &Metadata::new(),
            },
            body,
            &mut SystemRandomness::new(),
        )
        .unwrap();
        Object {
            header: Header::parse(&stored).unwrap(),
            stored,
            binding,
        }
    }

    pub fn approval(&self, mailboxes: &[&str], caller: &Leaf) -> Approval {
        let now = custodia_custodian::service::unix_now();
        Approval {
            region: "ie".into(),
            custodian: "dublin".into(),
            caller_key_hash: hex::encode(caller.key_hash),
            request_id: "mlat-2026-0042".into(),
            purpose: "US warrant 26-M-114 via the Irish MLAT channel".into(),
            not_before: now - 60,
            not_after: now + 3600,
            action: Action::LawfulAccess {
                mailboxes: mailboxes.iter().map(|m| (*m).to_owned()).collect(),
                max_uses_per_mailbox: 3,
            },
        }
    }

    pub fn sign(&self, approval: &Approval, signers: &[usize]) -> SignedApproval {
        let mut doc = SignedApproval::new(approval.clone());
        for &i in signers {
            doc.add_signature(
                self.approvers[i]
                    .sign(&format!("approver-{i}"), approval)
                    .unwrap(),
            );
        }
        doc
    }
}

pub fn item(o: &Object) -> Item<'_> {
    Item {
        object_id: o.header.object_id(),
        context: o.header.context(),
        stanza: &o.header.stanzas()[0],
    }
}

pub fn unwrap_one(
    client: &CustodianClient,
    o: &Object,
    approval: Option<&SignedApproval>,
) -> Result<Share, Denial> {
    let mut r = rt().block_on(client.unwrap(&[item(o)], approval)).unwrap();
    r.results.remove(0)
}

pub fn opens(o: &Object, share: Share, body: &[u8]) {
    let unlocked = o.header.unlock(&[share], &o.binding).unwrap();
    assert_eq!(unlocked.open(&o.stored).unwrap(), body);
}
