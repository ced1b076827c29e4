//! Child processes of the tests: their output collected by threads, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::EXIT_TIMEOUT;

/// A child process whose stdout and stderr two threads collect. Killed (SIGKILL) on drop, and
/// its stderr printed then if the test is panicking.
pub(crate) struct Proc {
    pub(crate) child: Child,
    /// The program, to name the stderr printed on a panic.
    pub(crate) program: String,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
    pub(crate) readers: Vec<JoinHandle<()>>,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting apig-appcode");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Self {
            child,
            program,
            stdout,
            stderr,
            readers,
        }
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (a name such as `TERM`) with the `kill` command.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, once the process has exited and its output has been read to the end.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait")?;
        // The pipes are closed once the process is gone: the readers end.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Some(status)
    }

    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in time; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // What the readers collected so far: they are not joined (a grandchild may still
            // hold the pipes).
            eprintln!(
                "stderr of {} (pid {}):\n{}",
                self.program,
                self.child.id(),
                self.stderr()
            );
        }
    }
}

/// Appends everything `pipe` yields to `into`, line by line, until it closes.
pub(crate) fn collect(
    pipe: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(pipe.read_line(&mut line), Ok(n) if n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    })
}

/// Runs a command that is expected to stop by itself; returns its status, stdout and stderr.
pub(crate) async fn run_to_exit(cmd: Command) -> (ExitStatus, String, String) {
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait_exit(EXIT_TIMEOUT).await;
    (status, proc.stdout(), proc.stderr())
}
