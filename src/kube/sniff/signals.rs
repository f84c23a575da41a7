//! The signals that stop a capture: SIGINT, SIGTERM and SIGHUP on Unix; on Windows, where the
//! plugin runs too, their console counterparts (Ctrl-C, Ctrl-Break, the console window closed).
//! Same names as `tokio::signal::unix`, so the session reads the same on both.

#[cfg(unix)]
pub use tokio::signal::unix::{signal, SignalKind};

#[cfg(windows)]
pub use windows::{signal, SignalKind};

#[cfg(windows)]
mod windows {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, CtrlBreak, CtrlC, CtrlClose};

    /// Which console event stands for which Unix signal.
    #[derive(Clone, Copy)]
    pub enum SignalKind {
        Interrupt,
        Terminate,
        Hangup,
    }

    impl SignalKind {
        pub fn interrupt() -> Self {
            Self::Interrupt
        }
        /// Ctrl-Break: what a console sends to ask a program to stop, as SIGTERM does.
        pub fn terminate() -> Self {
            Self::Terminate
        }
        /// The console window closed: the terminal went away, as with SIGHUP.
        pub fn hangup() -> Self {
            Self::Hangup
        }
    }

    pub enum Signal {
        C(CtrlC),
        Break(CtrlBreak),
        Close(CtrlClose),
    }

    impl Signal {
        pub async fn recv(&mut self) -> Option<()> {
            match self {
                Signal::C(s) => s.recv().await,
                Signal::Break(s) => s.recv().await,
                Signal::Close(s) => s.recv().await,
            }
        }
    }

    pub fn signal(kind: SignalKind) -> std::io::Result<Signal> {
        Ok(match kind {
            SignalKind::Interrupt => Signal::C(ctrl_c()?),
            SignalKind::Terminate => Signal::Break(ctrl_break()?),
            SignalKind::Hangup => Signal::Close(ctrl_close()?),
        })
    }
}
