//! Throwaway PostgreSQL and MariaDB servers for the database tests.
//!
//! [`pg()`], [`pg_tls()`] and [`mysql()`] each start one server per test binary, lazily on
//! first use, on a free 127.0.0.1 port in a temp dir, with durability switched off for speed.
//! Tests isolate themselves with `fresh_db(hint)`, which creates a new database and returns
//! its URL; [`PgServer::sql`] / [`MySqlServer::sql`] run SQL through `psql` / `mariadb`.
//!
//! External servers: set `ETL_TEST_PG_URL=postgres://user:pw@host:5432/db?sslmode=disable`,
//! `ETL_TEST_PG_TLS_URL` (a server that accepts TLS) and/or
//! `ETL_TEST_MYSQL_URL=mysql://user:pw@host:3306/db`; the URL's database is only used to
//! connect. The user needs the right to create databases: the harness creates databases named
//! `etl_<pid>_<time>[_<n>_<hint>]` and drops exactly those when the test binary exits.
//! An external PostgreSQL needs `max_prepared_transactions` > 0 for the two-phase commit tests.
//! [`start_private_pg`] always starts a local server.
//!
//! Lifetime: every server runs under a small `sh` supervisor whose stdin is a pipe from the
//! test binary. However the binary ends (even SIGKILL), the kernel closes the pipe; the
//! supervisor then stops the server (SIGINT for postgres, SIGTERM for mariadbd) and removes
//! the temp dir, or drops the databases it created on an external server.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Password of the `etl` login on the local servers.
pub const PASSWORD: &str = "etl-Secret-7q2x";
const ADMIN_PASSWORD: &str = "etl-Admin-5k8w";

/// The supervisor's loop: one command per stdin line, one answer line each; stop on EOF or
/// on a signal (a Ctrl-C or a job cancellation reaches the whole process group).
const LOOP: &str = r#"
trap 'stop; cleanup; exit 0' INT HUP TERM
while read -r cmd arg; do
  case $cmd in
    start) if start "$arg"; then echo up; else echo failed; fi ;;
    stop) stop; echo down ;;
    db) dbs="$dbs $arg"; echo ok ;;
  esac
done
stop
cleanup
"#;

