//! The custodian TOML configs `keys init` writes (format in `docs/API.md`, "Configuration"):
//! this region's server certificate and KEK, every region's CA as a client CA (so callers
//! from other regions are identified by their CA and need an approval), the policy entries of
//! the in-region gateway, admin and auditor and of the other regions' gateways, and the 2-of-3
//! approver set.

use std::fmt::Write as _;

/// One region as the configs need it.
pub(crate) struct RegionPlan {
    /// Region name.
    pub(crate) region: String,
    /// Custodian name.
    pub(crate) custodian: String,
    /// Listen address (`127.0.0.1:<port>`).
    pub(crate) listen: String,
    /// Approvers: (name, Ed25519 public key hex).
    pub(crate) approvers: Vec<(String, String)>,
    /// M.
    pub(crate) threshold: usize,
}

/// The in-region gateway's certificate identity.
pub(crate) fn gateway_identity(region: &str) -> String {
    format!("gateway-{region}")
}

/// The region admin's certificate identity.
pub(crate) fn admin_identity(region: &str) -> String {
    format!("admin-{region}")
}

/// The region auditor's certificate identity.
pub(crate) fn auditor_identity(region: &str) -> String {
    format!("auditor-{region}")
}

fn caller(out: &mut String, region: &str, identity: &str, roles: &str, comment: &str) {
    let _ = write!(
        out,
        "\n[[caller]]                        # {comment}\nregion = \"{region}\"\nidentity = \"{identity}\"\nroles = [{roles}]\n"
    );
}

/// The config of `plan`'s custodian, in `<out>/<region>/custodian.toml`; `all` lists every
/// region (this one included), whose CAs are at `<out>/<region>/ca.pem`.
pub(crate) fn custodian_toml(plan: &RegionPlan, all: &[RegionPlan]) -> String {
    let r = plan.region.as_str();
    let mut out = format!(
        "# Custodian {r}/{c}, written by `custodia keys init`.\n\
         # DEVELOPMENT KEYS, INSECURE: the keystore is marked insecure and\n\
         # `custodia custodian serve` refuses it unless started with --dev.\n\
         # Every field is described in docs/API.md, \"Configuration\". Paths are relative to this file.\n\
         region = \"{r}\"\n\
         custodian = \"{c}\"\n\
         listen = \"{l}\"\n\
         data_dir = \"data\"                 # keystore.json; audit/ and lock once served\n\
         \n[tls]                             # the server certificate, issued by this region's CA\n\
         cert = \"custodian.pem\"\n\
         key = \"custodian.key\"\n\
         \n[kek]                             # key-encryption key of the keystore (mode 0600)\n\
         file = \"kek.hex\"\n",
        c = plan.custodian,
        l = plan.listen,
    );
    out.push_str(
        "\n# One client CA per region: a caller's region is the CA that issued its certificate.\n",
    );
    for other in all {
        let o = other.region.as_str();
        let dir = if o == r {
            String::new()
        } else {
            format!("../{o}/")
        };
        let _ = write!(
            out,
            "[[client_ca]]\nregion = \"{o}\"\ncert = \"{dir}ca.pem\"\ncrl = [\"{dir}ca.crl.pem\"]\n\n"
        );
    }
    out.push_str("# Policy: (region, certificate identity) -> roles.");
    caller(
        &mut out,
        r,
        &gateway_identity(r),
        "\"unwrap\", \"rewrap\"",
        "the in-region gateway",
    );
    for other in all.iter().filter(|o| o.region != plan.region) {
        caller(
            &mut out,
            &other.region,
            &gateway_identity(&other.region),
            "\"unwrap\"",
            "out of region: unwraps only with an M-of-N approval",
        );
    }
    caller(
        &mut out,
        r,
        &admin_identity(r),
        "\"admin\"",
        "rotate, retire, destroy (with an approval)",
    );
    caller(
        &mut out,
        r,
        &auditor_identity(r),
        "\"auditor\"",
        "reads the restricted audit details",
    );
    let _ = write!(
        out,
        "\n# M of these N approvers sign lawful-access and key-destruction approvals.\n\
         [approvers]\nthreshold = {}\n",
        plan.threshold
    );
    for (name, key) in &plan.approvers {
        let _ = write!(
            out,
            "[[approvers.key]]\nname = \"{name}\"\npublic_key = \"{key}\"\n"
        );
    }
    out
}
