//! The `README.md` and `.gitignore` that `keys init` writes into its output directory: what
//! every file is, how to use them, and, loudly, that the keys are insecure.

use std::fmt::Write as _;

use super::config::{admin_identity, auditor_identity, gateway_identity};

/// Runtime files the custodians create in a keys directory (not part of what `keys init`
/// wrote).
pub(crate) const GITIGNORE: &str = "# Written by `custodia keys init`: runtime files of custodians served from here.\n\
*/data/audit/\n\
*/data/lock\n\
*/data/.keystore.json.tmp-*\n\
*/kek.hex.next\n";

/// The README of a keys directory holding `regions` = (region, custodian, listen address).
pub(crate) fn readme(regions: &[(String, String, String)], command: &str, out_dir: &str) -> String {
    let mut out = String::from(
        "# Custodia development keys\n\n\
         > **INSECURE — FOR DEVELOPMENT AND TESTS ONLY.** Every private key in this directory \
         (CA keys, TLS keys, key-encryption keys, approver keys) is readable by anyone who has \
         the directory, and if it is committed, by everyone. The custodian keystores are \
         marked `insecure`, and `custodia custodian serve` refuses them unless it is started \
         with `--dev`. Never protect real mail with these keys.\n\n",
    );
    let _ = writeln!(
        out,
        "Made by `{command}`. Run that again (with another `--out`) to get fresh keys of your own.\n"
    );
    let _ = write!(
        out,
        "## Using it\n\n\
         ```sh\n\
         KEYS=$(mktemp -d)/keys && cp -r {out_dir} \"$KEYS\" && chmod 600 \"$KEYS\"/*/kek.hex   # git does not keep mode 0600\n"
    );
    for (r, _, _) in regions {
        let _ = writeln!(
            out,
            "custodia custodian serve --dev --config $KEYS/{r}/custodian.toml &"
        );
    }
    if let Some((r, c, _)) = regions.first() {
        let _ = write!(
            out,
            "\n# Seal for a mailbox of region {r}, open in region:\n\
             echo hello | custodia seal --keys $KEYS --mailbox a@example.{r} --region {r} --object a/1.eml > 1.sealed\n\
             custodia open --keys $KEYS --object a/1.eml < 1.sealed\n"
        );
        if let Some((o, _, _)) = regions.get(1) {
            let _ = write!(
                out,
                "\n# The {o} gateway is refused (exit 4) until 2 of the 3 {r} approvers sign:\n\
                 custodia open --keys $KEYS --caller {o} --object a/1.eml < 1.sealed\n\
                 custodia approve new --keys $KEYS --region {r} --caller-cert $KEYS/{o}/clients/gateway-{o}.pem \\\n\
                 \x20   --request-id REQ-1 --purpose 'court order' --mailbox a@example.{r} --out req.json\n\
                 custodia approve sign --key $KEYS/{r}/approvers/{r}-approver-1.key req.json\n\
                 custodia approve sign --key $KEYS/{r}/approvers/{r}-approver-2.key req.json\n\
                 custodia approve show req.json --keys $KEYS --check\n\
                 custodia open --keys $KEYS --caller {o} --approval req.json --object a/1.eml < 1.sealed\n"
            );
        }
        let _ = write!(
            out,
            "\n# Audit {r}/{c}: every decision above is in its verifiable log.\n\
             custodia audit show --keys $KEYS --region {r} --details\n\
             custodia audit verify --keys $KEYS --region {r} --save-checkpoint {r}-checkpoint.txt\n\
             custodia report --keys $KEYS --region {r} --svg {r}-report.svg\n"
        );
    }
    out.push_str(
        "```\n\n\
         Serving modifies the keystore (each manifest signature bumps a serial in it) and creates \
         `data/audit/` and `data/lock`: serve from a copy, not from a committed directory.\n\n\
         ## Files\n\n\
         | path | what |\n|---|---|\n\
         | `README.md` | this file |\n\
         | `regions.toml` | the index: for each region its custodian name, address, config, CA, pinned manifest signing key, client certificates and approvers (paths relative to this directory). `custodia seal`, `open`, `approve`, `audit` and `report` read it with `--keys DIR`. |\n\
         | `.gitignore` | the runtime files custodians served from here create |\n",
    );
    for (r, c, listen) in regions {
        let (g, a, u) = (gateway_identity(r), admin_identity(r), auditor_identity(r));
        let _ = write!(
            out,
            "| `{r}/ca.pem` | the {r} CA certificate (self-signed, ECDSA P-256): it issued every certificate under `{r}/`. Clients trust it for the {r} custodian's server certificate; every custodian lists it as the client CA of region `{r}` |\n\
             | `{r}/ca.key` | the {r} CA private key (mode 0600) |\n\
             | `{r}/ca.crl.pem` | an empty CRL signed by the {r} CA, so custodians check revocation for {r} callers |\n\
             | `{r}/custodian.toml` | the config of custodian `{r}/{c}` (listens on `{listen}`): TLS files, KEK file, every region's client CA, policy entries (`{g}`: unwrap and rewrap; other regions' gateways: unwrap with an approval only; `{a}`: admin; `{u}`: auditor), 2-of-3 approvers |\n\
             | `{r}/custodian.pem`, `{r}/custodian.key` | the custodian's TLS server certificate (SANs `localhost`, `127.0.0.1`) and key (0600) |\n\
             | `{r}/kek.hex` | the key-encryption key sealing the keystore: 64 hex characters (0600) |\n\
             | `{r}/data/keystore.json` | the custodian's sealed keystore, as `custodia custodian init --dev` makes it: key version 1 active, manifest signing key, marked insecure |\n\
             | `{r}/clients/{g}.pem`, `.key` | the {r} gateway's client certificate (identity `{g}`): the in-region caller |\n\
             | `{r}/clients/{a}.pem`, `.key` | the {r} admin's client certificate (identity `{a}`) |\n\
             | `{r}/clients/{u}.pem`, `.key` | the {r} auditor's client certificate (identity `{u}`) |\n\
             | `{r}/approvers/{r}-approver-N.key` | approver N's Ed25519 private key: a 64-hex seed (0600), for `custodia approve sign --key` |\n\
             | `{r}/approvers/{r}-approver-N.pub` | approver N's Ed25519 public key (64 hex), as in `custodian.toml` |\n"
        );
    }
    out
}