const PG_LOCAL: &str = r#"
start() { $AS "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 60 -o "-p $1" start >"$D/ctl.log" 2>&1; }
stop() {
  f="$D/data/postmaster.pid"; [ -f "$f" ] || return 0
  p=$(head -1 "$f"); kill -INT "$p" 2>/dev/null; i=0
  while [ -f "$f" ] && kill -0 "$p" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  if [ -f "$f" ] && kill -0 "$p" 2>/dev/null; then kill -KILL "$p"; fi
}
cleanup() { rm -rf "$D"; }
"#;

const MYSQL_LOCAL: &str = r#"
start() {
  "$MYSQLD" --no-defaults $USEROPT --datadir="$D/data" --socket="$D/mysqld.sock" --port="$1" \
    --bind-address=127.0.0.1 --pid-file="$D/mysqld.pid" --log-error="$D/error.log" \
    --skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=64M --innodb-log-file-size=10M \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci </dev/null >/dev/null 2>&1 &
  p=$!; i=0
  until mariadb --no-defaults -uroot --socket="$D/mysqld.sock" -e 'select 1' >/dev/null 2>&1; do
    read -r _ _ st _ <"/proc/$p/stat" 2>/dev/null || st=Z
    if [ "$st" = Z ] || [ $i -ge 600 ]; then stop; return 1; fi
    sleep 0.1; i=$((i+1))
  done
}
stop() { if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; p=; fi; }
cleanup() { rm -rf "$D"; }
"#;

/// An external server: nothing to start or stop; drop the databases made for this run.
const EXTERNAL: &str = r#"
start() { return 1; }
stop() { :; }
cleanup() { for d in $dbs; do eval "$DROP" >/dev/null 2>&1; done; }
"#;

/// The `sh` process that owns a server (or an external server's databases).
struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Supervisor {
    fn spawn(functions: &str, dir: Option<&Path>, env: &[(&str, &str)]) -> Supervisor {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("{functions}{LOOP}"));
        cmd.envs(env.iter().copied())
            .current_dir(dir.unwrap_or(Path::new("/")));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.stderr(Stdio::null()).spawn().expect("spawn sh");
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take().unwrap());
        let stdout = BufReader::new(stdout);
        Supervisor {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command and returns the answer line.
    fn send(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().expect("supervisor stdin");
        writeln!(stdin, "{line}").expect("write to the supervisor");
        let mut answer = String::new();
        let read = self.stdout.read_line(&mut answer);
        read.expect("read from the supervisor");
        answer.trim().to_string()
    }

    /// Starts the server on `port` or a free one, retrying when another process took the port.
    fn start(&mut self, dir: &Path, port: Option<u16>) -> u16 {
        for _ in 0..5 {
            let p = port.unwrap_or_else(free_port);
            for log in ["server.log", "error.log", "ctl.log"] {
                let _ = std::fs::remove_file(dir.join(log));
            }
            if self.send(&format!("start {p}")) == "up" {
                return p;
            }
            if port.is_some() || !logs(dir).contains("Address already in use") {
                break;
            }
        }
        let (dir, logs) = (dir.display(), logs(dir));
        panic!("the server in {dir} did not start:\n{logs}")
    }
}

impl Drop for Supervisor {
    /// Closing the pipe is the stop signal; waiting makes the stop synchronous.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Every `*.log` file in `dir`, for failure messages.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            out += &format!("--- {}\n{text}\n", e.path().display());
        }
    }
    out
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `name` on PATH, else in the newest folder matching `pattern`.
fn find_tool(name: &str, pattern: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = glob::glob(pattern).into_iter().flatten();
    let mut extra: Vec<PathBuf> = found.flatten().collect();
    extra.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    let mut dirs = std::env::split_paths(&path).chain(extra.into_iter().rev());
    dirs.find_map(|d| Some(d.join(name)).filter(|p| p.is_file()))
}

fn tool(name: &str, pattern: &str, package: &str, var: &str) -> PathBuf {
    let help = format!("install {package}, or set {var} to a running server");
    find_tool(name, pattern).unwrap_or_else(|| panic!("`{name}` not found: {help}"))
}

fn pg_tool(name: &str) -> PathBuf {
    let var = "ETL_TEST_PG_URL";
    tool(name, "/usr/lib/postgresql/*/bin", "postgresql", var)
}

/// Runs `program` as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_pg(program: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    let mut cmd = if is_root() {
        cmd
    } else {
        Command::new(program)
    };
    cmd.current_dir(dir);
    cmd
}

/// Runs a setup command; panics with its output on failure.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    let status = out.status;
    assert!(status.success(), "{what} failed ({status}):\n{text}");
}

/// Runs a SQL client with `sql` on stdin: the rows it prints, or its stderr.
fn client(mut cmd: Command, sql: &str, sep: char) -> Result<Vec<Vec<String>>, String> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let written = child.stdin.take().unwrap().write_all(sql.as_bytes());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() || written.is_err() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |l: &str| l.split(sep).map(str::to_string).collect();
    Ok(text.lines().map(row).collect())
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir();
    dir.expect("temp dir").keep()
}

fn parse(url: &str) -> url::Url {
    url::Url::parse(url).unwrap_or_else(|e| panic!("bad database URL: {e}"))
}

