//! The daemon's end of a job's terminal: async reads (output), writes (input), resize.

use crate::spec::PtySize;
use crate::sys;
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;

/// The master side of a job's PTY.
#[derive(Debug)]
pub(crate) struct PtyMaster {
    /// Non-blocking master descriptor registered with the runtime.
    fd: AsyncFd<OwnedFd>,
    /// Serializes writers so that concurrent inputs are never interleaved mid-chunk. Held
    /// only while writing to the local PTY, never across network IO.
    input: tokio::sync::Mutex<()>,
}

impl PtyMaster {
    /// Wraps the (non-blocking) master that init sent.
    pub(crate) fn new(master: OwnedFd) -> io::Result<Self> {
        Ok(Self {
            fd: sys::register_async(master)?,
            input: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads output. `Ok(0)` at the end: Linux reports EIO on the master once every slave
    /// descriptor is closed (the job is gone), which is EOF here, not an error.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` as the job's terminal input.
    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        let _writer = self.input.lock().await;
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Changes the terminal size; the job's foreground process group gets SIGWINCH.
    pub(crate) fn resize(&self, size: PtySize) -> io::Result<()> {
        sys::set_winsize(self.fd.get_ref(), size)
    }
}
