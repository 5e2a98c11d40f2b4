//! The Debian package, built once by `packaging/build-deb.sh` (which builds
//! the static musl executable): what it holds, with which modes, its
//! conffile, its maintainer scripts, the executable inside (static, runs),
//! the systemd unit (verifies, hardened, notifies, stops after the drain),
//! and lintian's verdict (no error, warning or unexplained note).

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether an ELF executable asks for a program interpreter (ld.so): a
/// static one does not.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// The unit's `TimeoutStopSec=` in seconds.
fn timeout_stop_secs(unit: &str) -> u64 {
    let value = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec is set");
    value.trim_end_matches('s').parse().expect("in seconds")
}

#[test]
fn the_deb_holds_the_static_binary_its_conffile_and_the_hardened_unit() {
    let built = run(&mut Command::new(format!("{ROOT}/packaging/build-deb.sh")));
    let deb = PathBuf::from(ROOT).join(built.lines().last().unwrap().trim());
    assert_eq!(
        deb,
        PathBuf::from(ROOT).join(format!("target/debian/mychat_{VERSION}_amd64.deb"))
    );

    let field = |name: &str| run(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "mychat");
    assert_eq!(field("Version").trim(), VERSION);
    assert_eq!(field("Architecture").trim(), "amd64");

    // Files, modes, owners (the config's group is set by postinst).
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let entry = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} in\n{contents}"))
            .to_owned()
    };
    assert!(entry("/usr/bin/mychat").starts_with("-rwxr-xr-x root/root"));
    assert!(entry("/etc/mychat/config.toml").starts_with("-rw-r----- root/root"));
    assert!(entry("/usr/lib/systemd/system/mychat.service").starts_with("-rw-r--r-- root/root"));
    assert!(
        !contents.contains("./var/lib/mychat"),
        "the state dir is made by postinst"
    );
    // What Debian expects beside the program: its user, documentation,
    // manual pages and completions in the standard places.
    for path in [
        "/usr/lib/sysusers.d/mychat.conf",
        "/usr/share/doc/mychat/copyright",
        "/usr/share/doc/mychat/changelog.gz",
        "/usr/share/man/man1/mychat.1.gz",
        "/usr/share/man/man1/mychat-serve.1.gz",
        "/usr/share/man/man1/mychat-admin-create.1.gz",
        "/usr/share/bash-completion/completions/mychat",
        "/usr/share/zsh/vendor-completions/_mychat",
        "/usr/share/fish/vendor_completions.d/mychat.fish",
        "/usr/share/lintian/overrides/mychat",
    ] {
        assert!(entry(path).starts_with("-rw-r--r-- root/root"), "{path}");
    }

    // Control files: the conffile, executable maintainer scripts that parse.
    let tmp = tempfile::tempdir().unwrap();
    let control = tmp.path().join("DEBIAN");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/mychat/config.toml");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        run(Command::new("sh").arg("-n").arg(&path));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o111,
            0o111
        );
    }
    // Every packaged file but the conffile has its checksum.
    let md5sums = std::fs::read_to_string(control.join("md5sums")).unwrap();
    for path in ["usr/bin/mychat", "usr/share/man/man1/mychat.1.gz"] {
        assert!(
            md5sums.lines().any(|l| l.ends_with(&format!("  {path}"))),
            "{md5sums}"
        );
    }
    assert!(!md5sums.contains("etc/mychat"), "conffiles are dpkg's own");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers mychat.conf"));
    assert!(postinst.contains("adduser --system --group"));
    assert!(postinst.contains("deb-systemd-helper enable mychat.service"));
    assert!(postinst.contains("deb-systemd-invoke \"$action\" mychat.service"));
    assert!(postinst.contains("dpkg-statoverride --update --add root mychat 0640 \"$CONFIG\""));
    assert!(postinst.contains("install -d -m 0700 -o mychat -g mychat \"$STATE\""));
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("purge)") && postrm.contains("rm -rf /var/lib/mychat"));

    // The executable inside: static, and it runs.
    let root = tmp.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let bin = root.join("usr/bin/mychat");
    assert!(
        !has_interpreter(&std::fs::read(&bin).unwrap()),
        "statically linked"
    );
    let version = run(Command::new(&bin).arg("version"));
    assert_eq!(
        version.lines().next(),
        Some(format!("mychat {VERSION}").as_str())
    );
    assert!(
        version.contains("target: x86_64-unknown-linux-musl"),
        "{version}"
    );
    let config = root.join("etc/mychat/config.toml");
    let checked = run(Command::new(&bin).arg("check").arg("--config").arg(&config));
    assert!(checked.contains("/var/lib/mychat"), "{checked}");

    // The unit: stops only after the graceful drain, verifies, stays hardened.
    let unit_path = root.join("usr/lib/systemd/system/mychat.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let grace = mychat::Config::default().http.shutdown_grace_secs;
    assert!(
        timeout_stop_secs(&unit) >= 2 * grace,
        "TimeoutStopSec outlasts the drain"
    );
    assert!(unit.contains("User=mychat") && unit.contains("StateDirectory=mychat"));
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="));
    assert!(unit.contains("Documentation=man:mychat(1)"));
    if has("systemd-analyze") {
        verify_unit(&unit, &bin, tmp.path());
    }

    // lintian: no error, no warning, and every note explained by an
    // override (overridden hints are not shown).
    let lintian = Command::new("lintian")
        .args(["--display-info", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian is installed (.ci/run installs it)");
    let report = String::from_utf8_lossy(&lintian.stdout);
    let hints: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: ") || l.starts_with("I: "))
        .collect();
    assert!(hints.is_empty(), "lintian:\n{report}");
    assert!(lintian.status.success(), "lintian:\n{report}");
}

/// `systemd-analyze verify` and `security` on the packaged unit, with
/// ExecStart pointing at the extracted executable (verify wants it to exist).
fn verify_unit(unit: &str, bin: &Path, dir: &Path) {
    let units = dir.join("units");
    std::fs::create_dir(&units).unwrap();
    let local = unit.replace(
        "ExecStart=/usr/bin/mychat",
        &format!("ExecStart={}", bin.display()),
    );
    let path = units.join("mychat.service");
    std::fs::write(&path, local).unwrap();
    run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path));
    // Exposure at most 2.0 ("OK").
    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path));
    assert!(security.contains("OK"), "{security}");
}