/// Percent-decoding, for the user and password of an external server's URL.
fn decode(s: &str) -> String {
    let pair = format!("x={}", s.replace('+', "%2B").replace('&', "%26"));
    let mut parsed = url::form_urlencoded::parse(pair.as_bytes());
    parsed
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The server in `cell`, started by `init` on first use; a failed start fails every caller.
fn cached<T>(cell: &'static OnceLock<Result<T, String>>, init: fn() -> T) -> &'static T {
    let r = cell.get_or_init(|| {
        std::panic::catch_unwind(init).map_err(|e| match e.downcast::<String>() {
            Ok(s) => *s,
            Err(e) => e.downcast_ref::<&str>().unwrap_or(&"").to_string(),
        })
    });
    let msg = |m: &String| panic!("test server unavailable: {m}");
    r.as_ref().unwrap_or_else(msg)
}

/// A database server: started here, or external (from an environment variable).
pub struct Server<K> {
    /// The test login's URL to its own database.
    url: url::Url,
    admin_url: String,
    prefix: String,
    /// The temp dir of a local server; `None` for an external one.
    dir: Option<PathBuf>,
    next: AtomicUsize,
    sup: Mutex<Supervisor>,
    kind: std::marker::PhantomData<K>,
}

/// PostgreSQL: `initdb` + `pg_ctl`, `psql` for SQL.
pub struct Pg;
/// MariaDB: `mariadb-install-db` + `mariadbd`, `mariadb` for SQL.
pub struct MySql;
/// A PostgreSQL server.
pub type PgServer = Server<Pg>;
/// A MariaDB (or MySQL) server.
pub type MySqlServer = Server<MySql>;

/// What differs between the two kinds of server.
pub trait Kind {
    /// The server's pid file, relative to its temp dir.
    const PID_FILE: &str;
    /// Shell command dropping database `$d` of an external server.
    const DROP: &str;
    /// A URL parameter the test login's URL always has (`key=value`), or "".
    const PARAM: &str;
    /// Appended to `CREATE DATABASE` on a local server.
    const OWNER: &str;
    /// The client command for `url`, reading SQL on stdin; and its field separator.
    fn client(url: &str) -> (Command, char);
    /// A quoted database name.
    fn quote(name: &str) -> String;
}

impl Kind for Pg {
    const PID_FILE: &str = "data/postmaster.pid";
    const PARAM: &str = "";
    const OWNER: &str = " OWNER etl";
    const DROP: &str =
        r#""$PSQL" -X -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)""#;
    fn client(url: &str) -> (Command, char) {
        let mut cmd = Command::new(pg_tool("psql"));
        cmd.args("-X -q -A -t -F | -P null=NULL -v ON_ERROR_STOP=1 -f -".split(' '));
        cmd.args(["-d", url]).env("PGCONNECT_TIMEOUT", "10");
        (cmd, '|')
    }
    fn quote(name: &str) -> String {
        format!("\"{name}\"")
    }
}

impl Kind for MySql {
    const PID_FILE: &str = "mysqld.pid";
    const PARAM: &str = "prefer_socket=false";
    const OWNER: &str = "";
    const DROP: &str = r#"mariadb --no-defaults --protocol=TCP -h "$H" -P "$P" -u "$U" -e "DROP DATABASE IF EXISTS \`$d\`""#;
    fn client(url: &str) -> (Command, char) {
        let u = parse(url);
        let mut cmd = Command::new("mariadb");
        let args = "--no-defaults --protocol=TCP -N -B --connect-timeout=10 --default-character-set=utf8mb4";
        cmd.args(args.split(' '))
            .args(["-h", u.host_str().unwrap_or("127.0.0.1")]);
        cmd.arg(format!("--port={}", u.port().unwrap_or(3306)));
        cmd.arg(format!("--user={}", decode(u.username())));
        cmd.env("MYSQL_PWD", decode(u.password().unwrap_or("")));
        let db = u.path().trim_start_matches('/');
        if !db.is_empty() {
            cmd.arg(format!("--database={db}"));
        }
        (cmd, '\t')
    }
    fn quote(name: &str) -> String {
        format!("`{name}`")
    }
}

static PG: OnceLock<Result<PgServer, String>> = OnceLock::new();
static PG_TLS: OnceLock<Result<PgServer, String>> = OnceLock::new();
static MYSQL: OnceLock<Result<MySqlServer, String>> = OnceLock::new();

/// The shared PostgreSQL server of this test binary (`sslmode=disable`).
pub fn pg() -> &'static PgServer {
    cached(&PG, || {
        PgServer::external("ETL_TEST_PG_URL").unwrap_or_else(|| PgServer::local(false))
    })
}

/// A second shared PostgreSQL server that accepts TCP only with TLS (`hostssl`), with a
/// certificate for `localhost`/`127.0.0.1` signed by [`PgServer::ca_cert`]; `sslmode=require`.
pub fn pg_tls() -> &'static PgServer {
    cached(&PG_TLS, || {
        PgServer::external("ETL_TEST_PG_TLS_URL").unwrap_or_else(|| PgServer::local(true))
    })
}

