//! `pressroom-ops backup` and `restore`: physical backups (DESIGN §7). A base backup with `pg_basebackup`
//! plus the primary's WAL archive restore a cluster to any point in time — with its transaction-id
//! counter, which a logical dump would lose (restored `transaction_id`s would sit above the new cluster's
//! horizon and stall every projection).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// A new folder for the backup (base.tar.gz, pg_wal.tar.gz, backup.json).
    #[arg(long)]
    to: PathBuf,
    /// Folder of PostgreSQL's client programs.
    #[arg(long, env = "PG_BIN", default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A folder `backup` wrote.
    #[arg(long)]
    from: PathBuf,
    /// The primary's WAL archive (its `archive_command` copies segments there).
    #[arg(long)]
    wal_archive: PathBuf,
    /// A new data folder for the restored cluster.
    #[arg(long)]
    to: PathBuf,
    /// Recover up to this time (RFC 3339); without it, to the end of the archive.
    #[arg(long)]
    target_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Port the restored cluster listens on (127.0.0.1).
    #[arg(long)]
    port: u16,
    #[arg(long, env = "PG_BIN", default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
}

/// `backup --to DIR`: a compressed tar base backup with the WAL it needs, taken from the primary.
pub fn backup(admin_url: &str, args: &BackupArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(admin_url).context("DATABASE_ADMIN_URL is not a URL")?;
    let started = Instant::now();
    let base = args.to.join("base");
    std::fs::create_dir_all(&args.to).with_context(|| format!("cannot create {}", args.to.display()))?;
    if base.exists() {
        bail!("{} already holds a backup", args.to.display());
    }
    let mut cmd = Command::new(args.pg_bin.join("pg_basebackup"));
    cmd.args(["-h", url.host_str().unwrap_or("127.0.0.1")])
        .args(["-p", &url.port().unwrap_or(5432).to_string()])
        .args(["-U", if url.username().is_empty() { "postgres" } else { url.username() }])
        .arg("-D")
        .arg(&base)
        .args(["-Ft", "-z", "-X", "stream", "-c", "fast", "--no-password"]);
    if let Some(password) = url.password() {
        cmd.env("PGPASSWORD", password);
    }
    run(&mut cmd)?;
    let manifest = serde_json::json!({
        "taken_at": chrono::Utc::now(),
        "source": format!("{}:{}", url.host_str().unwrap_or(""), url.port().unwrap_or(5432)),
        "format": "pg_basebackup tar (base.tar.gz, pg_wal.tar.gz)",
    });
    std::fs::write(args.to.join("backup.json"), serde_json::to_vec_pretty(&manifest)?)?;
    println!("base backup in {} ({:.1} s)", args.to.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// `restore`: a new cluster from the base backup, replaying the archive up to the target time, then
/// promoted and left running on `--port`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let data = &args.to;
    if data.exists() && std::fs::read_dir(data)?.next().is_some() {
        bail!("{} is not empty", data.display());
    }
    std::fs::create_dir_all(data.join("pg_wal"))?;
    untar(&args.from.join("base/base.tar.gz"), data)?;
    untar(&args.from.join("base/pg_wal.tar.gz"), &data.join("pg_wal"))?;
    let archive = std::fs::canonicalize(&args.wal_archive)
        .with_context(|| format!("no WAL archive at {}", args.wal_archive.display()))?;
    let mut settings = format!(
        "\n# pressroom-ops restore\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         archive_mode = off\nrestore_command = 'cp {}/%f %p'\nrecovery_target_action = 'promote'\n",
        args.port,
        data.display(),
        archive.display()
    );
    if let Some(at) = args.target_time {
        settings.push_str(&format!("recovery_target_time = '{}'\n", at.to_rfc3339()));
    }
    append(&data.join("postgresql.auto.conf"), &settings)?;
    let _ = std::fs::remove_file(data.join("standby.signal"));
    std::fs::write(data.join("recovery.signal"), "")?;
    if running_as_root() {
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(data))?;
    }
    run(Command::new("chmod").arg("0700").arg(data))?;
    let log = data.join("restore.log");
    run(as_postgres(&args.pg_bin.join("pg_ctl"))
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "300", "start"]))?;
    // Recovery ends at the target (or the archive's end) and the cluster promotes itself.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = as_postgres(&args.pg_bin.join("psql"))
            .args(["-X", "-h", "127.0.0.1", "-p", &args.port.to_string(), "-U", "postgres", "-d", "postgres", "-tAc"])
            .arg("select pg_is_in_recovery()")
            .output()?;
        if String::from_utf8_lossy(&out.stdout).trim() == "f" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the restored cluster is still recovering after 5 minutes; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pg_ctl = args.pg_bin.join("pg_ctl");
    let stop = if running_as_root() {
        format!("runuser -u postgres -- {} -D {} stop", pg_ctl.display(), data.display())
    } else {
        format!("{} -D {} stop", pg_ctl.display(), data.display())
    };
    println!(
        "restored into {} and promoted, listening on 127.0.0.1:{} ({:.1} s); stop it with: {stop}",
        data.display(),
        args.port,
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn untar(archive: &Path, into: &Path) -> anyhow::Result<()> {
    run(Command::new("tar").arg("-xzf").arg(archive).arg("-C").arg(into))
}

fn append(file: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(file)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// PostgreSQL refuses to run as root: as root, run its programs as `postgres`.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
