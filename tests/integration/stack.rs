//! The redundant-pair stack (`contrib/cloudformation/stabledns.yaml`) deployed into moto's
//! CloudFormation: `tests/integration/py/cfn_stack.py` reads back from EC2 and IAM every
//! resource it should have made (the security group's rules, the fixed-address interfaces,
//! the servers, the role's policies against `contrib/`'s, the launch template's script and the
//! outputs), and the config the servers' script writes passes `stabledns check`.

use std::process::Command;

use crate::moto::Moto;

#[test]
fn the_stack_deploys_into_moto_with_contrib_s_policies_and_a_valid_config() {
    let moto = Moto::start();
    let python = std::env::var("STABLEDNS_PYTHON")
        .expect("STABLEDNS_PYTHON: run scripts/test, which installs boto3 and cfn-lint");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stabledns.toml");
    let root = crate::harness::root();
    let out = Command::new(python)
        .arg("-W")
        .arg("ignore")
        .arg(root.join("tests/integration/py/cfn_stack.py"))
        .arg(&moto.url)
        .arg(&root)
        .arg(&config)
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cfn_stack.py:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count() > 40,
        "{stdout}"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_stabledns"))
        .args(["check", "--config-only", "--config"])
        .arg(&config)
        .output()
        .expect("stabledns check");
    assert!(
        check.status.success(),
        "the stack's config:\n{}\n{}{}",
        std::fs::read_to_string(&config).unwrap_or_default(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