/// The shared MariaDB server of this test binary.
pub fn mysql() -> &'static MySqlServer {
    cached(&MYSQL, || {
        MySqlServer::external("ETL_TEST_MYSQL_URL").unwrap_or_else(MySqlServer::local)
    })
}

/// A PostgreSQL server owned by one test, which may stop and start it; stopped on drop.
pub fn start_private_pg() -> PgServer {
    PgServer::local(false)
}

/// A PostgreSQL URL on a loopback port where nothing listens.
pub fn dead_pg_url() -> String {
    let port = free_port();
    format!("postgres://etl:{PASSWORD}@127.0.0.1:{port}/etl?sslmode=disable")
}

/// A MySQL URL on a loopback port where nothing listens.
pub fn dead_mysql_url() -> String {
    let port = free_port();
    format!("mysql://etl:{PASSWORD}@127.0.0.1:{port}/etl?prefer_socket=false")
}

impl<K: Kind> Server<K> {
    fn new(url: &str, admin_url: String, dir: Option<PathBuf>, sup: Supervisor) -> Self {
        let prefix = dir.as_ref().map_or_else(external_prefix, |_| "t".into());
        let (url, next, sup) = (parse(url), AtomicUsize::new(0), Mutex::new(sup));
        let kind = std::marker::PhantomData;
        Server {
            url,
            admin_url,
            prefix,
            dir,
            next,
            sup,
            kind,
        }
    }

    /// The server at `$var`, with a database of its own for this run.
    fn external(var: &str) -> Option<Self> {
        let url = std::env::var(var).ok().filter(|u| !u.is_empty())?;
        let u = parse(&url);
        let (h, port) = (
            u.host_str().unwrap_or(""),
            u.port().unwrap_or(3306).to_string(),
        );
        let (user, pw) = (decode(u.username()), decode(u.password().unwrap_or("")));
        let psql = find_tool("psql", "/usr/lib/postgresql/*/bin").unwrap_or_default();
        let (psql, drop) = (psql.to_string_lossy(), K::DROP);
        let env = [
            ("ADMIN", &*url),
            ("PSQL", &psql),
            ("H", h),
            ("P", &port),
            ("U", &user),
        ];
        let env = [&env[..], &[("MYSQL_PWD", &pw), ("DROP", drop)]].concat();
        let sup = Supervisor::spawn(EXTERNAL, None, &env);
        let mut s = Self::new(&url, url.clone(), None, sup);
        let db = s.prefix.clone();
        s.track(&db);
        s.url.set_path(&db);
        if let Some((k, v)) = K::PARAM.split_once('=')
            && !s.url.query_pairs().any(|(key, _)| key == k)
        {
            s.url.query_pairs_mut().append_pair(k, v);
        }
        Self::exec(&s.admin_url, &format!("CREATE DATABASE {}", K::quote(&db)));
        Some(s)
    }

    /// The test login's URL to its own database (`etl`, or this run's on an external server).
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// The test login's URL to database `db`.
    pub fn url_for(&self, db: &str) -> String {
        let mut u = self.url.clone();
        u.set_path(db);
        u.to_string()
    }

    /// A superuser URL on a local server (`postgres` / `root`); the given URL on an external one.
    pub fn admin_url(&self) -> String {
        self.admin_url.clone()
    }

    /// The test login's password, to check that it never shows in output.
    pub fn password(&self) -> String {
        decode(self.url.password().unwrap_or(""))
    }

    /// The TCP port (0 when an external URL leaves it to the client's default).
    pub fn port(&self) -> u16 {
        self.url.port().unwrap_or(0)
    }

    /// True when the server came from an environment variable.
    pub fn is_external(&self) -> bool {
        self.dir.is_none()
    }

    /// The temp dir of a local server (data in `data/`, logs in `*.log`).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The server's pid while a local server runs.
    pub fn server_pid(&self) -> Option<u32> {
        let f = std::fs::read_to_string(self.dir()?.join(K::PID_FILE)).ok()?;
        f.lines().next()?.trim().parse().ok()
    }

    /// A new database name (`<prefix>_<n>_<hint>`, at most 63 bytes), remembered for
    /// dropping when the server is external.
    fn fresh_name(&self, hint: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let safe = |c: char| c.is_ascii_alphanumeric().then_some(c.to_ascii_lowercase());
        let hint: String = hint.chars().map(|c| safe(c).unwrap_or('_')).collect();
        let mut name = format!("{}_{n}_{hint}", self.prefix);
        name.truncate(63);
        self.track(&name);
        name
    }

    /// Makes the supervisor of an external server drop `db` when the test binary ends.
    fn track(&self, db: &str) {
        if self.is_external() {
            self.sup.lock().unwrap().send(&format!("db {db}"));
        }
    }

    /// Creates a new database (owned by the test login on a local server) and returns its URL.
    pub fn fresh_db(&self, hint: &str) -> String {
        let name = self.fresh_name(hint);
        let owner = if self.is_external() { "" } else { K::OWNER };
        let create = format!("CREATE DATABASE {}{owner}", K::quote(&name));
        Self::exec(&self.admin_url, &create);
        self.url_for(&name)
    }

    /// Runs `sql` (several statements allowed) and returns the rows printed: fields split at
    /// `|` (psql) or tab (mariadb, which escapes tabs and newlines), NULL as `NULL`.
    /// Panics with the client's stderr on failure.
    pub fn sql(url: &str, sql: &str) -> Vec<Vec<String>> {
        Self::try_sql(url, sql).unwrap_or_else(|e| panic!("SQL failed:\n{sql}\n{e}"))
    }

    /// Runs `sql`; panics with the client's stderr on failure.
    pub fn exec(url: &str, sql: &str) {
        Self::sql(url, sql);
    }

    /// Runs `sql`: the rows, or the client's stderr.
    pub fn try_sql(url: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let (cmd, sep) = K::client(url);
        client(cmd, sql, sep)
    }
}

/// `etl_<pid>_<unix time>`: unique per test binary run on a shared server.
fn external_prefix() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    format!("etl_{}_{}", std::process::id(), t.unwrap().as_secs())
}

impl PgServer {
    fn local(tls: bool) -> Self {
        let initdb = pg_tool("initdb");
        let dir = temp_dir("etl-pg-");
        let as_ = if is_root() {
            "runuser -u postgres --"
        } else {
            ""
        };
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(&dir), "chown");
        }
        let (d, bin) = (dir.to_string_lossy(), initdb.with_file_name(""));
        let env = [("D", &*d), ("AS", as_), ("BIN", &*bin.to_string_lossy())];
        let mut sup = Supervisor::spawn(PG_LOCAL, Some(&dir), &env);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
        let mut cmd = as_pg(&initdb, &dir);
        cmd.arg("-D").arg(dir.join("data"));
        cmd.args("-U postgres -E UTF8 --locale=C.UTF-8 --no-sync --auth=trust --pwfile".split(' '));
        run(cmd.arg(&pwfile), "initdb");
        configure(&dir, tls);
        let port = sup.start(&dir, None);
        let mode = if tls { "require" } else { "disable" };
        let url =
            |login: &str, db| format!("postgres://{login}@127.0.0.1:{port}/{db}?sslmode={mode}");
        let admin = url(&format!("postgres:{ADMIN_PASSWORD}"), "postgres");
        let etl = url(&format!("etl:{PASSWORD}"), "etl");
        let s = Self::new(&etl, admin, Some(dir), sup);
        let setup = format!("CREATE ROLE etl LOGIN CREATEDB PASSWORD '{PASSWORD}';\n");
        Self::exec(&s.admin_url, &(setup + "CREATE DATABASE etl OWNER etl;"));
        s
    }

    /// The CA certificate that signed a local TLS server's certificate (for `sslrootcert=`).
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.dir().map(|d| d.join("ca.crt")).filter(|p| p.exists())
    }

    /// Stops a private server (fast shutdown) and waits until it is gone.
    pub fn stop(&mut self) {
        let answer = self.sup.get_mut().unwrap().send("stop");
        assert_eq!(answer, "down", "stop the server");
    }

    /// Starts a stopped private server again, on the same port.
    pub fn start(&mut self) {
        let (dir, port) = (self.dir.clone().expect("a local server"), self.port());
        self.sup.get_mut().unwrap().start(&dir, Some(port));
    }
}

/// Writes `pg_hba.conf` (passwords over TCP) and the fast settings; certificates for TLS.
fn configure(dir: &Path, tls: bool) {
    let data = dir.join("data");
    let host = if tls { "hostssl" } else { "host" };
    let hba = format!("local all all trust\n{host} all all 127.0.0.1/32 scram-sha-256\n");
    std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    let d = dir.display();
    let mut conf = format!(
        "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nfsync = off\n\
         synchronous_commit = off\nfull_page_writes = off\nmax_prepared_transactions = 10\n"
    );
    if tls {
        let openssl = tool("openssl", "", "openssl", "ETL_TEST_PG_TLS_URL");
        let script = format!(
            "set -e; umask 077; o={}; k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
             $o req -x509 $k -keyout ca.key -out ca.crt -days 30 -subj '/CN=etl test CA' \
               -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
             $o req $k -keyout server.key -out server.csr -subj /CN=localhost
             printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' >ext.cnf
             $o x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
               -days 30 -extfile ext.cnf",
            openssl.display()
        );
        run(as_pg(Path::new("sh"), dir).args(["-c", &script]), "openssl");
        let files = format!("ssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'");
        conf += &format!("ssl = on\n{files}\n");
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"));
    file.and_then(|mut f| f.write_all(conf.as_bytes()))
        .expect("postgresql.conf");
}

impl MySqlServer {
    fn local() -> Self {
        let tool = |name| tool(name, "/usr/sbin", "mariadb-server", "ETL_TEST_MYSQL_URL");
        let (mysqld, install) = (tool("mariadbd"), tool("mariadb-install-db"));
        let dir = temp_dir("etl-mysql-");
        let (d, m) = (dir.to_string_lossy(), mysqld.to_string_lossy());
        let user = if is_root() { "--user=root" } else { "" };
        let env = [("D", &*d), ("MYSQLD", &*m), ("USEROPT", user)];
        let mut sup = Supervisor::spawn(MYSQL_LOCAL, Some(&dir), &env);
        let mut cmd = Command::new(install);
        let args = format!("--no-defaults {user} --datadir={d}/data --skip-test-db");
        cmd.args(args.split(' ').filter(|a| !a.is_empty()));
        let args = "--auth-root-authentication-method=normal --innodb-log-file-size=10M";
        run(cmd.args(args.split(' ')), "mariadb-install-db");
        let port = sup.start(&dir, None);
        let url =
            |login: &str, db| format!("mysql://{login}@127.0.0.1:{port}/{db}?prefer_socket=false");
        let etl = url(&format!("etl:{PASSWORD}"), "etl");
        let s = Self::new(&etl, url("root", ""), Some(dir), sup);
        let setup = format!("CREATE USER 'etl'@'%' IDENTIFIED BY '{PASSWORD}';\n");
        let setup = setup + "GRANT ALL ON *.* TO 'etl'@'%';\nCREATE DATABASE etl;";
        Self::exec(&s.admin_url, &setup);
        s
    }
}
